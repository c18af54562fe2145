"""Graph layers of the AE-CGCNN surrogate, one ``MessagePassing`` class per operator.

Notation: atom features ``v`` (N×F), edge features ``e`` (E×D), ``edge_index = [j, i]``
(messages flow from neighbour ``j`` to centre ``i``; ``k`` tells apart periodic images of the
same pair), ``z_ijk = v_i ⊕ v_j ⊕ e_ijk``, ``g`` = softplus, ``σ`` = sigmoid.

Why the layers are cheap: every layer starts with a linear map of ``z_ijk``. Done per edge
that is an (E × (2F+D)) · ((2F+D) × H) product over ~12 edges per atom. Because the map is
linear it splits, ``W·(v_i ⊕ v_j ⊕ e) = W_i v_i + W_j v_j + W_e e``: the node terms are
computed once per atom and gathered, and only ``W_e e`` (D=41 or 42 columns) is per edge.
:class:`PairProjection` does this; its ``per_edge`` switch runs the textbook concatenation
with the very same weights, which is what ``bench/predict.py`` compares against.

Shards store each atom's K nearest neighbours contiguously, so edge tensors reshape to
N×K×C. When :func:`regular_degree` finds that layout, the layers take a dense path with the
same numbers: ``v_i`` is broadcast over the K neighbours instead of gathered, the neighbour
softmax is a softmax over one axis, and the weighted sum of messages is one batched matrix
product instead of a multiply and a scatter. Other graphs take PyG's ``propagate``.

For inference on CPU, :mod:`mofsieve.fused` goes one step further where it can be built:
CGConv's, EdgeConv's and the attention layers' per-edge chain (gather, add, activation, neighbour
softmax, weighted sum) runs as one compiled pass per edge, and the matrix products stay
here (:meth:`PairProjection.parts`). :func:`fused_kernels` decides when: evaluation mode,
no gradients, float32 CPU tensors in the regular layout. The PyTorch code here is the
reference the fused kernels are tested against, and what training and GPUs run.
"""

from __future__ import annotations

import math
from types import ModuleType

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import softmax

from mofsieve import fused

_RBF_EXPONENT_CAP = 50.0
# exp(-50) as the float32 exp computes it: a basis value at or below it was clamped.
_RBF_FLOOR = float(torch.exp(torch.tensor(-_RBF_EXPONENT_CAP)))


class GaussianExpansion(nn.Module):
    """Distances (E,) → radial basis exp(-(d - μ_k)² / w²), μ_k = start, start+step, …, stop.

    Runs on the model's device, so shards only store distances.
    """

    def __init__(
        self, start: float = 0.0, stop: float = 8.0, step: float = 0.2, width: float | None = None
    ) -> None:
        super().__init__()
        n = int(round((stop - start) / step)) + 1
        self.register_buffer("centers", torch.linspace(start, stop, n), persistent=False)
        self.width = float(width if width is not None else step)

    @property
    def num_features(self) -> int:
        return int(self.centers.numel())

    def forward(self, dist: Tensor) -> Tensor:
        # Most (distance, centre) pairs lie far apart. exp(-x) for x > 87 underflows, which
        # takes the CPU's slow path (4× slower exp), and for x in ~(87, 103) leaves denormal
        # floats that make the matrix products after it ten times slower. Clamped at 50 and
        # zeroed, those basis values (< 2e-22) are zero for every purpose.
        scaled = (dist.unsqueeze(-1) - self.centers).mul_(1.0 / self.width)
        if dist.requires_grad:  # (distances are data; only a caller differentiating needs this)
            exponent = scaled.square().clamp(max=_RBF_EXPONENT_CAP)
            return torch.exp(-exponent).masked_fill(exponent >= _RBF_EXPONENT_CAP, 0.0)
        # E×centres is the largest tensor before the layers: one allocation, the rest in place.
        basis = scaled.square_().clamp_(max=_RBF_EXPONENT_CAP).neg_().exp_()
        return F.threshold_(basis, _RBF_FLOOR, 0.0)


