"""What the blended trees cost at prediction: a model with trees vs its graph network alone.

    .venv/bin/python bench/booster.py --model models/co2_298K_16bar --graphs SHARDS/ \
        [--threads 1] [--repeats 3]

Both predict every graph of the shards (``mofsieve.predict.predict_ids``: read, batch,
ensemble, and for the first also the trees' features and their prediction), one after the
other, ``--repeats`` times, alternating, in one process on the same threads, so that machine
load hits both alike. Prints the median seconds of each, their ratio, the trees' extra
milliseconds per crystal, and how far the blend moved the predictions. SHARDS: graphs
featurized as the model needs (e.g. `mofsieve featurize ../shared/data/core2019-co2/cifs.tar.xz
--model MODEL --out SHARDS/`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from mofsieve.predict import Predictor, predict_ids
from mofsieve.store import ShardReader, shard_paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--graphs", nargs="+", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    paths = shard_paths(args.graphs)
    if not paths:
        print(f"no graph shards in {args.graphs}", file=sys.stderr)
        return 2
    ids = {m for p in paths for m in ShardReader(p).ids}
    blended = Predictor(args.model, "cpu")
    if blended.trees is None:
        print(f"{args.model} has no trees (`mofsieve boost` adds them)", file=sys.stderr)
        return 2
    plain = Predictor(args.model, "cpu", use_booster=False)
    seconds: dict[str, list[float]] = {"graph network alone": [], "with trees": []}
    out = {}
    for _ in range(args.repeats):
        for name, predictor in (("graph network alone", plain), ("with trees", blended)):
            start = time.perf_counter()
            out[name] = predict_ids(predictor, args.graphs, ids)
            seconds[name].append(time.perf_counter() - start)
    n = len(out["with trees"])
    print(
        f"{n} crystals in {len(paths)} shard(s), {args.threads} thread(s), {args.repeats} repeats"
    )
    for name, values in seconds.items():
        print(f"{name:<22} median {statistics.median(values):8.2f} s  ({', '.join(f'{v:.2f}' for v in values)})")  # fmt: skip
    alone, trees = (statistics.median(v) for v in seconds.values())
    print(f"ratio with trees / alone: {trees / alone:.3f}; the trees add {1000 * (trees - alone) / n:.2f} ms per crystal")  # fmt: skip
    weight = blended.trees.spec.weight
    moved = np.array([out["with trees"][m][0] - out["graph network alone"][m][0] for m in out["with trees"]])  # fmt: skip
    print(f"blend weight {weight}; mean |blend − graph network alone| {np.abs(moved).mean():.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
