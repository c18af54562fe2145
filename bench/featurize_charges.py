"""What ``featurize --charges cif_or_model`` costs per CIF that has no partial charges.

    .venv/bin/python bench/featurize_charges.py [--n 100] [--repeats 5] [--cpu 0]
        [--global-features NAMES]

The first ``--n`` CIFs of ``../shared/data/core2019-co2/cifs.tar.xz`` (charged CoRE MOF 2019),
each written twice as a P1 CIF by the project's own writer (:func:`p1_cif_text`): with its
charges, and without them (the same atoms, the charge column left out). Both sets go through
:func:`mofsieve.featurize.featurize_cif` exactly as a featurize job runs it (structure checks
and framework key included, ``--global-features`` the 12 plus the energy descriptors by
default), with ``charges=cif_or_model``: the charged copies keep their own charges, the
uncharged ones get the charge model's. One process pinned to one core (``--cpu``), torch on
one thread; the two sets alternate ``--repeats`` times and the median total is kept, CPU time
of this thread (the steady figure on a shared machine) and wall time. The one-time cost of
loading the charge model (imports included) is timed apart, before the runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from mofsieve.descriptors import ENERGY_DESCRIPTORS, FAST_DESCRIPTORS
from mofsieve.featurize import CHARGE_MODEL_DIR, featurize_cif
from mofsieve.manifest import iter_archive, mof_id_of
from mofsieve.store import FeaturizationParams
from mofsieve.structures import StructureError, p1_cif_text, parse_cif

ROOT = Path(__file__).resolve().parents[1]
ARCHIVE = ROOT.parent / "shared" / "data" / "core2019-co2" / "cifs.tar.xz"


def charged_and_uncharged(count: int) -> list[tuple[str, bytes, bytes]]:
    """(mof_id, P1 CIF with charges, the same without) of the first ``count`` usable CIFs."""
    found = []
    for member, data in iter_archive(ARCHIVE):
        try:
            crystal = parse_cif(data)
        except StructureError:
            continue
        if not np.isfinite(crystal.charge).all():
            continue
        mof_id = mof_id_of(member)
        cell = (crystal.atomic_number, crystal.frac_coords, crystal.lattice)
        with_charges = p1_cif_text(mof_id, *cell, charge=crystal.charge).encode()
        without = p1_cif_text(mof_id, *cell, charge=None).encode()
        found.append((mof_id, with_charges, without))
        if len(found) == count:
            break
    return found


def featurize_all(cifs: list[tuple[str, bytes]], params: FeaturizationParams) -> tuple:
    """(CPU s, wall s, graphs, charge warnings) of featurizing ``cifs`` as a job does."""
    graphs, warned = [], 0
    cpu, wall = time.thread_time(), time.perf_counter()
    for mof_id, data in cifs:
        found: list[tuple[str, str]] = []
        graphs.append(featurize_cif(mof_id, mof_id, data, params, checks=found, frameworks=[]))
        warned += sum(check == "charges" for check, _ in found)
    return time.thread_time() - cpu, time.perf_counter() - wall, graphs, warned


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cpu", type=int, default=0, help="the one core to run on")
    parser.add_argument(
        "--global-features",
        default=",".join(FAST_DESCRIPTORS + ENERGY_DESCRIPTORS),
        help="as featurize --global-features (default: the 12 and the energy descriptors)",
    )
    args = parser.parse_args()
    if not ARCHIVE.is_file():
        print(f"no {ARCHIVE}: this benchmark needs the shared CoRE MOF copy", file=sys.stderr)
        return 2
    os.sched_setaffinity(0, {args.cpu})
    params = FeaturizationParams(
        global_feature_names=tuple(n for n in args.global_features.split(",") if n),
        charges="cif_or_model",
    )
    pairs = charged_and_uncharged(args.n)
    charged = [(mof_id, a) for mof_id, a, _ in pairs]
    uncharged = [(mof_id, b) for mof_id, _, b in pairs]
    atoms = [parse_cif(a).n_atoms for _, a in charged]

    start = time.perf_counter()
    from mofsieve.charge_sources import charge_model

    model = charge_model(CHARGE_MODEL_DIR)  # what the first uncharged CIF of a process pays
    load_s = time.perf_counter() - start

    runs: dict[str, list[tuple[float, float]]] = {"charged": [], "uncharged": []}
    results = {}
    for _ in range(args.repeats):
        for name, cifs in (("charged", charged), ("uncharged", uncharged)):
            cpu, wall, graphs, warned = featurize_all(cifs, params)
            runs[name].append((cpu, wall))
            results[name] = (graphs, warned)

    own = np.concatenate([g.charge for g in results["charged"][0]])
    filled = np.concatenate([g.charge for g in results["uncharged"][0]])
    ok = np.isfinite(filled) & np.isfinite(own)
    n = len(pairs)
    print(f"{n} CoRE MOF 2019 CIFs, {np.median(atoms):.0f} atoms median (max {max(atoms)}), "
          f"one core, {args.repeats} repeats, global features: {len(params.global_feature_names)}")  # fmt: skip
    print(f"charge model {model.name}: loaded in {load_s:.2f} s once per process (imports incl.)")
    print(f"{'ms per CIF (median run)':<26}{'with charges':>14}{'without':>10}{'extra':>9}"
          f"{'ratio':>8}")  # fmt: skip
    for label, column in (("CPU time", 0), ("wall time", 1)):
        a = statistics.median(r[column] for r in runs["charged"]) * 1000 / n
        b = statistics.median(r[column] for r in runs["uncharged"]) * 1000 / n
        print(f"{label:<26}{a:>14.2f}{b:>10.2f}{b - a:>9.2f}{b / a:>7.2f}x")
    print(f"charge warnings: {results['uncharged'][1]} of {n} without charges; model vs CIF "
          f"charges MAE {np.abs(filled - own)[ok].mean():.3f} e over {ok.sum()} atoms")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
