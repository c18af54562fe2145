"""Two sets of global descriptors side by side (imported by bench/pore_filling.py and
bench/fine_sample.py): what the larger one adds to a CIF's featurization, and what it gives
boosted trees on validation.

Cost: ``compute_descriptors`` of each set on the same parsed CIFs (the first ``n`` of
``../shared/data/core2019-co2/cifs.tar.xz``; parsing not timed), alternating, ``repeats``
times, CPU time of this thread; the medians per CIF and their ratio.

Gain, without training a graph network: LightGBM trees (``mofsieve boost``'s parameters,
rounds by 5-fold cross-validation on the training split, one seed) on the features ``boost``
gives them (global features, element fractions, charge and distance statistics), with each
set as the global features, trained on each shipped model's training split and scored on its
validation split (never the test split): cross-validated MAE on training, and validation
MAE / Spearman / top-10 % recall.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mofsieve.booster import DEFAULT_PARAMS, ELEMENTS, fit_trees, graph_features, mean_of_trees
from mofsieve.descriptors import compute_descriptors
from mofsieve.manifest import iter_archive, mof_id_of
from mofsieve.metrics import format_metrics, regression_metrics
from mofsieve.store import ShardReader, shard_paths
from mofsieve.structures import StructureError, parse_cif

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "core2019-co2"
MODELS = {
    "0.15 bar": ("co2_uptake_mol_per_kg_298K_0.15bar", ROOT / "models" / "co2_298K_0.15bar"),
    "16 bar": ("co2_uptake_mol_per_kg_298K_16bar", ROOT / "models" / "co2_298K_16bar"),
}


def parsed_cifs(n: int, keep: Callable[[str, Any], bool] | None = None) -> list:
    """The first ``n`` shared CIFs that parse (and that ``keep(mof_id, crystal)`` keeps)."""
    crystals = []
    for member, data in iter_archive(SHARED / "cifs.tar.xz"):
        try:
            crystal = parse_cif(data)
        except StructureError:
            continue
        if keep is None or keep(mof_id_of(member), crystal):
            crystals.append(crystal)
        if len(crystals) == n:
            break
    return crystals


def cost(sets: Mapping[str, Sequence[str]], n: int, repeats: int) -> None:
    """Print the median CPU ms per CIF of each of the two ``sets`` and their ratio."""
    crystals = parsed_cifs(n)
    per_cif: dict[str, list[float]] = {name: [] for name in sets}
    for _ in range(repeats):
        for name, names in sets.items():
            for c in crystals:
                start = time.thread_time()
                compute_descriptors(names, c.atomic_number, c.frac_coords, c.lattice,
                                    charges=c.charge)  # fmt: skip
                per_cif[name].append(1000 * (time.thread_time() - start))
    medians = {name: statistics.median(v) for name, v in per_cif.items()}
    for name, m in medians.items():
        print(f"  {name:<14} median {m:.3f} ms CPU per CIF, mean {statistics.mean(per_cif[name]):.3f}")  # fmt: skip
    (first, low), (second, high) = medians.items()
    print(f"  ratio {second} / {first}: {high / low:.3f}; {high - low:+.3f} ms per CIF")


def features(graphs: str, names: Sequence[str]) -> dict[str, np.ndarray]:
    """mof_id → the feature row `mofsieve boost` gives the trees, with ``names`` as the global
    features."""
    rows: dict[str, np.ndarray] = {}
    for path in shard_paths([graphs]):
        reader = ShardReader(path)
        index = [list(reader.params.global_feature_names).index(n) for n in names]
        new = [i for i, mof in enumerate(reader.ids) if mof not in rows]
        table = graph_features((reader.graph(i) for i in new), index, ELEMENTS)
        rows.update((reader.ids[i], table[j]) for j, i in enumerate(new))
        reader.release()
    return rows


def gain(sets: Mapping[str, Sequence[str]], graphs: str) -> None:
    """Print, for each pressure, the trees' figures with each of the two ``sets`` and the
    ratio of their validation MAEs."""
    with open(SHARED / "labels.csv", newline="") as fh:
        labels = list(csv.DictReader(fh))
    table = {name: features(graphs, names) for name, names in sets.items()}
    first, second = sets
    for pressure, (target, model) in MODELS.items():
        with open(model / "split.csv", newline="") as fh:
            split = {r["mof_id"]: r["split"] for r in csv.DictReader(fh)}
        y = {r["mof_id"]: float(r[target]) for r in labels if r[target]}
        part = {p: [m for m in sorted(y) if split.get(m) == p and m in table[first]]
                for p in ("train", "val")}  # fmt: skip
        print(f"{pressure}: {len(part['train'])} training, {len(part['val'])} validation MOFs")
        maes = []
        for name, rows in table.items():
            x = {p: np.vstack([rows[m] for m in part[p]]) for p in part}
            truth = {p: np.array([y[m] for m in part[p]]) for p in part}
            boosters, rounds, cv_mae = fit_trees(x["train"], truth["train"], DEFAULT_PARAMS, 1, threads=2)  # fmt: skip
            val = regression_metrics(truth["val"], mean_of_trees(boosters, x["val"]))
            maes.append(val["mae"])
            print(f"  {name:<14} {rounds} rounds, CV MAE on training {cv_mae:.4f}; validation {format_metrics(val)}")  # fmt: skip
        print(f"  validation MAE ratio {second} / {first}: {maes[1] / maes[0]:.3f}")


def arguments(description: str, graphs_help: str) -> argparse.ArgumentParser:
    """The command line both benches share: ``--graphs``, ``--n``, ``--repeats``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--graphs", required=True, help=graphs_help)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    return parser


def run(
    sets: Mapping[str, Sequence[str]],
    args: argparse.Namespace,
    before: Callable[[argparse.Namespace], None] | None = None,
) -> int:
    """``before`` (a bench's own measurement), then :func:`cost` and :func:`gain`; 2 without
    the shared data."""
    if not SHARED.is_dir():
        print(f"needs {SHARED} (the CoRE MOF CIFs and labels); skipped", file=sys.stderr)
        return 2
    if before is not None:
        before(args)
    print(f"cost, first {args.n} CIFs, {args.repeats} repeats, one thread:")
    cost(sets, args.n, args.repeats)
    gain(sets, args.graphs)
    return 0
