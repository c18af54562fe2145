"""The whole local workflow on N distinct CIFs: how a 10⁵-CIF screen behaves on this machine.

    python bench/scale.py --n 100000 [--archives 8] [--shard-size 500] [--cores 2]

Makes N distinct CIFs from the core-mof package's CoRE MOF 2019-ASR structures (each
structure again and again under a new name, its cell lengths strained by a random ±1 %, so
every CIF is a new crystal), written into a few uncompressed ``.tar`` archives under
``work-data/scale-N/``, then runs ``snakemake --cores C`` on them with the repository's
Snakefile and prints:

- DAG time (a dry run of the finished run: snakemake building the DAG of every shard),
- per stage: jobs, summed job seconds, CIFs per job-second, peak resident memory of the
  largest job (snakemake's ``benchmark:`` files),
- files created, total wall time, MOFs ranked and failed, and rank + report seconds.

Run it at a small N first (``--n 2000``); ``--keep`` leaves the inputs for a rerun.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CELL_LENGTH = re.compile(rb"^(_cell_length_[abc])(\s+)([0-9.]+)", re.M)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="CIFs to screen")
    parser.add_argument("--archives", type=int, default=8, help="tar archives to spread them over")
    parser.add_argument("--shard-size", type=int, default=500)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--model", default="models/co2_298K_0.15bar")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="reuse existing inputs and results")
    return parser.parse_args()


def strained(cif: bytes, rng: np.random.Generator) -> bytes:
    """The CIF with each cell length multiplied by its own factor in [0.99, 1.01]."""

    def scale(match: re.Match[bytes]) -> bytes:
        value = float(match.group(3)) * rng.uniform(0.99, 1.01)
        return match.group(1) + match.group(2) + f"{value:.5f}".encode()

    return CELL_LENGTH.sub(scale, cif)


def make_inputs(n: int, n_archives: int, folder: Path, seed: int) -> list[Path]:
    """``n`` distinct CIFs in ``n_archives`` tars (round-robin over the package's CIFs)."""
    from mofsieve.manifest import iter_archive, package_archive

    sources = list(iter_archive(package_archive("core-mof:2019-ASR")))
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"cifs-{k:02d}.tar" for k in range(n_archives)]
    tars = [tarfile.open(p, "w") for p in paths]
    try:
        for i in range(n):
            name, data = sources[i % len(sources)]
            stem = Path(name).stem
            body = data if i < len(sources) else strained(data, rng)
            info = tarfile.TarInfo(f"{stem}_x{i // len(sources)}.cif")
            info.size = len(body)
            tars[i % n_archives].addfile(info, io.BytesIO(body))
    finally:
        for tar in tars:
            tar.close()
    return paths


def stage_table(run_dir: Path, n_cifs: int) -> list[tuple[str, int, float, float]]:
    """(stage, jobs, summed job seconds, peak max_rss MB) from the benchmark files."""
    seconds: dict[str, float] = defaultdict(float)
    jobs: dict[str, int] = defaultdict(int)
    peak: dict[str, float] = defaultdict(float)
    for tsv in sorted((run_dir / "benchmarks").rglob("*.tsv")):
        stage = tsv.relative_to(run_dir / "benchmarks").parts[0].removesuffix(".tsv")
        with open(tsv, newline="") as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                seconds[stage] += float(row["s"])
                jobs[stage] += 1
                rss = row["max_rss"]
                if rss not in ("", "NA", "-"):
                    peak[stage] = max(peak[stage], float(rss))
    return [(stage, jobs[stage], seconds[stage], peak[stage]) for stage in seconds]


def count_rows(path: Path) -> int:
    with open(path, newline="") as fh:
        return max(0, sum(1 for _ in fh) - 1)


def main() -> int:
    args = arguments()
    work = REPO / "work-data" / f"scale-{args.n}"
    run = f"scale-{args.n}"
    run_dir = work / "results" / run
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    t0 = time.perf_counter()
    archives = sorted(work.glob("inputs/cifs-*.tar"))
    if not archives:
        archives = make_inputs(args.n, args.archives, work / "inputs", args.seed)
    print(f"inputs: {args.n} CIFs in {len(archives)} archives ({time.perf_counter() - t0:.1f} s)")

    config = work / "config.yaml"
    config.write_text(
        f"run: {run}\noutput_dir: {work / 'results'}\n"
        f"inputs: [{', '.join(str(a) for a in archives)}]\n"
        f"shard_size: {args.shard_size}\ntarget: {{pressure: 0.15}}\n"
        f'models: {{"0.15": {args.model}}}\nflag: {{top_fraction: 0.05}}\ndevice: cpu\n'
        "featurize: {threads: 1}\npredict: {threads: 1}\n"
        # the screen itself: GCMC of the picks (config.yaml's gcmc.simulate) is timed apart
        "gcmc: {simulate: {top: 0}}\n"
    )
    snakemake = [sys.executable, "-m", "snakemake", "--cores", str(args.cores),
                 "--configfile", str(config), "--rerun-incomplete", "--quiet", "all"]  # fmt: skip
    # the rules call `mofsieve`: the one installed beside this Python
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    start = time.perf_counter()
    done = subprocess.run(snakemake, cwd=REPO, env=env)
    wall = time.perf_counter() - start
    if done.returncode:
        print(f"snakemake failed ({done.returncode}) after {wall:.0f} s", file=sys.stderr)
        return done.returncode
    start = time.perf_counter()
    subprocess.run([*snakemake, "-n"], cwd=REPO, env=env, check=True, capture_output=True)
    dag = time.perf_counter() - start

    print(f"total wall {wall:.0f} s ({wall / 60:.1f} min) on {args.cores} cores; "
          f"DAG of the finished run (dry run) {dag:.1f} s")  # fmt: skip
    print(f"{'stage':<10} {'jobs':>6} {'job-s':>9} {'CIFs/job-s':>11} {'peak RSS MB':>12}")
    for stage, jobs, seconds, peak in stage_table(run_dir, args.n):
        rate = args.n / seconds if seconds else float("nan")
        print(f"{stage:<10} {jobs:>6} {seconds:>9.1f} {rate:>11.1f} {peak:>12.0f}")
    files = sum(1 for p in run_dir.rglob("*") if p.is_file())
    ranked = count_rows(run_dir / "ranked.csv")
    failed = count_rows(run_dir / "failures.csv")
    print(f"files created: {files}; ranked {ranked}, failed {failed} (of {args.n})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
