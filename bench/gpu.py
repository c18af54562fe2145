"""Predict throughput on a GPU (fp32 and bf16) and one training epoch's time.

    python bench/gpu.py --model models/co2_298K_0.15bar --graphs DIR [--n-graphs 10000]

Reads graph shards (featurized as the model needs: `mofsieve featurize --model M …`), cycles
through them until ``--n-graphs`` graphs (a GPU machine may hold only a few hundred distinct
ones: the model's work per graph is the same), and prints side by side in one run:

- predict throughput (MOFs/s) with the ensemble in fp32 and under bf16 autocast, batches
  built beforehand and moved to the device once (what a predict job's model time is), with
  the CUDA clock synchronised around each pass;
- max |Δprediction| of bf16 against fp32 (mol/kg) and how many of the fp32 top 10 % are not
  in the bf16 top 10 % (over the distinct graphs);
- one training epoch (forward, backward, Adam step) over the distinct graphs with made-up
  standardised targets: seconds per epoch.

Without CUDA it runs on the CPU (``--device cpu``), which is how the tests check it.
"""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--graphs", nargs="+", required=True, help="shards or folders")
    parser.add_argument("--n-graphs", type=int, default=10_000)
    parser.add_argument(
        "--distinct", type=int, default=0, help="at most this many distinct graphs (0: all read)"
    )
    parser.add_argument("--batch-atoms", type=int, default=60_000)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--repeats", type=int, default=3, help="timed passes (best is kept)")
    parser.add_argument("--no-train", action="store_true", help="skip the training epoch")
    return parser.parse_args()  # fmt: skip


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def ensemble_pass(members, batches, device, dtype) -> np.ndarray:
    """Standardised ensemble-mean predictions of every batch, in order."""
    autocast = (
        torch.autocast(device_type=device.type, dtype=dtype) if dtype != torch.float32 else None
    )
    out = []
    with torch.no_grad(), autocast or nullcontext():
        for batch in batches:
            out.append(torch.stack([m(batch).float() for m in members]).mean(0))
    return torch.cat(out).double().cpu().numpy()


def timed(members, batches, device, dtype, repeats: int) -> tuple[float, np.ndarray]:
    ensemble_pass(members, batches[:2], device, dtype)  # warm-up (kernels, allocator)
    best, values = float("inf"), np.empty(0)
    for _ in range(repeats):
        synchronise(device)
        start = time.perf_counter()
        values = ensemble_pass(members, batches, device, dtype)
        synchronise(device)
        best = min(best, time.perf_counter() - start)
    return best, values


def main() -> None:
    from torch_geometric.data import Batch

    from mofsieve.batching import graph_to_data, pack_by_atoms, select_device
    from mofsieve.model import load_model_dir
    from mofsieve.store import ShardReader, shard_paths

    args = arguments()
    device = select_device(args.device)
    members, spec = load_model_dir(args.model, device)
    names = spec.featurization.global_feature_names
    datas = []
    for path in shard_paths(args.graphs):
        reader = ShardReader(path, in_memory=True)
        spec.check_graphs(reader.params, what=f"graphs in {path}")
        index = [reader.params.global_feature_names.index(n) for n in names]
        datas.extend(graph_to_data(g, index) for g in reader)
        if args.distinct and len(datas) >= args.distinct:
            datas = datas[: args.distinct]
            break
    if not datas:
        raise SystemExit("no graphs read")
    distinct = len(datas)
    order = [i % distinct for i in range(max(args.n_graphs, distinct))]
    sizes = [datas[i].num_nodes for i in order]
    groups = pack_by_atoms(sizes, args.batch_atoms, range(len(order)))
    batches = [Batch.from_data_list([datas[order[i]] for i in g]).to(device) for g in groups]
    n = len(order)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{name}; torch {torch.__version__}; model {args.model.name} ({len(members)} members)")
    print(f"{n} graphs ({distinct} distinct, {sum(sizes):,} atoms) in {len(batches)} batches "
          f"of ≤ {args.batch_atoms} atoms")  # fmt: skip

    t32, y32 = timed(members, batches, device, torch.float32, args.repeats)
    t16, y16 = timed(members, batches, device, torch.bfloat16, args.repeats)
    std = spec.normalisation_std
    p32, p16 = y32[:distinct] * std, y16[:distinct] * std  # mol/kg differences
    k = max(1, distinct // 10)
    top32 = set(np.argsort(-p32, kind="stable")[:k])
    top16 = set(np.argsort(-p16, kind="stable")[:k])
    print(f"predict fp32: {n / t32:,.0f} MOFs/s ({t32:.3f} s)")
    print(f"predict bf16: {n / t16:,.0f} MOFs/s ({t16:.3f} s), {t32 / t16:.2f}x fp32; "
          f"max |Δprediction| {np.max(np.abs(p16 - p32)):.4f} mol/kg; "
          f"top-10 % membership changed for {len(top32 - top16)} of {k}")  # fmt: skip

    if args.no_train:
        return
    model = members[0].train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)
    train_groups = pack_by_atoms([d.num_nodes for d in datas], 3000, range(distinct))
    train_batches = [Batch.from_data_list([datas[i] for i in g]).to(device) for g in train_groups]
    target = {id(b): torch.randn(b.num_graphs, device=device) for b in train_batches}
    synchronise(device)
    start = time.perf_counter()
    for batch in train_batches:
        if batch.num_graphs < 2:
            continue  # BatchNorm in training mode needs two values per channel
        loss = torch.nn.functional.mse_loss(model(batch), target[id(batch)])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    synchronise(device)
    seconds = time.perf_counter() - start
    print(f"training epoch over {distinct} graphs (≤ 3000 atoms a batch): {seconds:.2f} s "
          f"({distinct / seconds:,.0f} MOFs/s)")  # fmt: skip


if __name__ == "__main__":
    main()
