"""Assert that a finished run simulated its top picks through SLURM and validated them:
validation.csv, validation.json, the report's validation section, one SLURM job per pick."""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import sys
from pathlib import Path


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--min-simulated", type=int, default=2)
    parser.add_argument("--slurm-logs", type=Path, help="the profile's slurm-logdir")
    args = parser.parse_args()
    run = args.run_dir
    problems: list[str] = []

    picks = rows(run / "simulate" / "picks" / "picks.csv")
    flagged = rows(run / "flagged.csv")
    table = rows(run / "validation.csv")
    summary = json.loads((run / "validation.json").read_text())
    simulated = [r for r in table if r["status"] == "ok"]
    if len(simulated) < args.min_simulated:
        problems.append(f"{len(simulated)} MOFs simulated (want ≥ {args.min_simulated}): {table}")
    flagged_ids = [r["mof_id"] for r in flagged]
    if [p["mof_id"] for p in picks] != flagged_ids[: len(picks)] or not picks:
        problems.append(f"picks {[p['mof_id'] for p in picks]} are not the best flagged MOFs")
    if sorted(r["mof_id"] for r in table) != sorted(p["mof_id"] for p in picks):
        problems.append("validation.csv does not list every pick")
    for r in simulated:
        if not math.isfinite(float(r["simulated"])) or float(r["simulated_error"]) < 0:
            problems.append(f"{r['mof_id']}: simulated {r['simulated']} ± {r['simulated_error']}")
        if not r["charge_method"]:
            problems.append(f"{r['mof_id']}: no charge method")
    for r in table:
        if r["status"] != "ok" and not r["reason"]:
            problems.append(f"{r['mof_id']}: {r['status']} without a reason")
    threshold = min(float(r[next(c for c in r if c.startswith("prediction_"))]) for r in flagged)
    if summary["n_simulated"] != len(simulated) or summary["n_picked"] != len(table):
        problems.append(f"validation.json counts {summary['n_simulated']}/{summary['n_picked']}")
    if summary["flag_threshold"] is None or abs(summary["flag_threshold"] - threshold) > 1e-6:
        problems.append(f"flag threshold {summary['flag_threshold']} ≠ {threshold}")
    hits = sum(float(r["simulated"]) >= threshold for r in simulated)
    if (
        summary["hit_rate"] is None
        or abs(summary["hit_rate"] - hits / len(simulated or [0])) > 1e-9
    ):
        problems.append(f"hit rate {summary['hit_rate']} ≠ {hits}/{len(simulated)}")
    maes = [abs(float(r["predicted"]) - float(r["simulated"])) for r in simulated]
    if summary["mae"] is None or abs(summary["mae"] - sum(maes) / max(len(maes), 1)) > 1e-5:
        problems.append(f"MAE {summary['mae']} ≠ the mean of |predicted − simulated|")
    if len(simulated) >= 2 and summary["spearman"] is None:
        problems.append("no Spearman for ≥ 2 simulated MOFs")

    report = (run / "report.html").read_text()
    parts = report.split("<h2>Validation: GCMC of the top picks</h2>", 1)
    section = parts[1].split("<h2>", 1)[0] if len(parts) == 2 else ""
    if not section:
        problems.append("report.html has no validation section")
    elif "data:image/png;base64," not in section:
        problems.append("the validation section has no parity plot")
    for r in simulated:
        if not re.search(
            rf"<td>{re.escape(r['mof_id'])}</td>.*?<td>{r['charge_method']}</td>", section
        ):
            problems.append(f"the validation section lacks {r['mof_id']} with its charge method")
    if "MAE (mol/kg)" not in section or "hit rate" not in section:
        problems.append("the validation section lacks its metrics")
    if "mean attention × n_atoms" not in report.split("<h2>Attention by element</h2>", 1)[-1]:
        problems.append("report.html has no attention-by-element table")

    if args.slurm_logs is not None:  # the executor's log folder per rule: one per SLURM job
        jobs = sorted((args.slurm_logs / "rule_simulate").rglob("*.log"))
        if len(jobs) < len(picks):
            problems.append(f"{len(jobs)} simulate SLURM job logs for {len(picks)} picks")

    for p in problems:
        print(f"FAIL {run}: {p}", file=sys.stderr)
    if not problems:
        methods = ", ".join(f"{r['mof_id']} {r['charge_method']}" for r in simulated)
        print(
            f"OK {run}: {len(picks)} picks, {len(simulated)} simulated through SLURM "
            f"({methods}); MAE "
            f"{summary['mae']:.3g} mol/kg, Spearman {summary['spearman']}, hit rate "
            f"{summary['hit_rate']:.2f}; report validation section present"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
