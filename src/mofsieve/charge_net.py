"""The per-atom partial-charge network: crystal graph in, one charge per atom out, neutral cells.

Atoms start as an embedding of their element; ``num_layers`` crystal-graph convolutions
(:class:`mofsieve.layers.CGConv`, Xie & Grossman 2018, the surrogates' own layer with its
per-atom factorisation of the pair projection) pass messages along the same
12-nearest-neighbour periodic graph the surrogates use, with Gaussian-expanded distances on
the edges:

    x_i' = x_i + BN(Σ_j σ(z_ij W_f + b_f) ⊙ softplus(z_ij W_s + b_s)),   z_ij = x_i ⊕ x_j ⊕ e_ij

A head maps each atom to a raw charge q̃_i and a softness s_i > 0. A framework is neutral, so
whatever the raw charges sum to is taken back in proportion to softness, within each crystal:

    q_i = q̃_i − s_i · (Σ_k q̃_k − Q) / Σ_k s_k,   Q = 0

which makes Σ q_i = Q exactly (to float rounding) and lets the network learn where excess
charge belongs (e.g. on metals and carboxylate oxygens rather than on hydrogens).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch_geometric.utils import scatter

from mofsieve.graphs import neighbour_graph
from mofsieve.layers import CGConv, GaussianExpansion, regular_degree

MAX_ATOMIC_NUMBER = 100


class ChargeNet(nn.Module):
    """Crystal graph → neutral per-atom partial charges (e); see the module docstring."""

    def __init__(
        self,
        atom_dim: int = 64,
        num_layers: int = 3,
        rbf_stop: float = 6.0,
        rbf_step: float = 0.2,
        head_hidden: int = 64,
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(MAX_ATOMIC_NUMBER + 1, atom_dim)
        self.expansion = GaussianExpansion(0.0, rbf_stop, rbf_step)
        self.convs = nn.ModuleList(
            CGConv(atom_dim, self.expansion.num_features) for _ in range(num_layers)
        )
        self.head = nn.Sequential(
            nn.Linear(atom_dim, head_hidden), nn.SiLU(), nn.Linear(head_hidden, 2)
        )

    def forward(
        self,
        z: torch.Tensor,
        edge_index: torch.Tensor,
        edge_dist: torch.Tensor,
        batch: torch.Tensor,
        num_graphs: int,
        total_charge: torch.Tensor | None = None,
        multiplicity: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Charges (N,) whose sum over each crystal is ``total_charge`` (default 0).

        ``multiplicity``: how many atoms each row stands for, when the graph has one row per
        set of atoms the layers cannot tell apart (:mod:`mofsieve.symmetry`); the sums of the
        neutralisation count each row that many times."""
        edge_attr = self.expansion(edge_dist)
        degree = regular_degree(edge_index[1], z.size(0))
        x = self.embedding(z)
        for conv in self.convs:
            x = conv(x, edge_index, edge_attr, degree)
        raw, softness_logit = self.head(x).unbind(-1)
        softness = nn.functional.softplus(softness_logit) + 1e-3
        counted_raw, counted_softness = raw, softness
        if multiplicity is not None:
            counted_raw, counted_softness = raw * multiplicity, softness * multiplicity
        excess = scatter(counted_raw, batch, dim=0, dim_size=num_graphs, reduce="sum")
        if total_charge is not None:
            excess = excess - total_charge
        share = scatter(counted_softness, batch, dim=0, dim_size=num_graphs, reduce="sum")
        return raw - softness * (excess / share)[batch]


def crystal_edges(
    frac_coords: np.ndarray, lattice: np.ndarray, cutoff: float, max_neighbors: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(edge_index (2, E) int64, edge_dist (E,) float32)`` of the model's neighbour graph."""
    graph = neighbour_graph(frac_coords, lattice, cutoff=cutoff, max_neighbors=max_neighbors)
    edge_index = np.stack([graph.src, graph.dst]).astype(np.int64)
    return edge_index, graph.dist.astype(np.float32)
