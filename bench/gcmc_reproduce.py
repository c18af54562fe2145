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

Learned charges: ``--held-out-of models/charges`` picks only MOFs of the charge model's test
split (never trained on); ``--charges model`` simulates them with its charges and prints the
per-atom MAE of those charges against the CIF's; ``--compare-charges cif`` prints each MOF's
uptake against the run of the same MOFs and protocol with the other charges (run that first)
and the median |relative difference| per pressure.
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


def held_out(model_dir: Path | None) -> set[str] | None:
    """The MOFs of a charge model's test split (``split.csv``), or None for no restriction."""
    if model_dir is None:
        return None
    with open(model_dir / "split.csv", newline="") as fh:
        return {row["mof_id"] for row in csv.DictReader(fh) if row["split"] == "test"}


def pick(
    n: int, seed: int, max_box_atoms: int, out: Path, only: set[str] | None = None
) -> list[str]:
    """The first ``n`` eligible MOFs of a seeded random order; their CIFs into ``out``."""
    labels = labelled()
    if only is not None:
        labels = {m: v for m, v in labels.items() if m in only}
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


def compare_runs(rows: dict[float, dict[str, dict[str, str]]], other_dir: Path,
                 protocols: dict[float, tuple[int, int]], chosen: list[str]) -> dict[str, object]:  # fmt: skip
    """Per pressure: each MOF's uptake relative to the other run's, and the median |diff|."""
    out: dict[str, object] = {}
    print(f"\n{'mof_id':<34} {'bar':>5} {'this run':>9} {'other':>9} {'rel.diff':>8}")
    for p in protocols:
        with open(other_dir / f"p{p:g}bar" / "results.csv", newline="") as fh:
            other = {row["mof_id"]: float(row["uptake_mol_per_kg"]) for row in csv.DictReader(fh)}
        diffs = []
        for mof_id in chosen:
            if mof_id in rows[p] and mof_id in other:
                this = float(rows[p][mof_id]["uptake_mol_per_kg"])
                diffs.append((this - other[mof_id]) / other[mof_id])
                print(
                    f"{mof_id:<34} {p:>5g} {this:9.3f} {other[mof_id]:9.3f} {100 * diffs[-1]:+7.1f}%"
                )
        median = statistics.median(abs(d) for d in diffs) if diffs else None
        out[f"{p:g}bar"] = {"n": len(diffs), "median_abs_rel_diff": median,
                            "mean_rel_diff": statistics.fmean(diffs) if diffs else None}  # fmt: skip
        print(f"{'versus ' + other_dir.name:<34} {p:>5g}  n={len(diffs)}  median |rel.diff| "
              f"{100 * (median or 0):.1f}%")  # fmt: skip
    return out


def charge_model_mae(cifs: list[Path]) -> float:
    """Per-atom MAE (e) of the shipped charge model against the CIFs' own charges."""
    from mofsieve.charge_model import load_charge_model

    model = load_charge_model()
    errors = []
    for cif in cifs:
        crystal = parse_cif(cif.read_bytes())
        errors.append(np.abs(model.predict(crystal) - crystal.charge))
    mae = float(np.concatenate(errors).mean())
    print(f"charge model {model.name}: per-atom MAE {mae:.4f} e against the CIF charges "
          f"of these {len(cifs)} MOFs")  # fmt: skip
    return mae


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
    parser.add_argument("--held-out-of", type=Path, metavar="CHARGE_MODEL_DIR",
                        help="pick only MOFs of this charge model's test split")  # fmt: skip
    parser.add_argument("--compare-charges", metavar="METHOD",
                        help="also compare each uptake with the run with these charges")  # fmt: skip
    args = parser.parse_args()
    if not (SHARED / "cifs.tar.xz").is_file():
        print(f"no shared CoRE MOF 2019 data at {SHARED}", file=sys.stderr)
        return 2

    only = held_out(args.held_out_of)
    chosen = pick(args.n, args.pick_seed, args.max_box_atoms, args.out / "cifs", only)
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
    if args.compare_charges:
        summary["versus_" + args.compare_charges] = compare_runs(
            rows, args.out / f"{args.truncation}-{args.compare_charges}", protocols, chosen
        )
    if args.charges in ("model", "cif_or_model"):
        summary["charge_model_mae_e"] = charge_model_mae(cifs)
    path = args.out / f"summary-{args.truncation}-{args.charges}-n{args.n}.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"summary → {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
