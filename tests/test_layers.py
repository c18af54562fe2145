from __future__ import annotations

import pytest
import torch

from mofsieve.layers import (
    CGConv,
    EdgeConv,
    GaussianExpansion,
    GraphAttentionConv,
    HeadAttentionConv,
    MultiHeadAttentionConv,
    PairProjection,
    gather_rows,
    incoming_ptr,
    regular_degree,
)
from mofsieve.readouts import AttentionReadout, MeanReadout, SumReadout

F, D = 16, 41


def _graph(
    n: int = 30, k: int = 5, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random features, ``k`` incoming edges per atom grouped by centre (as in shards)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, F, generator=g)
    dst = torch.arange(n).repeat_interleave(k)
    src = torch.randint(0, n, (n * k,), generator=g)
    e = torch.rand(n * k, D, generator=g)
    return x, torch.stack([src, dst]), e


def test_gaussian_expansion_grid_and_peak():
    rbf = GaussianExpansion(0.0, 8.0, 0.2)
    assert rbf.num_features == 41
    out = rbf(torch.tensor([0.0, 4.0, 8.0, 20.0]))
    assert out.shape == (4, 41)
    assert out[1, 20] == pytest.approx(1.0)  # centre 4.0 Å
    assert out[3].abs().sum() == 0  # far beyond the grid: exactly zero, no denormals
    tiny = out[(out > 0) & (out < 1e-30)]
    assert tiny.numel() == 0


def test_gaussian_expansion_in_place_path_equals_differentiable_path():
    """Inference builds the basis in place; a caller differentiating through distances
    takes the out-of-place path. Same numbers, and the gradient exists."""
    rbf = GaussianExpansion(0.0, 8.0, 0.2)
    dist = torch.linspace(0.5, 9.5, 500)
    fast = rbf(dist)
    dist_grad = dist.clone().requires_grad_(True)
    slow = rbf(dist_grad)
    torch.testing.assert_close(fast, slow.detach(), rtol=0, atol=0)
    slow.sum().backward()
    assert torch.isfinite(dist_grad.grad).all() and dist_grad.grad.abs().sum() > 0


def test_pair_projection_equals_per_edge_concatenation():
    x, edge_index, e = _graph()
    proj = PairProjection(F, D, 24)
    fast = proj(x, e, edge_index)
    proj.per_edge = True
    slow = proj(x, e, edge_index)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)


def test_gather_rows_gradient_matches_indexing():
    x = torch.randn(7, 3, requires_grad=True)
    index = torch.tensor([0, 3, 3, 6, 0, 1])
    grad = torch.randn(6, 3)
    (gx,) = torch.autograd.grad(gather_rows(x, index), x, grad)
    (ref,) = torch.autograd.grad(x[index], x, grad)
    torch.testing.assert_close(gx, ref)


def test_incoming_ptr_only_for_grouped_edges():
    assert incoming_ptr(torch.tensor([0, 0, 1, 3]), 4).tolist() == [0, 2, 3, 3, 4]
    assert incoming_ptr(torch.tensor([1, 0]), 2) is None


@pytest.mark.parametrize(
    "layer",
    [
        lambda: CGConv(F, D),
        lambda: GraphAttentionConv(F, D),
        lambda: MultiHeadAttentionConv(F, D, heads=3),
        lambda: HeadAttentionConv(F, D, heads=3),
    ],
    ids=["cgcnn", "attention", "multihead", "headattention"],
)
def test_node_layers_shapes_and_finite_gradients(layer):
    x, edge_index, e = _graph()
    x.requires_grad_(True)
    conv = layer()
    out = conv(x, edge_index, e)
    assert out.shape == x.shape
    out.pow(2).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for name, p in conv.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    conv.reset_parameters()


@pytest.mark.parametrize("degree", [5, None], ids=["dense", "general"])
def test_edge_conv_eval_folds_batch_norm_into_projection(degree):
    """In evaluation mode EdgeConv scales the projection's weights by the BatchNorm's affine
    map instead of normalising E×D values; the result must be BN(projection) exactly as
    written, with non-trivial running statistics."""
    g = torch.Generator().manual_seed(3)
    x, edge_index, e = _graph(n=30, k=5)
    conv = EdgeConv(F, D)
    with torch.no_grad():
        conv.norm.running_mean.copy_(torch.randn(D, generator=g))
        conv.norm.running_var.copy_(torch.rand(D, generator=g) * 3 + 0.1)
        conv.norm.weight.copy_(torch.randn(D, generator=g))
        conv.norm.bias.copy_(torch.randn(D, generator=g))
    conv.eval()
    folded = conv(x, edge_index, e, degree=degree)
    conv.pair.per_edge = True
    as_written = e + torch.nn.functional.softplus(conv.norm(conv.pair(x, e, edge_index)))
    torch.testing.assert_close(folded, as_written, rtol=1e-5, atol=1e-5)
    # Training mode normalises with the batch's statistics, so the fold must not be used.
    conv.pair.per_edge = False
    assert not torch.allclose(conv.train()(x, edge_index, e, degree=degree), folded, atol=1e-3)


