"""Does ``mofsieve simulate`` reproduce the published GCMC labels of CoRE MOF 2019?

    .venv/bin/python bench/gcmc_reproduce.py --n 12 [--charges cif] [--jobs 1]

Takes ``--n`` labelled MOFs of ``../shared/data/core2019-co2/`` (a seeded random order of
those with labels at both pressures whose simulation box holds at most ``--max-box-atoms``
framework atoms, so that the run fits on a laptop; the first N of that order, so a larger
``--n`` extends a smaller one), writes their CIFs (with the CIF's charges) to
``OUT/cifs/``, runs ``mofsieve simulate`` on them at 0.15 bar and at 16 bar (each pressure
with its own cycles: low-pressure uptakes are few molecules and need more sampling, a
high-pressure cycle costs more) and prints per MOF and overall: uptake ± RASPA3's 95 %
half-width, the published label, the relative error, seconds per cycle; the median |relative
error|, the mean relative error (bias) and the Spearman rank correlation per pressure.

Results go to ``OUT/<truncation>-<charges>/p<P>bar/`` (``results.csv``, ``result.json`` per
MOF), so a rerun reuses every finished MOF with the same protocol, and ``OUT/summary-….json``.
``--truncation truncated`` runs plain truncation with tail corrections, to compare.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from mofsieve.forcefield import unit_cells
from mofsieve.manifest import iter_archive, mof_id_of
from mofsieve.structures import StructureError, parse_cif

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "core2019-co2"
LABELS = {0.15: "co2_uptake_mol_per_kg_298K_0.15bar", 16.0: "co2_uptake_mol_per_kg_298K_16bar"}


def labelled() -> dict[str, dict[float, float]]:
    """mof_id → {pressure: label} for MOFs labelled at both pressures."""
    with open(SHARED / "labels.csv", newline="") as fh:
        return {
            row["mof_id"]: {p: float(row[c]) for p, c in LABELS.items()}
            for row in csv.DictReader(fh)
            if all(row[c] for c in LABELS.values())
        }


def pick(n: int, seed: int, max_box_atoms: int, out: Path) -> list[str]:
    """The first ``n`` eligible MOFs of a seeded random order; their CIFs into ``out``."""
    labels = labelled()
    boxes: dict[str, int] = {}
    texts: dict[str, bytes] = {}
    for name, data in iter_archive(SHARED / "cifs.tar.xz"):
        mof_id = mof_id_of(name)
        if mof_id not in labels:
            continue
        try:
            crystal = parse_cif(data)
        except StructureError:
            continue
        boxes[mof_id] = crystal.n_atoms * int(np.prod(unit_cells(crystal.lattice)))
        texts[mof_id] = data
    order = sorted(boxes)
    random.Random(seed).shuffle(order)
    chosen = [m for m in order if boxes[m] <= max_box_atoms][:n]
    out.mkdir(parents=True, exist_ok=True)
    for mof_id in chosen:
        (out / f"{mof_id}.cif").write_bytes(texts[mof_id])
    print(f"{len(chosen)} MOFs of {len(order)} labelled at both pressures "
          f"(box ≤ {max_box_atoms} atoms: {sum(b <= max_box_atoms for b in boxes.values())})")  # fmt: skip
    return chosen


def simulate(cifs: list[Path], pressure: float, cycles: int, init: int, args: argparse.Namespace,
             out: Path) -> dict[str, dict[str, str]]:  # fmt: skip
    command = [
        sys.executable, "-m", "mofsieve.cli", "simulate", *map(str, cifs),
        "--pressure-bar", f"{pressure:g}", "--cycles", str(cycles), "--init-cycles", str(init),
        "--seed", str(args.seed), "--jobs", str(args.jobs), "--charges", args.charges,
        "--truncation", args.truncation, "--out", str(out),
    ]  # fmt: skip
    print("$", " ".join(command[1:]), flush=True)
    subprocess.run(command, check=True)
    with open(out / "results.csv", newline="") as fh:
        return {row["mof_id"]: row for row in csv.DictReader(fh)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=12)
    parser.add_argument("--charges", default="cif")
    parser.add_argument("--truncation", default="shifted", choices=("shifted", "truncated"))
    parser.add_argument("--seed", type=int, default=0, help="GCMC seed")
    parser.add_argument("--pick-seed", type=int, default=0, help="order of the MOFs")
    parser.add_argument("--max-box-atoms", type=int, default=1600)
    parser.add_argument("--cycles-low", type=int, default=1600)
    parser.add_argument("--init-low", type=int, default=400)
    parser.add_argument("--cycles-high", type=int, default=700)
    parser.add_argument("--init-high", type=int, default=300)
    parser.add_argument("--pressures", type=float, nargs="+", default=[0.15, 16.0],
                        choices=sorted(LABELS), help="bar (default both)")  # fmt: skip
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO / "work-data" / "gcmc-reproduce")
    args = parser.parse_args()
    if not (SHARED / "cifs.tar.xz").is_file():
        print(f"no shared CoRE MOF 2019 data at {SHARED}", file=sys.stderr)
        return 2

    chosen = pick(args.n, args.pick_seed, args.max_box_atoms, args.out / "cifs")
    labels = labelled()
    cifs = [args.out / "cifs" / f"{m}.cif" for m in chosen]
    protocols = {0.15: (args.cycles_low, args.init_low), 16.0: (args.cycles_high, args.init_high)}
    protocols = {p: protocols[p] for p in args.pressures}
    run_dir = args.out / f"{args.truncation}-{args.charges}"
    rows = {
        p: simulate(cifs, p, cycles, init, args, run_dir / f"p{p:g}bar")
        for p, (cycles, init) in protocols.items()
    }
    summary: dict[str, object] = {
        "mofs": chosen,
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    print(
        f"\n{'mof_id':<34} {'bar':>5} {'label':>7} {'simulated':>17} {'rel.err':>8} {'s/cycle':>8}"
    )
    for p, (cycles, init) in protocols.items():
        sim, lab, rel, per_cycle = [], [], [], []
        for mof_id in chosen:
            row = rows[p].get(mof_id)
            if row is None:
                print(f"{mof_id:<34} {p:>5g} {labels[mof_id][p]:7.3f} {'failed':>17}")
                continue
            uptake, label = float(row["uptake_mol_per_kg"]), labels[mof_id][p]
            error = (uptake - label) / label
            seconds = float(row["wall_s"]) / (cycles + init)
            sim.append(uptake), lab.append(label), rel.append(error), per_cycle.append(seconds)
            print(f"{mof_id:<34} {p:>5g} {label:7.3f} {uptake:8.3f} ± {float(row['uptake_error_mol_per_kg']):6.3f} "
                  f"{100 * error:+7.1f}% {seconds:8.4f}")  # fmt: skip
        overall = {
            "n": len(rel),
            "median_abs_rel_error": statistics.median(abs(e) for e in rel) if rel else None,
            "mean_rel_error": statistics.fmean(rel) if rel else None,
            "spearman": float(spearmanr(sim, lab).statistic) if len(rel) > 2 else None,
            "median_s_per_cycle": statistics.median(per_cycle) if per_cycle else None,
            "cycles": cycles,
            "init_cycles": init,
        }
        summary[f"{p:g}bar"] = overall
        print(f"{'overall':<34} {p:>5g}  n={overall['n']}  median |rel.err| "
              f"{100 * (overall['median_abs_rel_error'] or 0):.1f}%  mean rel.err "
              f"{100 * (overall['mean_rel_error'] or 0):+.1f}%  Spearman {overall['spearman']}  "
              f"median {overall['median_s_per_cycle']} s/cycle")  # fmt: skip
    path = args.out / f"summary-{args.truncation}-{args.charges}-n{args.n}.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"summary → {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
