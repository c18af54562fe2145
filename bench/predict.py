"""CPU inference throughput of a shipped model: mofsieve's layers vs a straightforward
per-edge implementation of the same layers, same weights, same batches, same run.

    .venv/bin/python bench/predict.py [--model models/co2_298K_0.15bar] [--graphs DIR] [--n 1000]

The straightforward implementation is what one writes from the equations: the Gaussian
expansion as written, every edge's ``v_i ⊕ v_j ⊕ e`` concatenated and multiplied by the full
weight, ``x[index]`` gathers, scatter softmax over an unsorted index and, with several heads,
one aggregation per head. Both must give the same predictions (checked). mofsieve's layers
run as ``mofsieve predict`` runs them, with the fused CPU kernels of ``mofsieve.fused`` where
they can be built, and again with PyTorch operators only. A last line times
what ``mofsieve predict`` does by default on top: atoms the model cannot tell apart computed
once (``mofsieve.symmetry``; it pays on structures without per-atom partial charges, such as
``--graphs results/core2019-asr/graphs/shards-00000-00009`` after ``make screen``). Graphs:
the first N of the shards given (default the featurized shared CoRE MOF 2019 set); without
shards, the first N CIFs of ``../shared/data/core2019-co2/cifs.tar.xz`` are featurized first.
"""

from __future__ import annotations

import argparse
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from torch_geometric.data import Batch
from torch_geometric.utils import softmax

from mofsieve import fused
from mofsieve.batching import graph_to_data, merged_graph_data, pack_by_atoms
from mofsieve.layers import (
    CGConv,
    EdgeConv,
    GaussianExpansion,
    GraphAttentionConv,
    HeadAttentionConv,
    PairProjection,
)
from mofsieve.predict import Predictor
from mofsieve.runtime import keep_freed_memory

REPO = Path(__file__).resolve().parents[1]
SHARED_CIFS = REPO.parent / "shared" / "data" / "core2019-co2" / "cifs.tar.xz"


# -- the straightforward per-edge layers (same parameters as mofsieve.layers) ----------------


def _rbf(self: GaussianExpansion, dist: torch.Tensor) -> torch.Tensor:  # every centre, as written
    return torch.exp(-((dist.unsqueeze(-1) - self.centers) ** 2) / self.width**2)


def _cgconv(self: CGConv, x, edge_index, edge_attr, degree=None):
    gate, core = self.pair(x, edge_attr, edge_index).chunk(2, dim=-1)
    messages = torch.sigmoid(gate) * F.softplus(core)
    aggregated = torch.zeros_like(x).index_add_(0, edge_index[1], messages)
    return x + self.norm(aggregated)


def _edgeconv(self: EdgeConv, x, edge_index, edge_attr, degree=None):
    return edge_attr + F.softplus(self.norm(self.pair(x, edge_attr, edge_index)))


def _attention(
    self: GraphAttentionConv, x, edge_index, edge_attr, return_attention_weights=False, degree=None
):
    dst = edge_index[1]
    u = self.pair(x, edge_attr, edge_index)
    score = self.att(F.leaky_relu(u, self.negative_slope))
    values = F.softplus(u)
    heads = []
    for m in range(self.heads):  # one softmax and one aggregation per head, as written
        alpha = softmax(score[:, m], dst, num_nodes=x.size(0))
        heads.append(torch.zeros_like(x).index_add_(0, dst, alpha.unsqueeze(-1) * values))
    heads_out = torch.stack(heads, dim=1)  # N × heads × C
    if isinstance(self, HeadAttentionConv):
        beta = torch.softmax(self.head_query(x), dim=-1)
        combined = (beta.unsqueeze(-1) * heads_out).sum(1)
    else:
        combined = heads_out.mean(1)
    return x + self.norm(combined)