class _GatherRows(torch.autograd.Function):
    """``x[index]`` whose backward is one ``scatter_add_`` (3× faster on CPU than the
    accumulating ``index_put_`` that autograd uses for advanced indexing)."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: Tensor, index: Tensor) -> Tensor:
        ctx.save_for_backward(index)
        ctx.num_rows = x.size(0)  # type: ignore[attr-defined]
        return x.index_select(0, index)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> tuple[Tensor, None]:
        (index,) = ctx.saved_tensors  # type: ignore[attr-defined]
        grad = grad.contiguous()
        out = grad.new_zeros((ctx.num_rows, *grad.shape[1:]))  # type: ignore[attr-defined]
        expanded = index.view(-1, *([1] * (grad.dim() - 1))).expand_as(grad)
        return out.scatter_add_(0, expanded, grad), None


def gather_rows(x: Tensor, index: Tensor) -> Tensor:
    """Rows of ``x`` at ``index`` (differentiable in ``x``)."""
    return _GatherRows.apply(x, index)


def batch_norm_affine(norm: nn.BatchNorm1d) -> tuple[Tensor, Tensor]:
    """(scale, shift) with ``norm(y) = scale ⊙ y + shift`` in evaluation mode."""
    assert norm.running_mean is not None and norm.running_var is not None
    scale = torch.rsqrt(norm.running_var + norm.eps)
    if norm.weight is not None:
        scale = scale * norm.weight
    shift = -norm.running_mean * scale
    if norm.bias is not None:
        shift = shift + norm.bias
    return scale, shift


class PairProjection(nn.Module):
    """``W·(v_i ⊕ v_j ⊕ e) + b`` for every edge, computed as ``W_i v_i + W_j v_j + W_e e + b``.

    ``per_edge=True`` gathers ``v_i`` and ``v_j`` to every edge, concatenates and multiplies by
    the stacked weight, the straightforward form; both give the same numbers.
    """

    per_edge: bool = False

    def __init__(self, node_dim: int, edge_dim: int, out_dim: int, bias: bool = True) -> None:
        super().__init__()
        self.lin_i = nn.Linear(node_dim, out_dim, bias=bias)
        self.lin_j = nn.Linear(node_dim, out_dim, bias=False)
        self.lin_e = nn.Linear(edge_dim, out_dim, bias=False)

    def reset_parameters(self) -> None:
        # One fan-in for the three parts, as if they were one Linear over the concatenation.
        fan_in = self.lin_i.in_features + self.lin_j.in_features + self.lin_e.in_features
        bound = 1.0 / math.sqrt(fan_in)
        for lin in (self.lin_i, self.lin_j, self.lin_e):
            nn.init.uniform_(lin.weight, -bound, bound)
        if self.lin_i.bias is not None:
            nn.init.uniform_(self.lin_i.bias, -bound, bound)

    def _weights(
        self, affine: tuple[Tensor, Tensor] | None
    ) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        w_i, w_j, w_e, bias = (
            self.lin_i.weight,
            self.lin_j.weight,
            self.lin_e.weight,
            self.lin_i.bias,
        )
        if affine is not None:
            scale, shift = affine
            w_i, w_j, w_e = (w * scale.unsqueeze(1) for w in (w_i, w_j, w_e))
            bias = shift if bias is None else bias * scale + shift
        return w_i, w_j, w_e, bias

    def forward(
        self,
        x: Tensor,
        edge_attr: Tensor,
        edge_index: Tensor,
        degree: int | None = None,
        affine: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        """E×out; ``degree`` K (see :func:`regular_degree`) lets ``v_i`` broadcast.

        ``affine = (scale, shift)`` returns ``scale ⊙ (W·z + b) + shift`` by scaling the
        weights instead of the E×out result: how an evaluation-mode BatchNorm after the
        projection costs nothing per edge."""
        src, dst = edge_index[0], edge_index[1]
        w_i, w_j, w_e, bias = self._weights(affine)
        if self.per_edge:
            z = torch.cat([x[dst], x[src], edge_attr], dim=-1)
            return F.linear(z, torch.cat([w_i, w_j, w_e], dim=1), bias)
        # The edge term is accumulated by the matrix product itself (beta = 1), not added
        # in a pass of its own.
        # (.to() is a no-op in float32; under autocast the in-place product needs one dtype)
        out = gather_rows(F.linear(x, w_j), src)
        out.addmm_(edge_attr.to(out.dtype), w_e.t().to(out.dtype))
        if degree:
            node_term = F.linear(x, w_i, bias).unsqueeze(1)
            return out.view(x.size(0), degree, -1).add_(node_term).view_as(out)
        return out.add_(gather_rows(F.linear(x, w_i, bias), dst))

    def parts(
        self, x: Tensor, edge_attr: Tensor, affine: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The three terms before they are combined, for the fused kernels: ``(W_j v, W_i v
        + b, W_e e)``, N×out, N×out, E×out."""
        w_i, w_j, w_e, bias = self._weights(affine)
        return F.linear(x, w_j), F.linear(x, w_i, bias), torch.mm(edge_attr, w_e.t())


