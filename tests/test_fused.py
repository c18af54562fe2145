"""The fused CPU kernels (mofsieve.fused) give the PyTorch layers' numbers, are used only
where they may be, and their absence or a failed build costs speed, never a result."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.nn import functional as F
from torch_geometric.data import Batch

from mofsieve import fused
from mofsieve.batching import graph_to_data
from mofsieve.charge_model import load_charge_model
from mofsieve.charge_net import crystal_edges
from mofsieve.layers import (
    CGConv,
    EdgeConv,
    GraphAttentionConv,
    HeadAttentionConv,
    MultiHeadAttentionConv,
    regular_degree,
)
from mofsieve.model import AECGCNN, ModelConfig
from mofsieve.store import CrystalGraph
from mofsieve.structures import Crystal, StructureError, parse_cif


@pytest.fixture(scope="module")
def kernels():
    """The kernels, built here if needed. Where a compiler exists they must build."""
    if not fused.compiler_available():
        pytest.skip("no C++ compiler on this machine: the fused kernels cannot be built")
    module = fused.kernels()
    assert module is not None, "a C++ compiler exists but the fused kernels did not build (see log)"
    return module


def _counting(calls: Counter[str], name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def spy(*args: Any, **kwargs: Any) -> Any:
        calls[name] += 1
        return function(*args, **kwargs)

    return spy


@pytest.fixture
def kernel_calls(kernels, monkeypatch) -> Counter[str]:
    """Calls of each compiled kernel function (``edge_update``, ``attention``, ``cgconv``) while the
    test runs. The PyTorch layers give the kernels' numbers, so without these counts a layer
    that silently fell back to them would pass every comparison below."""
    module = fused.kernels()  # what the layers get now (the cache may hold a newer load)
    assert module is not None
    names = [name for name in dir(module) if not name.startswith("_")]
    assert sorted(names) == ["attention", "cgconv", "edge_update"], (
        "a new kernel: count it in the tests"
    )
    calls: Counter[str] = Counter()
    for name in names:
        monkeypatch.setattr(module, name, _counting(calls, name, getattr(module, name)))
    return calls


@pytest.fixture(scope="module")
def real_mofs(core_mof_graphs) -> list[CrystalGraph]:
    """Four small real structures of the core-mof package (regular 12-neighbour graphs)."""
    return core_mof_graphs(4, lambda graph: graph.n_atoms <= 200)


def test_softplus_matches_torch_over_the_float_range(kernels):
    """With every other term zero, the edge update is softplus itself: compare it to torch's
    from -200 to 200, including where exp under- or overflows, and at ±inf and NaN."""
    u = torch.cat(
        [torch.linspace(-200, 200, 40_001), torch.tensor([-torch.inf, torch.inf, torch.nan])]
    )
    u = torch.cat([u, torch.zeros(16 - u.numel() % 16)]).view(-1, 16)  # rows of 16 lanes
    n, c = u.shape
    zeros = torch.zeros(n, c)
    got = kernels.edge_update(
        zeros, zeros, u.clone(), torch.zeros(n, c), torch.zeros(n, dtype=torch.long), 1
    )
    want = F.softplus(u)
    finite = torch.isfinite(want)
    torch.testing.assert_close(got[finite], want[finite], rtol=2e-6, atol=1e-7)
    assert torch.isnan(got[torch.isnan(u)]).all()
    assert (got[u == torch.inf] == torch.inf).all() and (got[u == -torch.inf] >= 0).all()


def test_cgconv_message_matches_torch_over_the_float_range(kernels):
    """With one edge per atom, the node terms zero and the BatchNorm the identity, the fused
    CGConv gives x + sigmoid(gate) ⊙ softplus(core): compare it to torch's over gates and cores
    from -200 to 200 (every pair of a grid), where exp under- or overflows, and with NaN."""
    grid = torch.cat([torch.linspace(-200, 200, 401), torch.linspace(-12, 12, 95)])  # 496² values
    gate, core = torch.meshgrid(grid, grid, indexing="ij")
    gate, core = gate.reshape(-1, 16), core.reshape(-1, 16)  # rows of 16 lanes
    gate[0, :2], core[0, 2:4] = torch.nan, torch.nan
    n, c = gate.shape
    x = torch.randn(n, c)
    got = kernels.cgconv(
        torch.zeros(n, 2 * c),
        torch.zeros(n, 2 * c),
        torch.cat([gate, core], dim=1),
        torch.arange(n),
        1,
        x,
        torch.ones(c),
        torch.zeros(c),
    )
    want = x + torch.sigmoid(gate) * F.softplus(core)
    torch.testing.assert_close(got, want, rtol=4e-6, atol=1e-6, equal_nan=True)
    assert torch.isnan(got[0, :4]).all()


def _layer_inputs(graphs: list[CrystalGraph]) -> tuple[Batch, torch.Tensor, torch.Tensor]:
    batch = Batch.from_data_list([graph_to_data(g, None) for g in graphs])
    torch.manual_seed(0)
    x = torch.randn(batch.num_nodes, 64)
    e = torch.rand(batch.edge_index.size(1), 42)
    return batch, x, e


def _with_running_statistics(layer: torch.nn.Module, *inputs) -> torch.nn.Module:
    """BatchNorm statistics of real inputs, not the identity of a fresh layer."""
    with torch.no_grad():
        layer.train()(*inputs)
    return layer.eval()


@pytest.mark.parametrize(
    "layer_class",
    [GraphAttentionConv, MultiHeadAttentionConv, HeadAttentionConv],
    ids=["one-head", "mean-of-heads", "attention-over-heads"],
)
def test_fused_attention_equals_pytorch_layers(kernel_calls, real_mofs, layer_class):
    batch, x, e = _layer_inputs(real_mofs)
    degree = 12
    torch.manual_seed(1)
    layer = _with_running_statistics(layer_class(64, 42), x, batch.edge_index, e, False, degree)
    with torch.no_grad():
        out = layer(x, batch.edge_index, e, degree=degree)
        fused_calls = dict(kernel_calls)
        with fused.switched_off():
            ref = layer(x, batch.edge_index, e, degree=degree)
    assert fused_calls == {"attention": 1}, "the layer did not run the fused attention kernel"
    assert kernel_calls == fused_calls, "a kernel ran although switched off"
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    assert (out - x).abs().mean() > 1e-2  # the layer did something


def test_fused_edge_update_equals_pytorch_layer(kernel_calls, real_mofs):
    batch, x, e = _layer_inputs(real_mofs)
    torch.manual_seed(2)
    layer = _with_running_statistics(EdgeConv(64, 42), x, batch.edge_index, e, 12)
    with torch.no_grad():
        out = layer(x, batch.edge_index, e, degree=12)
        fused_calls = dict(kernel_calls)
        with fused.switched_off():
            ref = layer(x, batch.edge_index, e, degree=12)
    assert fused_calls == {"edge_update": 1}, "the layer did not run the fused edge-update kernel"
    assert kernel_calls == fused_calls, "a kernel ran although switched off"
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    assert (out - e).abs().mean() > 1e-2  # the layer did something


@pytest.mark.parametrize("channels", [64, 40], ids=["64-channels", "40-channels"])
def test_fused_cgconv_equals_pytorch_layer(kernel_calls, real_mofs, channels):
    """40 channels: 80-wide projections, so the last chunk of each half is a partial vector."""
    batch, x, e = _layer_inputs(real_mofs)
    x = x[:, :channels].contiguous()
    torch.manual_seed(4)
    layer = _with_running_statistics(CGConv(channels, 42), x, batch.edge_index, e, 12)
    with torch.no_grad():
        layer.norm.weight.uniform_(0.5, 2.0)  # an affine BatchNorm, not the identity's
        layer.norm.bias.uniform_(-1.0, 1.0)
        out = layer(x, batch.edge_index, e, degree=12)
        fused_calls = dict(kernel_calls)
        with fused.switched_off():
            ref = layer(x, batch.edge_index, e, degree=12)
        general = layer(x, batch.edge_index, e)  # no degree: PyG's propagate, never the kernel
    assert fused_calls == {"cgconv": 1}, "the layer did not run the fused CGConv kernel"
    assert kernel_calls == fused_calls, "a kernel ran although switched off or without a degree"
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out, general, rtol=1e-5, atol=1e-5)
    assert (out - x).abs().mean() > 1e-2  # the layer did something


def _chargeable_real_crystals(count: int) -> list[Crystal]:
    """A real CoRE MOF 2019 structure of tests/data (ZAZBUZ) and the first ``count`` - 1 of
    the core-mof package's CIFs with at most 300 atoms (skips without the package)."""
    pytest.importorskip("CoRE_MOF", reason="the core-mof package (pip install '.[demo]')")
    from mofsieve.manifest import iter_archive, package_archive

    crystals = [parse_cif((Path(__file__).parent / "data" / "checks" / "clean.cif").read_bytes())]
    for _, data in iter_archive(package_archive("core-mof:2019-ASR")):
        try:
            crystal = parse_cif(data)
        except StructureError:
            continue
        if crystal.n_atoms <= 300:
            crystals.append(crystal)
        if len(crystals) == count:
            return crystals
    pytest.fail(f"fewer than {count} small structures in core-mof")


