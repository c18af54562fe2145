"""The accessible-volume and pore-filling descriptors (``mofsieve.descriptors.energy_grid``):
what they add to a CIF's featurization and what they give boosted trees on validation.

    .venv/bin/python bench/pore_filling.py --graphs SHARDS/ [--n 300] [--repeats 3]

``SHARDS/`` must hold every global feature of the shipped models (featurized as
models/README.md says, with the 28 descriptors).

Cost, side by side on the first ``--n`` CIFs of ``../shared/data/core2019-co2/cifs.tar.xz``
(parsing not timed, CPU time of this thread): ``compute_descriptors`` with the 22 global
features of the earlier models (12 cell and pore + 10 force-field) against the same with the 6
new ones added, alternating, ``--repeats`` times; the medians per CIF and their ratio.

Gain, without training a graph network: LightGBM trees (``mofsieve boost``'s parameters,
rounds by 5-fold cross-validation on the training split, one seed) on the features ``boost``
gives them (global features, element fractions, charge and distance statistics), with the 22
global features against the 28, trained on each shipped model's training split and scored on
its validation split (never the test split): cross-validated MAE on training, and validation
MAE / Spearman / top-10 % recall.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from mofsieve.booster import DEFAULT_PARAMS, ELEMENTS, fit_trees, graph_features, mean_of_trees
from mofsieve.descriptors import FAST_DESCRIPTORS, compute_descriptors
from mofsieve.descriptors.energy_grid import CHARGED_DESCRIPTORS, LJ_DESCRIPTORS
from mofsieve.manifest import iter_archive
from mofsieve.metrics import format_metrics, regression_metrics
from mofsieve.store import ShardReader, shard_paths
from mofsieve.structures import StructureError, parse_cif

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "core2019-co2"
NEW = (
    "co2_lj_accessible_fraction",
    "co2_lj_accessible_volume_cm3_g",
    "co2_lj_pore_filling_0.15bar_mol_kg",
    "co2_lj_pore_filling_16bar_mol_kg",
    "co2_lj_coulomb_pore_filling_0.15bar_mol_kg",
    "co2_lj_coulomb_pore_filling_16bar_mol_kg",
)
EARLIER = (
    *FAST_DESCRIPTORS,
    *(n for n in LJ_DESCRIPTORS if n not in NEW),
    *(n for n in CHARGED_DESCRIPTORS if n not in NEW),
)
MODELS = {
    "0.15 bar": ("co2_uptake_mol_per_kg_298K_0.15bar", ROOT / "models" / "co2_298K_0.15bar"),
    "16 bar": ("co2_uptake_mol_per_kg_298K_16bar", ROOT / "models" / "co2_298K_16bar"),
}


def cost(n: int, repeats: int) -> None:
    crystals = []
    for _, data in iter_archive(SHARED / "cifs.tar.xz"):
        try:
            crystals.append(parse_cif(data))
        except StructureError:
            continue
        if len(crystals) == n:
            break
    sets = {"22 (earlier)": EARLIER, "28 (+ the 6)": (*EARLIER, *NEW)}
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
    earlier, more = medians.values()
    print(f"  ratio 28 / 22: {more / earlier:.3f}; the 6 add {more - earlier:.3f} ms per CIF")


def features(graphs: str, names: tuple[str, ...]) -> dict[str, np.ndarray]:
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


def gain(graphs: str) -> None:
    with open(SHARED / "labels.csv", newline="") as fh:
        labels = list(csv.DictReader(fh))
    table = {"22 (earlier)": features(graphs, EARLIER), "28 (+ the 6)": features(graphs, (*EARLIER, *NEW))}  # fmt: skip
    for pressure, (target, model) in MODELS.items():
        with open(model / "split.csv", newline="") as fh:
            split = {r["mof_id"]: r["split"] for r in csv.DictReader(fh)}
        y = {r["mof_id"]: float(r[target]) for r in labels if r[target]}
        part = {p: [m for m in sorted(y) if split.get(m) == p and m in table["22 (earlier)"]]
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
        print(f"  validation MAE ratio 28 / 22: {maes[1] / maes[0]:.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graphs", required=True, help="shards with the 28 global features")
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not SHARED.is_dir():
        print(f"needs {SHARED} (the CoRE MOF CIFs and labels); skipped", file=sys.stderr)
        return 2
    print(f"cost, first {args.n} CIFs, {args.repeats} repeats, one thread:")
    cost(args.n, args.repeats)
    gain(args.graphs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
