"""Plan a screen of N CIFs under a profile (a dry run: nothing is submitted) and check how many
SLURM jobs it would submit.

    python .ci/plan_jobs.py --cifs 300000 --max-jobs 300 --out results/ci-plan -- \
        --profile slurm --workflow-profile .ci/slurm-profile

The run folder gets a config for the working capacity (two models: the most jobs a screen
plans) and a manifest of N made-up CIFs (the files need not exist for a plan). Jobs counted:
every job of the plan but ``all`` (snakemake runs it itself), plus the manifest job that a
fresh run also has.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cifs", type=int, default=300_000)
    parser.add_argument("--shard-size", type=int, default=500)
    parser.add_argument("--max-jobs", type=int, default=300)
    parser.add_argument("--out", type=Path, required=True, help="run folder (made afresh)")
    parser.add_argument("snakemake_args", nargs="*", help="after --: profile options")
    args = parser.parse_args()
    out = args.out.resolve()
    run = out / "results" / "plan"
    run.mkdir(parents=True, exist_ok=True)
    config = {
        "run": "plan",
        "inputs": ["cifs"],
        "shard_size": args.shard_size,
        "target": {"pressure": "working_capacity"},
        "models": {
            "0.15": str(REPO / "models" / "co2_298K_0.15bar"),
            "16": str(REPO / "models" / "co2_298K_16bar"),
        },
    }
    (out / "config.yaml").write_text(yaml.safe_dump(config))
    sha = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
    with open(run / "manifest.csv", "w") as fh:
        fh.write("mof_id,source,sha1,n_bytes,shard\n")
        fh.writelines(
            f"CIF{i:07d},cifs/CIF{i:07d}.cif,{sha},1000,{i // args.shard_size}\n"
            for i in range(args.cifs)
        )
    profile = [os.path.abspath(a) if os.path.isdir(a) else a for a in args.snakemake_args]
    command = ["snakemake", "--snakefile", str(REPO / "Snakefile"), "-n", *profile]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=out, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        print(result.stdout[-3000:], result.stderr[-3000:], file=sys.stderr)
        return 1
    table = result.stdout.split("Job stats:", 1)[1]
    counts = {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)}
    submitted = counts["total"] - counts.get("all", 0) + ("manifest" not in counts)
    per_rule = ", ".join(f"{k} {v}" for k, v in counts.items() if k not in ("total", "all"))
    n_shards = -(-args.cifs // args.shard_size)
    print(f"plan of {args.cifs:,} CIFs ({n_shards} shards, working capacity): {per_rule}, "
          f"+ manifest: {submitted} SLURM jobs (limit {args.max_jobs}); planned in {elapsed:.1f} s")  # fmt: skip
    if submitted > args.max_jobs:
        print(f"FAIL: {submitted} jobs > {args.max_jobs}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
