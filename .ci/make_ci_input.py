"""Write a tar.gz of the first N CIFs of the core-mof package's 2019-ASR set, plus one broken
CIF, as the input of the CI's SLURM end-to-end run (real structures, no network needed)."""

from __future__ import annotations

import argparse
import io
import tarfile
from pathlib import Path

from mofsieve.manifest import package_archive

BROKEN = b"data_broken\n_cell_length_a 10\nthis is not a CIF\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with tarfile.open(package_archive("core-mof:2019-ASR"), "r|*") as src, tarfile.open(
        args.out, "w:gz"
    ) as dst:
        for member in src:
            if not (member.isfile() and member.name.endswith(".cif")):
                continue
            dst.addfile(member, src.extractfile(member))
            n += 1
            if n == args.count:
                break
        info = tarfile.TarInfo("ci/BROKEN_ci.cif")
        info.size = len(BROKEN)
        dst.addfile(info, io.BytesIO(BROKEN))
    print(f"{args.out}: {n} CoRE MOF 2019-ASR CIFs + 1 broken CIF")


if __name__ == "__main__":
    main()