def fused_kernels(x: Tensor, degree: int | None, training: bool) -> ModuleType | None:
    """The fused CPU kernels (:mod:`mofsieve.fused`) where they give this module's numbers:
    inference (evaluation mode, no gradients, no autocast to lower precision) on float32 CPU
    tensors in the shards' regular layout; else None."""
    if training or not degree or torch.is_grad_enabled():
        return None
    if x.device.type != "cpu" or x.dtype != torch.float32 or torch.is_autocast_enabled("cpu"):
        return None
    return fused.kernels()


class CGConv(MessagePassing):
    r"""Crystal graph convolution of Xie & Grossman (the CGCNN baseline).

    .. math::
        v_i' = v_i + \mathrm{BN}\Big(\sum_{j,k} \sigma(z_{ijk} W_c + b_c) \odot
               g(z_{ijk} W_s + b_s)\Big), \qquad z_{ijk} = v_i \oplus v_j \oplus e_{ijk}

    The per-channel sigmoid gate weighs each neighbour independently (no normalisation).
    For inference on CPU (:func:`fused_kernels`) the gate, message, sum over neighbours,
    BatchNorm (its evaluation-mode affine) and residual run as one compiled pass
    (``cgconv`` in :mod:`mofsieve.fused`, same numbers); ``bench/charge_model_speed.py``
    measures it in the charge model, whose three layers these are.
    """

    def __init__(self, channels: int, edge_dim: int) -> None:
        super().__init__(aggr="sum")
        self.channels = channels
        self.pair = PairProjection(channels, edge_dim, 2 * channels)
        self.norm = nn.BatchNorm1d(channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.pair.reset_parameters()
        self.norm.reset_parameters()

    def forward(
        self, x: Tensor, edge_index: Tensor, edge_attr: Tensor, degree: int | None = None
    ) -> Tensor:
        n = x.size(0)
        kernels = fused_kernels(x, degree, self.training)
        # Without running statistics BatchNorm normalises by the batch's own, even in
        # evaluation mode: no fixed affine for the kernel to apply.
        if kernels is not None and self.norm.running_mean is not None:
            scale, shift = batch_norm_affine(self.norm)
            node_j, node_i, edge_term = self.pair.parts(x, edge_attr)
            return kernels.cgconv(
                node_j,
                node_i,
                edge_term,
                edge_index[0].contiguous(),
                degree,
                x.contiguous(),
                scale.contiguous(),
                shift.contiguous(),
            )
        zw = self.pair(x, edge_attr, edge_index, degree)
        if degree:
            aggregated = self.message(zw).view(n, degree, -1).sum(dim=1)
        else:
            aggregated = self.propagate(edge_index, zw=zw, size=(n, n))
        return x + self.norm(aggregated)

    def message(self, zw: Tensor) -> Tensor:
        gate, core = zw.chunk(2, dim=-1)
        return torch.sigmoid(gate) * F.softplus(core)


class EdgeConv(MessagePassing):
    r"""Edge convolution (+Edge): edge features evolve with the atoms at their two ends.

    .. math::
        e_{ijk}' = e_{ijk} + g\big(\mathrm{BN}(z_{ijk} W_e + b_e)\big)

    i.e. :math:`e' = \Gamma(e \oplus v_i \oplus v_j)` with a residual, so that a layer that
    learns nothing leaves the distances' expansion intact. Implemented through PyG's
    ``edge_updater``; it aggregates nothing.
    """

    def __init__(self, node_dim: int, edge_dim: int) -> None:
        super().__init__(aggr="sum")
        self.pair = PairProjection(node_dim, edge_dim, edge_dim)
        self.norm = nn.BatchNorm1d(edge_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.pair.reset_parameters()
        self.norm.reset_parameters()

    def forward(
        self, x: Tensor, edge_index: Tensor, edge_attr: Tensor, degree: int | None = None
    ) -> Tensor:
        return self.edge_updater(edge_index, x=x, edge_attr=edge_attr, degree=degree)

    def edge_update(
        self, x: Tensor, edge_attr: Tensor, edge_index: Tensor, degree: int | None
    ) -> Tensor:
        # x is the full node matrix here (no _i/_j suffix), PairProjection does the gathering.
        if self.training or self.norm.running_mean is None:
            pre = self.norm(self.pair(x, edge_attr, edge_index, degree))
        else:
            affine = batch_norm_affine(self.norm)
            kernels = fused_kernels(x, degree, self.training)
            if kernels is not None:
                node_j, node_i, edge_term = self.pair.parts(x, edge_attr, affine)
                return kernels.edge_update(
                    node_j,
                    node_i,
                    edge_term,
                    edge_attr.contiguous(),
                    edge_index[0].contiguous(),
                    degree,
                )
            pre = self.pair(x, edge_attr, edge_index, degree, affine=affine)
        # softplus' backward needs its input, not its output, so the residual adds in place.
        return F.softplus(pre).add_(edge_attr.to(pre.dtype))


def incoming_ptr(index: Tensor, num_nodes: int) -> Tensor | None:
    """CSR pointer of edges grouped by centre atom, or None if they are not grouped.

    Shards store each centre's neighbours contiguously; with a pointer, PyG's ``softmax``
    takes its segment path, much faster on CPU than scatter-max over an unsorted index.
    """
    if index.numel() > 1 and not bool((index[1:] >= index[:-1]).all()):
        return None
    counts = torch.bincount(index, minlength=num_nodes)
    return torch.cat([counts.new_zeros(1), counts.cumsum(0)])


def regular_degree(index: Tensor, num_nodes: int) -> int | None:
    """K if the edges are grouped by centre atom with exactly K per atom (the shards' layout:
    each atom's K nearest neighbours), else None."""
    if num_nodes == 0 or index.numel() % num_nodes:
        return None
    degree = index.numel() // num_nodes
    expected = torch.arange(num_nodes, device=index.device).repeat_interleave(degree)
    return degree if degree and bool(torch.equal(index, expected)) else None


class GraphAttentionConv(MessagePassing):
    r"""Softmax neighbour attention (+Attention): the CGCNN gate normalised over neighbours.

    .. math::
        u_{ijk} = z_{ijk} W + b, \quad
        \alpha^{m}_{ijk} = \operatorname{softmax}_{(j,k) \in \mathcal{N}(i)}
                       \big(a_m^\top \mathrm{LeakyReLU}(u_{ijk})\big), \quad
        h^{m}_i = \sum_{j,k} \alpha^{m}_{ijk}\, g(u_{ijk}), \quad
        v_i' = v_i + \mathrm{BN}\big(\textstyle\sum_m \beta^m_i h^m_i\big)

    With one head (:math:`\beta = 1`) this is the +Attention column: one scalar weight per
    edge, summing to 1 over the incident edges of each atom, scored GATv2-style from the same
    projection that gives the message, so the layer costs less than a CGCNN layer. Heads share
    the message :math:`g(u)` and differ in their scores :math:`a_m`; how they are combined
    (:math:`\beta`) is what the subclasses change. Since the heads share the message,
    :math:`\sum_m \beta^m_i h^m_i = \sum_{j,k} w_{ijk} g(u_{ijk})` with
    :math:`w_{ijk} = \sum_m \beta^m_i \alpha^m_{ijk}`, so a layer aggregates once, not once
    per head.
    """

    def __init__(
        self, channels: int, edge_dim: int, heads: int = 1, negative_slope: float = 0.2
    ) -> None:
        super().__init__(aggr="sum")
        self.channels = channels
        self.heads = heads
        self.negative_slope = negative_slope
        self.pair = PairProjection(channels, edge_dim, channels)
        self.att = nn.Linear(channels, heads, bias=False)
        self.norm = nn.BatchNorm1d(channels)
        self._init_head_combination()
        self.reset_parameters()

    def _init_head_combination(self) -> None:
        """Subclasses that learn how to combine heads create their parameters here."""

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.pair.reset_parameters()
        self.att.reset_parameters()
        self.norm.reset_parameters()

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor,
        edge_attr: Tensor,
        return_attention_weights: bool = False,
        degree: int | None = None,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """New atom features; with ``return_attention_weights`` also the per-head weights
        α (E×heads) and the combined edge weights w (E,), each summing to 1 per atom."""
        n = x.size(0)
        dst = edge_index[1]
        kernels = None if return_attention_weights else fused_kernels(x, degree, self.training)
        if kernels is not None and 0.0 <= self.negative_slope <= 1.0:
            node_j, node_i, edge_term = self.pair.parts(x, edge_attr)
            aggregated = kernels.attention(
                node_j,
                node_i,
                edge_term,
                edge_index[0].contiguous(),
                self.att.weight.contiguous(),
                self.head_weights(x).contiguous(),
                degree,
                self.negative_slope,
            )
            return x + self.norm(aggregated)
        u = self.pair(x, edge_attr, edge_index, degree)
        score = self.att(F.leaky_relu(u, self.negative_slope))  # E × heads
        if degree:
            alpha = torch.softmax(score.view(n, degree, self.heads), dim=1).view_as(score)
            weight = self.edge_weight(alpha, x, dst, degree)
            # Σ_jk w_ijk g(u_ijk) for every atom at once: (N×1×K)·(N×K×C).
            aggregated = torch.bmm(weight.view(n, 1, degree), F.softplus(u).view(n, degree, -1))
            aggregated = aggregated.squeeze(1)
        else:
            alpha = softmax(score, dst, incoming_ptr(dst, n), num_nodes=n)
            weight = self.edge_weight(alpha, x, dst)
            aggregated = self.propagate(edge_index, u=u, weight=weight, size=(n, n))
        out = x + self.norm(aggregated)
        if return_attention_weights:
            return out, (alpha, weight)
        return out

    def head_weights(self, x: Tensor) -> Tensor:
        """β (N×heads): how each atom weighs its heads; here equal (1/M)."""
        return x.new_full((x.size(0), self.heads), 1.0 / self.heads)

    def edge_weight(
        self, alpha: Tensor, x: Tensor, dst: Tensor, degree: int | None = None
    ) -> Tensor:
        """Combine the heads' weights into one per edge (E,); one head passes through."""
        return alpha.mean(dim=-1)

    def message(self, u: Tensor, weight: Tensor) -> Tensor:
        return weight.unsqueeze(-1) * F.softplus(u)


class MultiHeadAttentionConv(GraphAttentionConv):
    r"""Multi-head neighbour attention with averaging (+AttenII).

    .. math::
        v_i' = v_i + \mathrm{BN}\Big(\frac{1}{M} \sum_{m=1}^{M} \sum_{j,k}
               \alpha^{m}_{ijk}\, g(u_{ijk})\Big)

    with :math:`\alpha^m` as in :class:`GraphAttentionConv`, one score vector per head.
    """

    def __init__(self, channels: int, edge_dim: int, heads: int = 3) -> None:
        super().__init__(channels, edge_dim, heads=heads)


class HeadAttentionConv(GraphAttentionConv):
    r"""Multi-head neighbour attention whose heads are combined by attention (+AttenIII).

    .. math::
        \beta_i^m = \operatorname{softmax}_m\big(q_m^\top v_i + c_m\big), \quad
        v_i' = v_i + \mathrm{BN}\Big(\sum_m \beta_i^m \sum_{j,k}
               \alpha^{m}_{ijk}\, g(u_{ijk})\Big)

    Each atom learns which head's view of its neighbourhood to trust: a softmax over heads
    replaces the fixed 1/M of :class:`MultiHeadAttentionConv`.
    """

    def __init__(self, channels: int, edge_dim: int, heads: int = 3) -> None:
        super().__init__(channels, edge_dim, heads=heads)

    def _init_head_combination(self) -> None:
        self.head_query = nn.Linear(self.channels, self.heads)
        self.last_head_weights: Tensor | None = None

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.head_query.reset_parameters()

    def head_weights(self, x: Tensor) -> Tensor:
        beta = torch.softmax(self.head_query(x), dim=-1)  # N × heads, sums to 1 per atom
        self.last_head_weights = beta.detach()
        return beta

    def edge_weight(
        self, alpha: Tensor, x: Tensor, dst: Tensor, degree: int | None = None
    ) -> Tensor:
        beta = self.head_weights(x)
        if degree:
            n = x.size(0)
            return (alpha.view(n, degree, -1) * beta.unsqueeze(1)).sum(dim=-1).view(-1)
        return (alpha * gather_rows(beta, dst)).sum(dim=-1)


# ---------------------------------------------------------------------------------------------
# Readouts: crystal vector from atom vectors. Not message passing; plain modules.