def test_fused_charge_model_charges_real_mofs_as_pytorch_does(kernel_calls, monkeypatch):
    """The shipped charge model (three CGConv layers) on real structures, kernels on and off
    through the environment switch, as a featurize job would run it."""
    model = load_charge_model()
    spec = model.spec
    for crystal in _chargeable_real_crystals(4):
        edges = crystal_edges(crystal.frac_coords, crystal.lattice, spec.cutoff, spec.max_neighbors)
        assert regular_degree(torch.from_numpy(edges[0][1]), crystal.n_atoms) == 12
        kernel_calls.clear()
        monkeypatch.setenv(fused.SWITCH, "1")
        charges = model.predict(crystal, edges)
        assert kernel_calls == {"cgconv": 3}, "the charge model did not run the fused kernel"
        monkeypatch.setenv(fused.SWITCH, "0")
        reference = model.predict(crystal, edges)
        assert kernel_calls == {"cgconv": 3}, "a kernel ran although switched off"
        np.testing.assert_allclose(charges, reference, rtol=0, atol=1e-5)
        assert np.abs(charges).max() > 0.1  # charges, not a vanishing output


@pytest.mark.parametrize(
    "config",
    [
        ModelConfig(
            conv="attention",
            heads=3,
            head_combine="attention",
            edge_update=True,
            use_charge=True,
            use_cell=True,
            readout="attention",
        ),
        ModelConfig(conv="attention", heads=3, head_combine="mean", readout="mean", atom_dim=40),
        ModelConfig(conv="cgcnn", edge_update=True, use_charge=True, readout="mean"),
    ],
    ids=["de-atten3-like", "atten2-narrow", "de-cgcnn"],
)
def test_fused_model_predicts_what_the_pytorch_layers_predict(kernel_calls, real_mofs, config):
    batch = Batch.from_data_list([graph_to_data(g, None) for g in real_mofs])
    torch.manual_seed(3)
    model = AECGCNN(config)
    with torch.no_grad():
        model.train()(batch)
        assert not kernel_calls, "a kernel ran in training mode"
        model.eval()
        out, weights = model(batch, return_atom_weights=True)
        fused_calls = dict(kernel_calls)
        with fused.switched_off():
            ref, ref_weights = model(batch, return_atom_weights=True)
    layers = config.num_layers  # one convolution call per layer, and one edge update with them
    assert fused_calls == {
        "cgconv" if config.conv == "cgcnn" else "attention": layers,
        **({"edge_update": layers} if config.edge_update else {}),
    }
    assert kernel_calls == fused_calls, "a kernel ran although switched off"
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    assert out.std() > 0
    if weights is not None:
        torch.testing.assert_close(weights, ref_weights, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize(
    "config",
    [
        ModelConfig(conv="attention", heads=3, head_combine="attention", edge_update=True),
        ModelConfig(conv="cgcnn", edge_update=True),
    ],
    ids=["attention", "cgcnn"],
)
def test_training_and_gradients_never_use_the_kernels(kernel_calls, real_mofs, monkeypatch, config):
    def refuse():
        raise AssertionError("fused kernels called where gradients are needed")

    monkeypatch.setattr(fused, "kernels", refuse)
    batch = Batch.from_data_list([graph_to_data(g, None) for g in real_mofs])
    model = AECGCNN(config)
    model.train()(batch).sum().backward()
    model.eval()(batch).sum().backward()  # evaluation mode, but differentiating
    assert not kernel_calls  # neither through fused.kernels() nor a reference kept elsewhere
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_a_neighbour_outside_the_batch_is_an_error_not_a_crash(kernels):
    node = torch.zeros(3, 16)
    with pytest.raises(RuntimeError, match="outside the batch"):
        kernels.edge_update(
            node, node, torch.zeros(6, 16), torch.zeros(6, 16), torch.tensor([0, 1, 2, 3, 0, 1]), 2
        )
    with pytest.raises(RuntimeError, match="shapes"):
        kernels.attention(
            node,
            node,
            torch.zeros(5, 16),
            torch.zeros(5, dtype=torch.long),
            torch.zeros(1, 16),
            torch.ones(3, 1),
            2,
            0.2,
        )
    wide = torch.zeros(3, 32)  # 2C wide for C = 16
    with pytest.raises(RuntimeError, match="outside the batch"):
        kernels.cgconv(
            wide, wide, torch.zeros(6, 32), torch.tensor([0, 1, 2, 3, 0, 1]), 2,
            node, torch.ones(16), torch.zeros(16),
        )  # fmt: skip
    with pytest.raises(RuntimeError, match="x must be N×C"):
        kernels.cgconv(
            wide, wide, torch.zeros(6, 32), torch.zeros(6, dtype=torch.long), 2,
            wide, torch.ones(16), torch.zeros(16),
        )  # fmt: skip


@pytest.fixture
def fresh_load(monkeypatch, tmp_path):
    """kernels() as in a new process, with its cache in tmp_path."""
    monkeypatch.setenv(fused.CACHE, str(tmp_path))
    fused.LIBRARY.forget()
    yield tmp_path
    fused.LIBRARY.forget()


def test_a_failed_build_falls_back_to_pytorch_and_leaves_nothing(
    fresh_load, monkeypatch, caplog, real_mofs
):
    # What processes killed mid-build leave: removed once an hour old, else left to its build.
    abandoned, live = fresh_load / ".build-killed", fresh_load / ".build-running"
    for folder in (abandoned, live):
        folder.mkdir()
        (folder / "half.o").write_bytes(b"\0" * 100)
    os.utime(abandoned, (time.time() - 2 * 3600,) * 2)
    monkeypatch.setenv("CXX", str(fresh_load / "no-such-compiler"))
    with caplog.at_level(logging.WARNING, logger="mofsieve.fused"):
        assert fused.kernels() is None
    assert "fused CPU kernels unavailable" in caplog.text
    assert list(fresh_load.iterdir()) == [live]  # no library, no folder of this build
    batch = Batch.from_data_list([graph_to_data(g, None) for g in real_mofs])
    model = AECGCNN(
        ModelConfig(conv="attention", heads=3, head_combine="attention", edge_update=True)
    ).eval()
    with torch.no_grad():
        assert torch.isfinite(model(batch)).all()


def test_a_built_library_is_reused_without_a_compiler(kernels, tmp_path, monkeypatch, request):
    built = fused.LIBRARY.path(fused.LIBRARY.spec())
    shutil.copy(built, tmp_path / built.name)  # built by `kernels`
    request.getfixturevalue("fresh_load")  # from here: a new process's view, cache in tmp_path
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))  # a build would fail
    module = fused.kernels()
    assert module is not None and Path(module.__spec__.origin).parent == tmp_path
    u = torch.linspace(-3, 3, 32).view(2, 16)
    zeros = torch.zeros(2, 16)
    got = module.edge_update(zeros, zeros, u.clone(), zeros, torch.zeros(2, dtype=torch.long), 1)
    torch.testing.assert_close(got, F.softplus(u))


