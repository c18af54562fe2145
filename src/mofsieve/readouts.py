"""Readouts: per-atom features of a crystal → one crystal vector (mean, sum or attention).

Attention pooling also returns each atom's weight: the atom importances the report draws.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter, softmax

# ``weight`` (N,), where given, is how many atoms each row stands for: predict runs the model
# once per set of equivalent atoms (mofsieve.symmetry) and the readout counts each row that
# many times, which gives the crystal vector of the full graph.


class MeanReadout(nn.Module):
    """c = (1/N) Σ_i v_i: intensive targets (uptake per mass) do not grow with the cell."""

    def reset_parameters(self) -> None:
        pass

    def forward(
        self, x: Tensor, batch: Tensor, num_graphs: int, weight: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        if weight is None:
            return scatter(x, batch, dim=0, dim_size=num_graphs, reduce="mean"), None
        total = scatter(weight.unsqueeze(-1) * x, batch, dim=0, dim_size=num_graphs, reduce="sum")
        count = scatter(weight, batch, dim=0, dim_size=num_graphs, reduce="sum")
        return total / count.clamp_min(1).unsqueeze(-1), None


class SumReadout(nn.Module):
    """c = Σ_i v_i, for extensive targets."""

    def reset_parameters(self) -> None:
        pass

    def forward(
        self, x: Tensor, batch: Tensor, num_graphs: int, weight: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        if weight is not None:
            x = weight.unsqueeze(-1) * x
        return scatter(x, batch, dim=0, dim_size=num_graphs, reduce="sum"), None


class AttentionReadout(nn.Module):
    r"""Attention pooling: :math:`c = \sum_i \operatorname{softmax}_i(a_i)\, v_i`,
    :math:`a_i = w_2^\top \tanh(W_1 v_i + b_1)`.

    Returns the per-atom weights (summing to 1 over each crystal's atoms) alongside ``c``:
    they are the atom importances the report draws. With row weights :math:`m_r` the softmax
    runs over rows with scores :math:`a_r + \log m_r` (the :math:`m_r` equal terms of the
    full sum), and each atom's weight is its row's divided by :math:`m_r`.
    """

    def __init__(self, channels: int, hidden: int = 64) -> None:
        super().__init__()
        self.lin1 = nn.Linear(channels, hidden)
        self.lin2 = nn.Linear(hidden, 1, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.lin1.reset_parameters()
        self.lin2.reset_parameters()

    def forward(
        self, x: Tensor, batch: Tensor, num_graphs: int, weight: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        score = self.lin2(torch.tanh(self.lin1(x))).squeeze(-1)
        if weight is not None:
            score = score + weight.log()
        weights = softmax(score, batch, num_nodes=num_graphs)
        pooled = scatter(weights.unsqueeze(-1) * x, batch, dim=0, dim_size=num_graphs, reduce="sum")
        if weight is not None:
            weights = weights / weight
        return pooled, weights


READOUTS = {"mean": MeanReadout, "sum": SumReadout, "attention": AttentionReadout}
