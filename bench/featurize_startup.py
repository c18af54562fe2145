"""What deferring the unused parts of torch and PyG saves a featurize job, side by side.

    .venv/bin/python bench/featurize_startup.py [--n 20] [--repeats 5]

Writes the first ``--n`` CIFs of the core-mof package (CoRE MOF 2019-ASR, no partial
charges) into one ``.tar``, then runs whole ``mofsieve featurize --charges cif_or_model
--jobs 1`` processes on them (what a workflow job runs: the charge model and its torch/PyG
imports included), alternating with :mod:`mofsieve.lean_imports` on (the default) and off
(``MOFSIEVE_LEAN_IMPORTS=0``), ``--repeats`` times each; the median wall time of each and
their difference, the start-up every featurize job pays once.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from mofsieve.manifest import iter_archive, package_archive


def write_inputs(count: int, path: Path) -> None:
    with tarfile.open(path, "w") as tar:
        for k, (name, data) in enumerate(iter_archive(package_archive("core-mof:2019-ASR"))):
            if k == count:
                break
            info = tarfile.TarInfo(Path(name).name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def job_seconds(archive: Path, out: Path, lean: bool) -> float:
    env = {**os.environ, "MOFSIEVE_LEAN_IMPORTS": "1" if lean else "0"}
    mofsieve = Path(sys.executable).with_name("mofsieve")
    command = [str(mofsieve), "featurize", str(archive), "--out", str(out), "--jobs", "1",
               "--charges", "cif_or_model", "--overwrite"]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "cifs.tar"
        write_inputs(args.n, archive)
        job_seconds(archive, Path(tmp) / "warm", lean=True)  # kernels built, files cached
        times: dict[bool, list[float]] = {True: [], False: []}
        for k in range(args.repeats):
            for lean in (True, False):
                times[lean].append(job_seconds(archive, Path(tmp) / f"out-{k}-{lean}", lean))
    lean, full = statistics.median(times[True]), statistics.median(times[False])
    print(f"`mofsieve featurize --charges cif_or_model --jobs 1` on {args.n} core-mof CIFs, "
          f"whole processes, {args.repeats} runs each alternating (median wall)")  # fmt: skip
    print(f"torch._dynamo and PyG's datasets deferred: {lean:.2f} s; imported: {full:.2f} s; "
          f"{full - lean:.2f} s less per job ({full / lean:.2f}x)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