def test_the_switch_turns_the_kernels_off(monkeypatch):
    monkeypatch.setenv(fused.SWITCH, "0")
    assert fused.kernels() is None
    monkeypatch.delenv(fused.SWITCH)
    with fused.switched_off():
        assert fused.kernels() is None


# Many clusters' nodes (AMD EPYC before Zen 4) have AVX2 and no AVX-512, where PyTorch, and
# so the kernels, use 256-bit vectors: a separate build with its own code paths.
_AVX2_PROBE = """
import collections
import torch
from torch.nn import functional as F
from mofsieve import fused
from mofsieve.layers import CGConv, EdgeConv, HeadAttentionConv
assert torch.backends.cpu.get_cpu_capability() == "AVX2"
kernels = fused.kernels()
assert kernels is not None, "AVX2 kernels did not build"
calls = collections.Counter()
for name in ("attention", "cgconv", "edge_update"):  # count what the layers call (same numbers without)
    def spy(*args, _name=name, _kernel=getattr(kernels, name)):
        calls[_name] += 1
        return _kernel(*args)
    setattr(kernels, name, spy)
u = torch.linspace(-60, 60, 8_000).view(-1, 16)
zeros = torch.zeros_like(u)
got = kernels.edge_update(zeros, zeros, u.clone(), zeros, torch.zeros(u.size(0), dtype=torch.long), 1)
torch.testing.assert_close(got, F.softplus(u), rtol=2e-6, atol=1e-7)
calls.clear()
torch.manual_seed(0)
n, k = 500, 12
x, e = torch.randn(n, 64), torch.rand(n * k, 42)
edge_index = torch.stack([torch.randint(0, n, (n * k,)), torch.arange(n).repeat_interleave(k)])
edge, conv = EdgeConv(64, 42), HeadAttentionConv(64, 42, heads=3)
cg = CGConv(64, 42)
expected = {"attention": 1, "cgconv": 1, "edge_update": 1}
def layers(x, e):
    return cg(conv(x, edge_index, edge(x, edge_index, e, degree=k), degree=k), edge_index, e, k)
with torch.no_grad():
    edge.train()(x, edge_index, e, degree=k)
    conv.train()(x, edge_index, e, degree=k)
    cg.train()(x, edge_index, e, k)
    edge.eval(), conv.eval(), cg.eval()
    assert not calls, calls  # training mode: the PyTorch layers
    out = layers(x, e)
    assert calls == expected, f"layers called the kernels {dict(calls)}"
    with fused.switched_off():
        ref = layers(x, e)
    assert calls == expected, "a kernel ran although switched off"
torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
print("same numbers")
"""


@pytest.mark.slow
def test_the_avx2_build_gives_the_same_numbers(kernels, tmp_path):
    if torch.backends.cpu.get_cpu_capability() != "AVX512":
        pytest.skip("this CPU runs PyTorch's AVX2 kernels already (tested above), or neither")
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", fused.CACHE: str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", _AVX2_PROBE], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "same numbers" in done.stdout
    (library,) = tmp_path.iterdir()  # one library, not the AVX-512 one
    assert library.suffix == ".so" and library.stem != fused.LIBRARY.spec().name