def test_edge_conv_shapes_and_gradient():
    x, edge_index, e = _graph()
    e.requires_grad_(True)
    conv = EdgeConv(F, D)
    out = conv(x, edge_index, e)
    assert out.shape == e.shape
    out.sum().backward()
    assert torch.isfinite(e.grad).all()


@pytest.mark.parametrize("cls", [GraphAttentionConv, MultiHeadAttentionConv, HeadAttentionConv])
def test_neighbour_attention_sums_to_one_per_atom(cls):
    x, edge_index, e = _graph(k=7)
    conv = cls(F, D) if cls is GraphAttentionConv else cls(F, D, heads=3)
    _, (alpha, weight) = conv(x, edge_index, e, return_attention_weights=True)
    n = x.size(0)
    per_head = torch.zeros(n, alpha.size(1)).index_add_(0, edge_index[1], alpha)
    combined = torch.zeros(n).index_add_(0, edge_index[1], weight)
    torch.testing.assert_close(per_head, torch.ones_like(per_head))
    torch.testing.assert_close(combined, torch.ones(n))
    if cls is HeadAttentionConv:
        torch.testing.assert_close(conv.last_head_weights.sum(-1), torch.ones(n))


def test_attention_also_works_on_unsorted_edges():
    x, edge_index, e = _graph()
    perm = torch.randperm(edge_index.size(1), generator=torch.Generator().manual_seed(1))
    conv = GraphAttentionConv(F, D).eval()
    torch.testing.assert_close(conv(x, edge_index, e), conv(x, edge_index[:, perm], e[perm]))


@pytest.mark.parametrize(
    "readout", [MeanReadout(), SumReadout(), AttentionReadout(F)], ids=["mean", "sum", "attention"]
)
def test_readout_is_permutation_invariant(readout):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(12, F, generator=g)
    batch = torch.tensor([0] * 5 + [1] * 7)
    perm = torch.cat([torch.randperm(5, generator=g), 5 + torch.randperm(7, generator=g)])
    pooled, _ = readout(x, batch, 2)
    pooled_perm, _ = readout(x[perm], batch[perm], 2)
    assert pooled.shape == (2, F)
    torch.testing.assert_close(pooled, pooled_perm)


def test_attention_readout_weights_sum_to_one_per_crystal_and_have_gradients():
    x = torch.randn(12, F, requires_grad=True)
    batch = torch.tensor([0] * 5 + [1] * 7)
    pooled, weights = AttentionReadout(F)(x, batch, 2)
    assert weights.shape == (12,)
    torch.testing.assert_close(torch.zeros(2).index_add_(0, batch, weights), torch.ones(2))
    pooled.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_regular_degree_only_for_k_edges_per_atom_grouped_by_centre():
    _, edge_index, _ = _graph(n=30, k=5)
    assert regular_degree(edge_index[1], 30) == 5
    assert regular_degree(edge_index[1].flip(0), 30) is None  # not grouped
    assert regular_degree(torch.tensor([0, 0, 1, 2, 2, 2]), 3) is None  # 2, 1, 3 edges
    assert regular_degree(torch.tensor([0, 0, 2, 2, 2, 2]), 3) is None  # atom 1 has none
    assert regular_degree(torch.zeros(0, dtype=torch.long), 4) is None


def _outputs_and_grads(layer: torch.nn.Module, x, edge_index, e, degree):
    x = x.clone().requires_grad_(True)
    e = e.clone().requires_grad_(True)
    layer.zero_grad()
    out = layer(x, edge_index, e, degree=degree)
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    grads = [p.grad.clone() for p in layer.parameters()]
    return out.detach(), x.grad, e.grad, grads


@pytest.mark.parametrize(
    "make",
    [
        lambda: CGConv(F, D),
        lambda: EdgeConv(F, D),
        lambda: GraphAttentionConv(F, D),
        lambda: MultiHeadAttentionConv(F, D, heads=3),
        lambda: HeadAttentionConv(F, D, heads=3),
    ],
    ids=["cgcnn", "edge", "attention", "multihead", "head-attention"],
)
def test_dense_path_equals_message_passing(make):
    """Same outputs and gradients whether the layer uses the N×K layout or ``propagate``."""
    torch.manual_seed(0)
    layer = make().train()
    x, edge_index, e = _graph(n=30, k=5)
    dense = _outputs_and_grads(layer, x, edge_index, e, degree=5)
    general = _outputs_and_grads(layer, x, edge_index, e, degree=None)
    torch.testing.assert_close(dense[0], general[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dense[1], general[1], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(dense[2], general[2], rtol=1e-4, atol=1e-5)
    for a, b in zip(dense[3], general[3], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_dense_attention_weights_sum_to_one_per_atom():
    x, edge_index, e = _graph(n=30, k=5)
    layer = HeadAttentionConv(F, D, heads=3).eval()
    _, (alpha, weight) = layer(x, edge_index, e, return_attention_weights=True, degree=5)
    dst = edge_index[1]
    sums = torch.zeros(30, 3).index_add_(0, dst, alpha)
    torch.testing.assert_close(sums, torch.ones(30, 3))
    torch.testing.assert_close(torch.zeros(30).index_add_(0, dst, weight), torch.ones(30))
