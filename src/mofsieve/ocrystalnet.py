"""OCrystalNet (Yang et al., "Leveraging orbital information and atomic feature in deep
learning model"): orbital-field-matrix atoms and communicative atom–bond message passing,
adapted to periodic MOF graphs.

Atom input ``x(c)`` (:class:`OrbitalAtomEncoder`, ``atom_input`` chooses the parts — the
paper's Table 4 ablation):

=============  ==========================================================================
``embedding``  a learned 64-d embedding of the element only (as AE-CGCNN)
``ofm``        flattened OFM ``o(c) ⊗ s(c)`` (1,024) ⊕ ``o(c)`` (32), :mod:`mofsieve.ofm`
``cfid``       the element's 438 JARVIS CFID properties, standardised
``ofm+cfid``   both (1,494 numbers): OCrystalNet
=============  ==========================================================================

projected to the hidden width, plus the optional partial-charge term of AE-CGCNN. Bonds are
the crystal graph's edges made symmetric (``reverse_edges``, :mod:`mofsieve.graph_columns`)
with Gaussian-expanded distances. Then ``num_layers`` communicative layers
(:mod:`mofsieve.cmpnn`), one more node aggregation, ``h_out(v) = Mish(W_o [m(v) ⊕ h(v) ⊕
h⁰(v)])``, a readout (mean by default; sum or attention as for AE-CGCNN), the crystal
descriptors where configured (cell; shard globals for ``de-ocrystalnet``) and the MLP head.

The CFID table standardises each property over the elements that have it (missing → the
mean, 0); it is a buffer, so a saved model carries the table it was trained with.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mofsieve.cmpnn import (
    CommunicativeEdgeUpdate,
    DirectedEdgeEmbedding,
    MeanMaxAggregation,
    check_reverse,
)
from mofsieve.graph_columns import ORBITAL_NEIGHBOUR_SUM, REVERSE_EDGES
from mofsieve.layers import GaussianExpansion
from mofsieve.model import MAX_Z, CrystalRegressor, check_n_targets, config_json
from mofsieve.ofm import ORBITAL_DIM, element_table, onehot_table
from mofsieve.readouts import READOUTS

ARCHITECTURE = "OCrystalNet"
ATOM_INPUTS = ("embedding", "ofm", "cfid", "ofm+cfid")


@dataclass(frozen=True)
class OCrystalNetConfig:
    """Everything that decides the architecture (stored as ``init`` in ``model.json``)."""

    atom_input: str = "ofm+cfid"
    use_charge: bool = True
    use_cell: bool = True
    global_features: tuple[str, ...] = field(default_factory=tuple)
    readout: str = "mean"
    num_layers: int = 3
    hidden: int = 64
    mlp_hidden: int = 128
    rbf_stop: float = 8.0
    rbf_step: float = 0.2
    charge_dropout: float = 0.25
    descriptor_clip: float = 0.0  # as ModelConfig.descriptor_clip
    n_targets: int = 1  # as ModelConfig.n_targets

    def __post_init__(self) -> None:
        if self.atom_input not in ATOM_INPUTS:
            raise ValueError(f"atom_input must be one of {ATOM_INPUTS}, not {self.atom_input!r}")
        if self.readout not in READOUTS:
            raise ValueError(f"readout must be one of {sorted(READOUTS)}, not {self.readout!r}")
        if self.num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, not {self.num_layers}")
        check_n_targets(self.n_targets)

    @property
    def columns(self) -> tuple[str, ...]:
        """The optional graph columns this model reads."""
        if "ofm" in self.atom_input:
            return (REVERSE_EDGES, ORBITAL_NEIGHBOUR_SUM)
        return (REVERSE_EDGES,)

    def to_json(self) -> dict[str, Any]:
        return config_json(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> OCrystalNetConfig:
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown OCrystalNet config keys {sorted(unknown)}")
        d = dict(d)
        d["global_features"] = tuple(d.get("global_features", ()))
        return cls(**d)


VARIANTS: dict[str, OCrystalNetConfig] = {
    "ocrystalnet": OCrystalNetConfig(),
    # The global descriptor names are filled in from the shards by `mofsieve train`.
    "de-ocrystalnet": OCrystalNetConfig(),
}


def variant_config(name: str, **overrides: Any) -> OCrystalNetConfig:
    if name not in VARIANTS:
        raise ValueError(f"unknown OCrystalNet variant {name!r}; choose from {sorted(VARIANTS)}")
    return replace(VARIANTS[name], **overrides)


def standardised_cfid() -> np.ndarray:
    """MAX_Z×438 CFID properties, each column standardised over the elements that have it;
    missing values and elements without data are 0 (the mean)."""
    raw = element_table()["cfid"].astype(np.float64)
    mean = np.nanmean(raw, axis=0)
    std = np.nanstd(raw, axis=0)
    std[~(std > 0)] = 1.0
    scaled = np.nan_to_num((raw - mean) / std, nan=0.0)
    out = np.zeros((MAX_Z, raw.shape[1]), dtype=np.float32)
    out[: raw.shape[0]] = scaled[:MAX_Z]
    return out


class OrbitalAtomEncoder(nn.Module):
    """Atom input → hidden width, from the parts ``atom_input`` names (module docstring)."""

    def __init__(self, atom_input: str, hidden: int) -> None:
        super().__init__()
        self.atom_input = atom_input
        if atom_input == "embedding":
            self.embed = nn.Embedding(MAX_Z, hidden)
            return
        width = 0
        if "ofm" in atom_input:
            onehot = np.zeros((MAX_Z, ORBITAL_DIM), dtype=np.float32)
            table = onehot_table()
            onehot[: table.shape[0]] = table[:MAX_Z]
            self.register_buffer("onehot", torch.from_numpy(onehot))
            width += ORBITAL_DIM * ORBITAL_DIM + ORBITAL_DIM
        if "cfid" in atom_input:
            self.register_buffer("cfid", torch.from_numpy(standardised_cfid()))
            width += self.cfid.size(1)
        self.lin = nn.Linear(width, hidden)

    @property
    def raw_dim(self) -> int:
        return 0 if self.atom_input == "embedding" else self.lin.in_features

    def forward(self, data: Any) -> Tensor:
        if self.atom_input == "embedding":
            return self.embed(data.z)
        parts = []
        if "ofm" in self.atom_input:
            o = self.onehot[data.z]
            ofm = o.unsqueeze(-1) * data.orbital_sum.unsqueeze(-2)  # X^c = o(c) ⊗ s(c)
            parts += [ofm.flatten(1), o]
        if "cfid" in self.atom_input:
            parts.append(self.cfid[data.z])
        return self.lin(torch.cat(parts, dim=-1))


class OCrystalNet(CrystalRegressor):
    """Crystal graph with reverse edges → one standardised target value per crystal.

    ``forward(data)`` takes a PyG batch with ``z``, ``edge_index``, ``edge_dist``,
    ``edge_reverse``, ``batch`` and, as the config needs them, ``orbital_sum``, ``charge``,
    ``lattice`` and ``global_features`` (see :func:`mofsieve.batching.graph_to_data`).
    """

    ARCHITECTURE = ARCHITECTURE

    def __init__(self, config: OCrystalNetConfig) -> None:
        super().__init__()
        self.config = config
        cfg = config
        self.rbf = GaussianExpansion(0.0, cfg.rbf_stop, cfg.rbf_step)
        self.encoder = OrbitalAtomEncoder(cfg.atom_input, cfg.hidden)
        self._init_charge(cfg.hidden)
        self.edge_embed = DirectedEdgeEmbedding(cfg.hidden, self.rbf.num_features, cfg.hidden)
        self.aggregate = MeanMaxAggregation()
        self.edge_updates = nn.ModuleList(
            CommunicativeEdgeUpdate(cfg.hidden) for _ in range(cfg.num_layers)
        )
        self.node_out = nn.Linear(3 * cfg.hidden, cfg.hidden)
        self.readout = (
            READOUTS[cfg.readout](cfg.hidden)
            if cfg.readout == "attention"
            else READOUTS[cfg.readout]()
        )
        self._init_head(cfg.hidden)

    def atom_states(self, data: Any) -> Tensor:
        """h_out (N×hidden): every atom's state after the communicative layers."""
        edge_index, reverse = data.edge_index, data.edge_reverse
        check_reverse(edge_index, reverse)
        n = int(data.z.size(0))
        x = self.add_charge(self.encoder(data), data)
        h0 = F.mish(x)
        e0 = self.edge_embed(x, edge_index, self.rbf(data.edge_dist))
        h, e = h0, e0
        for update in self.edge_updates:
            h = h + self.aggregate(e, edge_index, n)
            e = update(h, edge_index, e, e0, reverse)
        m = self.aggregate(e, edge_index, n)
        return F.mish(self.node_out(torch.cat([m, h, h0], dim=-1)))

    def crystal_vectors(self, data: Any) -> tuple[Tensor, Tensor | None]:
        if getattr(data, "multiplicity", None) is not None:
            raise ValueError("OCrystalNet runs on every atom: merged (multiplicity) batches")
        x = self.atom_states(data)
        return self.readout(x, data.batch, int(data.num_graphs))