def make_straightforward(model: torch.nn.Module) -> None:
    """Rebind every layer's forward to the per-edge version (same parameters); the
    projections use PairProjection's own per-edge concatenation."""
    for module in model.modules():
        if isinstance(module, PairProjection):
            module.per_edge = True
        elif isinstance(module, GaussianExpansion):
            module.forward = types.MethodType(_rbf, module)
        elif isinstance(module, CGConv):
            module.forward = types.MethodType(_cgconv, module)
        elif isinstance(module, EdgeConv):
            module.forward = types.MethodType(_edgeconv, module)
        elif isinstance(module, GraphAttentionConv):
            module.forward = types.MethodType(_attention, module)


# -- data ------------------------------------------------------------------------------------


def load_graphs(graphs_dir: Path | None, n: int, params) -> list:
    """The first ``n`` graphs, their global features the model's columns in the model's order
    (shards may hold more, in another order)."""
    from mofsieve.store import ShardReader, shard_paths

    graphs = []
    if graphs_dir is not None and graphs_dir.exists():
        for path in shard_paths([graphs_dir]):
            reader = ShardReader(path, in_memory=True)
            params.check_compatible(reader.params, what=str(path))
            columns = [
                reader.params.global_feature_names.index(name)
                for name in params.global_feature_names
            ]
            for i in range(min(len(reader), n - len(graphs))):
                graph = reader.graph(i)
                if columns:
                    graph.global_features = np.asarray(graph.global_features)[columns]
                graphs.append(graph)
            if len(graphs) >= n:
                break
        return graphs
    if not SHARED_CIFS.is_file():
        sys.exit(f"no graph shards at {graphs_dir} and no shared CIFs at {SHARED_CIFS}")
    from mofsieve.featurize import featurize_cif
    from mofsieve.manifest import iter_archive
    from mofsieve.structures import StructureError

    print(f"featurizing the first {n} CIFs of {SHARED_CIFS} …", flush=True)
    for name, data in iter_archive(SHARED_CIFS):
        try:
            graphs.append(featurize_cif(Path(name).stem, name, data, params))
        except StructureError:
            continue
        if len(graphs) >= n:
            break
    return graphs


def timed(predictor: Predictor, batches: list, repeats: int) -> tuple[float, np.ndarray]:
    best = float("inf")
    out = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = np.concatenate([predictor(b)[0] for b in batches])
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=REPO / "models" / "co2_298K_0.15bar")
    parser.add_argument("--graphs", type=Path, default=REPO / "work-data" / "core2019-desc")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--batch-atoms", type=int, default=8000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="best of this many passes each")
    parser.add_argument(
        "--flush-denormal",
        action="store_true",
        help="flush denormal floats to zero for both (mofsieve predict does; "
        "default off: plain CPU arithmetic, as a straightforward script runs)",
    )
    parser.add_argument(
        "--glibc-default-malloc",
        action="store_true",
        help="leave glibc's malloc thresholds alone for both (mofsieve predict "
        "raises them, see mofsieve.runtime; default: raised for both)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="also time mofsieve's PyTorch layers (fused kernels off) under "
        "torch.compile (inductor with freezing; needs a C++ compiler) against "
        "the same uncompiled, compile time reported apart",
    )
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(args.flush_denormal)
    kept = False if args.glibc_default_malloc else keep_freed_memory()
    fast = Predictor(args.model, device="cpu")
    naive = Predictor(args.model, device="cpu")
    for member in naive.members:
        make_straightforward(member)
    kernels = fused.kernels()  # built (once per machine) before anything is timed
    params = fast.spec.featurization
    graphs = load_graphs(args.graphs, args.n, params)
    index = list(range(len(params.global_feature_names)))  # load_graphs put them in this order
    datas = [graph_to_data(g, index) for g in graphs]
    batches = [
        Batch.from_data_list([datas[i] for i in group])
        for group in pack_by_atoms(
            [d.num_nodes for d in datas], args.batch_atoms, range(len(datas))
        )
    ]
    n_atoms = sum(d.num_nodes for d in datas)
    print(
        f"model {args.model.name} ({fast.spec.variant}, {len(fast.members)} members), "
        f"{len(datas)} graphs, {n_atoms} atoms, {len(batches)} batches of ≤{args.batch_atoms} atoms, "
        f"{args.threads} threads, flush denormals {args.flush_denormal}, "
        f"malloc keeps freed memory {kept}"
    )

    t_fast, p_fast = timed(fast, batches, args.repeats)
    with fused.switched_off():
        t_eager, p_eager = timed(fast, batches, args.repeats)
    t_naive, p_naive = timed(naive, batches, args.repeats)
    n = len(datas)
    print(
        f"mofsieve layers        : {n / t_fast:8.1f} MOFs/s  ({t_fast:.1f} s; fused CPU kernels "
        f"{'on' if kernels else 'unavailable: PyTorch only'})"
    )
    print(
        f"  the same, PyTorch only: {n / t_eager:8.1f} MOFs/s  ({t_eager:.1f} s; fused kernels off)"
    )
    print(f"straightforward per-edge: {n / t_naive:8.1f} MOFs/s  ({t_naive:.1f} s)")
    for what, t, p in (("ratio", t_fast, p_fast), ("ratio, PyTorch only", t_eager, p_eager)):
        diff = float(np.max(np.abs(p - p_naive)))
        print(f"{what:23s}: {t_naive / t:8.2f}x   (max |Δprediction| = {diff:.2e} mol/kg)")
    merged_vs_every_atom(fast, graphs, index, args.batch_atoms, args.repeats, t_naive, p_naive)
    if args.compile:
        compiled_vs_eager(fast, batches, args.repeats, t_eager, p_eager)


