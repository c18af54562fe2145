"""Assert that a finished screening run folder has everything a user expects."""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections import Counter
from pathlib import Path


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--min-mofs", type=int, default=50)
    parser.add_argument("--expect-failure", default="", help="a mof_id that must be in failures")
    args = parser.parse_args()
    run = args.run_dir
    problems: list[str] = []

    ranked = rows(run / "ranked.csv")
    flagged = rows(run / "flagged.csv")
    failures = rows(run / "failures.csv")
    warnings = rows(run / "warnings.csv")
    manifest = rows(run / "manifest.csv")
    if len(ranked) < args.min_mofs:
        problems.append(f"only {len(ranked)} MOFs ranked (want ≥ {args.min_mofs})")
    if len(ranked) + len({f["mof_id"] for f in failures}) != len(manifest):
        problems.append(f"{len(manifest)} in manifest ≠ {len(ranked)} ranked + failures")
    if [int(r["rank"]) for r in ranked] != list(range(1, len(ranked) + 1)):
        problems.append("ranks are not 1..N")
    pred = next(c for c in ranked[0] if c.startswith("prediction_"))
    values = [float(r[pred]) for r in ranked]
    if values != sorted(values, reverse=True):
        problems.append("ranked.csv is not best first")
    if not flagged or any(r["flagged"] != "yes" for r in flagged):
        problems.append("flagged.csv empty or holds unflagged rows")
    if [r["mof_id"] for r in flagged] != [r["mof_id"] for r in ranked if r["flagged"] == "yes"]:
        problems.append("flagged.csv is not the flagged rows of ranked.csv")
    # the top of ranked.csv, except MOFs passed over for their structure checks (skip_checks)
    # and copies of a framework flagged once already (duplicate_of)
    last = max((i for i, r in enumerate(ranked) if r["flagged"] == "yes"), default=-1)
    passed_over = [r["mof_id"] for r in ranked[:last] if r["flagged"] != "yes"]
    if any(not r["checks"] and not r.get("duplicate_of")
           for r in ranked[:last] if r["flagged"] != "yes"):  # fmt: skip
        problems.append("a MOF without checks above the flag threshold is not flagged")
    checked = {w["mof_id"] for w in warnings}
    if {r["mof_id"] for r in ranked if r["checks"]} - checked:
        problems.append("ranked.csv names checks that warnings.csv does not hold")
    if args.expect_failure and args.expect_failure not in {f["mof_id"] for f in failures}:
        problems.append(f"{args.expect_failure} missing from failures.csv")

    gcmc = run / "gcmc"
    listed = (gcmc / "mofs.txt").read_text().split()
    if not listed:
        problems.append("gcmc/mofs.txt is empty")
    for mof_id in listed:
        for name in (
            "simulation.input",
            f"{mof_id}.cif",
            "pseudo_atoms.def",
            "force_field_mixing_rules.def",
            "force_field.def",
            "CO2.def",
        ):
            if not (gcmc / mof_id / name).is_file():
                problems.append(f"gcmc/{mof_id}/{name} missing")
    script = (gcmc / "run_raspa.sbatch").read_text()
    if f"#SBATCH --array=0-{len(listed) - 1}" not in script:
        problems.append("run_raspa.sbatch does not span the flagged MOFs")

    report = (run / "report.html").read_text()
    if report.count("data:image/png;base64,") < 2 or "http://" in report or "https://" in report:
        problems.append("report.html lacks embedded pictures or links outside")
    # the CI run ranks with an attention-pooling model: every structure picture must show it
    colours = Counter(re.findall(r"""data-colour=["']([a-z]+)["']""", report))
    if colours["element"]:
        problems.append(f"report.html colours {colours['element']} structure(s) by element")
    if not colours["attention"]:
        problems.append("report.html has no attention-coloured structure picture")

    for p in problems:
        print(f"FAIL {run}: {p}", file=sys.stderr)
    if not problems:
        print(
            f"OK {run}: {len(manifest)} CIFs, {len(ranked)} ranked, {len(flagged)} flagged "
            f"({len(passed_over)} passed over for checks), {len(failures)} failures, "
            f"{len(checked)} MOFs with warnings, {len(listed)} GCMC folders, report.html"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
