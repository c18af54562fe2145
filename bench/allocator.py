"""`mofsieve predict` over graph shards with glibc's default malloc vs with freed memory kept
(mofsieve.runtime.configure_cpu, what the CLI does), each in a fresh process, same run.

    .venv/bin/python bench/allocator.py [--graphs DIR] [--shards 2] [--threads 2]

Prints MOFs/s, minor page faults and peak resident memory of each, and the throughput ratio.
Peak memory with more shards shows whether keeping freed memory lets it grow.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_CHILD = """
import json, resource, sys, time
from pathlib import Path
from mofsieve.predict import predict
from mofsieve.runtime import configure_cpu
mode, model, out, threads, *shards = sys.argv[1:]
kept = configure_cpu(int(threads), keep_freed=mode == "keep")  # as the CLI, or not keeping
t0 = time.perf_counter()
n = predict(Path(model), shards, Path(out))
seconds = time.perf_counter() - t0
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"kept": kept, "mofs": n, "seconds": seconds, "faults": usage.ru_minflt,
                  "max_rss_mb": usage.ru_maxrss / 1024}))
"""


def run_child(mode: str, model: Path, shards: list[Path], threads: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                _CHILD,
                mode,
                str(model),
                str(Path(tmp) / "p.csv"),
                str(threads),
                *map(str, shards),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=REPO / "models" / "co2_298K_0.15bar")
    parser.add_argument("--graphs", type=Path, default=REPO / "work-data" / "core2019-desc")
    parser.add_argument("--shards", type=int, default=2, help="first N shards of --graphs")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    shards = sorted(args.graphs.glob("shard-*.h5"))[: args.shards]
    if not shards:
        sys.exit(f"no shard-*.h5 in {args.graphs} (featurize the shared CIFs first, see README)")
    results = {
        mode: run_child(mode, args.model, shards, args.threads) for mode in ("default", "keep")
    }
    if not results["keep"]["kept"]:
        print("note: the C library refused the malloc thresholds; both runs are the same")
    for mode, label in (("default", "glibc default malloc"), ("keep", "freed memory kept")):
        r = results[mode]
        print(
            f"{label:22s}: {r['mofs'] / r['seconds']:7.1f} MOFs/s  ({r['mofs']} MOFs, "
            f"{r['seconds']:.1f} s), {r['faults']:>9,} minor faults, "
            f"peak RSS {r['max_rss_mb']:.0f} MB"
        )
    ratio = results["default"]["seconds"] / results["keep"]["seconds"]
    print(f"ratio                 : {ratio:7.2f}x")


if __name__ == "__main__":
    main()