def merged_vs_every_atom(
    fast: Predictor,
    graphs: list,
    index: list[int],
    batch_atoms: int,
    repeats: int,
    t_naive: float,
    p_naive: np.ndarray,
) -> None:
    """What mofsieve predict does by default: atoms the model cannot tell apart computed once
    (mofsieve.symmetry). The time includes finding them and building their graphs."""
    rounds = fast.spec.num_layers  # as mofsieve predict merges
    t0 = time.perf_counter()
    datas = [merged_graph_data(g, index, rounds)[0] for g in graphs]
    t_merge = time.perf_counter() - t0
    batches = [
        Batch.from_data_list([datas[i] for i in group])
        for group in pack_by_atoms([d.num_nodes for d in datas], batch_atoms, range(len(datas)))
    ]
    t_model, p_merged = timed(fast, batches, repeats)
    t_total = t_merge + t_model
    rows, atoms = sum(d.num_nodes for d in datas), sum(g.n_atoms for g in graphs)
    diff = float(np.max(np.abs(p_merged - p_naive)))
    print(
        f"mofsieve, equivalent atoms merged: {len(graphs) / t_total:8.1f} MOFs/s  "
        f"({t_total:.1f} s, of which {t_merge:.1f} s finding them and building their graphs; {rows} of {atoms} atoms "
        f"computed), {t_naive / t_total:.2f}x straightforward "
        f"(max |Δprediction| = {diff:.2e} mol/kg)"
    )


def compiled_vs_eager(
    fast: Predictor, batches: list, repeats: int, t_eager: float, p_eager: np.ndarray
) -> None:
    """The PyTorch layers compiled (inductor fusing their element-wise work itself) against
    the same layers uncompiled; the fused kernels are off for both."""
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True  # constant weights: folds and prepacks them
    for member in fast.members:
        member.compile(dynamic=True)
    with torch.no_grad(), fused.switched_off():  # freezing applies to inference graphs
        t0 = time.perf_counter()
        fast(batches[0])
        fast(batches[-1])  # the first and the last batch differ in size: both shapes traced
        t_compile = time.perf_counter() - t0
        t_compiled, p_compiled = timed(fast, batches, repeats)
    n = sum(int(b.num_graphs) for b in batches)
    diff = float(np.max(np.abs(p_compiled - p_eager)))
    print(
        f"mofsieve, torch.compile : {n / t_compiled:8.1f} MOFs/s  ({t_compiled:.1f} s, "
        f"after {t_compile:.0f} s compiling), {t_eager / t_compiled:.2f}x PyTorch only "
        f"(max |Δprediction| = {diff:.2e} mol/kg)"
    )


if __name__ == "__main__":
    main()
