"""Peak memory of one featurize job against a small and a large manifest that share its shards.

    python bench/featurize_memory.py [--small 2000] [--large 100000] [--archives 8]
        [--shard-size 500] [--job-shards 2] [--model models/co2_298K_0.15bar] [--repeats 2]

Issue 13: a featurize job's peak memory must not grow with N, the size of the screen. Both
manifests are laid out as ``bench/scale.py`` lays out a screen (``--archives`` uncompressed
tars, the manifest archive by archive, shards of ``--shard-size`` consecutive rows); the job
is the last ``--job-shards`` shards, i.e. the last members of the last archive, as deep in
it as a late shard of a real screen: N / archives members (12,500 at N = 100,000). Its CIFs
are the first ones of the PyPI package core-mof, the same bytes, names and order in both
manifests; every other row (another shard's) is a tiny filler member that the job walks past
but never reads, so the large inputs take ~100 MB of disk, under a temporary folder that is
removed at the end.

Each job runs ``mofsieve featurize --manifest M --shard K… --out DIR --jobs 1 --model MODEL``
(the workflow's featurize rule, one core) in a fresh process; its peak resident memory is
the process's own ``ru_maxrss`` (``os.wait4``), not a sampled one like snakemake's
``benchmark:`` files (which sample once a second, then every 30 s, and miss short peaks).
Also timed apart: the reading only (``read_manifest`` of the job's shards, then each shard's
CIF bytes as ``featurize_shard`` reads them), where anything sized by N would show without
the featurization's own peak on top. Small and large alternate, ``--repeats`` times; the
table gives the largest peak of each and the difference.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAUNCH = "--launch"  # internal: python featurize_memory.py --launch LOG COMMAND...


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=2000, help="rows of the small manifest")
    parser.add_argument("--large", type=int, default=100_000, help="rows of the large one")
    parser.add_argument("--archives", type=int, default=8, help="tars each screen is spread over")
    parser.add_argument("--shard-size", type=int, default=500)
    parser.add_argument("--job-shards", type=int, default=2, help="shards of the one job")
    parser.add_argument("--model", default="models/co2_298K_0.15bar")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="leave the temporary folder")
    parser.add_argument("--read-only-child", nargs=2, metavar=("MANIFEST", "SHARDS"),
                        help=argparse.SUPPRESS)  # fmt: skip
    return parser.parse_args()


@dataclass(frozen=True)
class Screen:
    label: str
    n_rows: int
    manifest: Path
    job_shards: list[int]
    depth: int  # members before the job's first one in its archive


def job_cifs(n: int) -> list[tuple[str, bytes]]:
    """The first ``n`` CIFs of core-mof's 2019-ASR set (streamed, stops after ``n``)."""
    from mofsieve.manifest import iter_archive, package_archive

    cifs = []
    for name, data in iter_archive(package_archive("core-mof:2019-ASR")):
        cifs.append((name.rsplit("/", 1)[-1], data))
        if len(cifs) == n:
            return cifs
    raise SystemExit(f"core-mof has only {len(cifs)} CIFs, the job needs {n}")


def fillers(start: int, count: int) -> Iterator[tuple[str, bytes]]:
    # another shard's CIF: never read by the job, so a one-line body does
    for k in range(start, start + count):
        yield f"FILLER{k:07d}_clean.cif", f"data_FILLER{k:07d}\n".encode()


def make_screen(
    label: str, n_rows: int, folder: Path, cifs: Sequence[tuple[str, bytes]], args
) -> Screen:
    """``n_rows`` rows over ``args.archives`` tars; the job's CIFs end the last tar."""
    from mofsieve.manifest import ManifestRow, archive_source, write_manifest

    folder.mkdir(parents=True)
    n_fillers = n_rows - len(cifs)
    if n_fillers < 0 or n_rows % args.shard_size:
        raise SystemExit(f"{label}: {n_rows} rows must be ≥ the job's {len(cifs)} CIFs and a "
                         f"multiple of --shard-size {args.shard_size}")  # fmt: skip
    per_archive = [n_fillers // args.archives + (k < n_fillers % args.archives)
                   for k in range(args.archives)]  # fmt: skip
    rows: list[ManifestRow] = []
    written = 0
    for k, count in enumerate(per_archive):
        archive = folder / f"cifs-{k:02d}.tar"
        members = list(fillers(written, count))
        written += count
        if k == args.archives - 1:
            members += cifs
        with tarfile.open(archive, "w") as tar:
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                sha1 = hashlib.sha1(data, usedforsecurity=False).hexdigest()
                shard = len(rows) // args.shard_size
                rows.append(ManifestRow(name[: -len(".cif")], archive_source(archive, name),
                                        sha1, len(data), shard))  # fmt: skip
    manifest = write_manifest(rows, folder / "manifest.csv")
    n_shards = rows[-1].shard + 1
    return Screen(label, n_rows, manifest,
                  list(range(n_shards - args.job_shards, n_shards)), per_archive[-1])  # fmt: skip


def peak_rss_mb(command: list[str], log: Path) -> tuple[float, float]:
    """(peak RSS MB, wall s) of ``command`` run in a fresh process.

    Started through a small launcher process (:func:`launch`): a process keeps the peak RSS
    of the one that forked it (Linux carries the high-water mark over fork and exec), so a
    job started from this one, which holds the screens' rows, would report this one's size.
    """
    start = time.perf_counter()
    launcher = [sys.executable, __file__, LAUNCH, str(log), *command]
    done = subprocess.run(launcher, cwd=REPO, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}); see {log}")
    return int(done.stdout) / 1024, time.perf_counter() - start


def launch(log: str, command: list[str]) -> int:
    """Run ``command`` (output to ``log``), print its own peak RSS in KB, return its status."""
    with open(log, "w") as out:
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        # wait4: this child's rusage; RUSAGE_CHILDREN would be the largest of all children
        _, status, usage = os.wait4(child.pid, 0)
    print(usage.ru_maxrss)
    return os.waitstatus_to_exitcode(status)


def featurize_command(screen: Screen, out: Path, model: str) -> list[str]:
    mofsieve = Path(sys.executable).with_name("mofsieve")
    return [str(mofsieve), "featurize", "--manifest", str(screen.manifest),
            "--shard", *map(str, screen.job_shards), "--out", str(out), "--jobs", "1",
            "--model", model]  # fmt: skip


def read_only_command(screen: Screen) -> list[str]:
    shards = ",".join(map(str, screen.job_shards))
    return [sys.executable, __file__, "--read-only-child", str(screen.manifest), shards]


def read_only_child(manifest: str, shards_text: str) -> int:
    """What a featurize job does before featurizing: its rows, then each shard's bytes."""
    from mofsieve.manifest import read_manifest, read_sources

    shards = [int(s) for s in shards_text.split(",")]
    rows = read_manifest(manifest, shards)
    for shard in shards:
        mine = [r for r in rows if r.shard == shard]  # as featurize_shard picks them
        failed = [row.mof_id for row, data in read_sources(mine) if isinstance(data, OSError)]
        if failed or not mine:
            print(f"shard {shard}: {len(mine)} rows, unreadable {failed[:3]}", file=sys.stderr)
            return 1
    return 0


def same_outputs(first: Path, second: Path) -> bool:
    """The job's failures/warnings/frameworks CSVs of both runs agree (sources aside)."""

    def rows(folder: Path) -> list[str]:
        lines = []
        for path in sorted(folder.glob("*.csv")):
            name = path.name.split("-")[0]  # shard numbers differ between the screens
            lines += [name + "," + line.split(",", 1)[0] for line in path.read_text().splitlines()]
        return sorted(lines)

    return rows(first) == rows(second)


def main() -> int:
    if sys.argv[1:2] == [LAUNCH]:
        return launch(sys.argv[2], sys.argv[3:])
    args = arguments()
    if args.read_only_child:
        return read_only_child(*args.read_only_child)
    work = Path(tempfile.mkdtemp(prefix="featurize-memory-"))
    try:
        start = time.perf_counter()
        cifs = job_cifs(args.job_shards * args.shard_size)
        screens = [make_screen(label, n, work / label, cifs, args)
                   for label, n in (("small", args.small), ("large", args.large))]  # fmt: skip
        disk = sum(p.stat().st_size for p in work.rglob("*") if p.is_file()) / 1e6
        print(f"inputs: {disk:.0f} MB in {work} ({time.perf_counter() - start:.1f} s)")
        for screen in screens:
            print(f"  {screen.label}: {screen.n_rows} rows, job = shards "
                  f"{screen.job_shards[0]}-{screen.job_shards[-1]} ({len(cifs)} CIFs), "
                  f"{screen.depth} members before them in their archive")  # fmt: skip
        peaks: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for repeat in range(args.repeats):
            for screen in screens:
                out = work / f"out-{screen.label}-{repeat}"
                runs = {"featurize job": featurize_command(screen, out, args.model),
                        "reading only": read_only_command(screen)}  # fmt: skip
                for what, command in runs.items():
                    log = work / f"{screen.label}-{what.split()[0]}-{repeat}.log"
                    peaks.setdefault((what, screen.label), []).append(peak_rss_mb(command, log))
        small, large = (s.label for s in screens)
        print(f"\n{'peak RSS, MB':<16} {'N=' + str(args.small):>10} {'N=' + str(args.large):>10}"
              f" {'large-small':>12}   wall s (small / large)")  # fmt: skip
        for what in ("featurize job", "reading only"):
            a, b = (max(rss for rss, _ in peaks[what, label]) for label in (small, large))
            ta, tb = (min(s for _, s in peaks[what, label]) for label in (small, large))
            print(f"{what:<16} {a:>10.1f} {b:>10.1f} {b - a:>+12.1f}   {ta:.1f} / {tb:.1f}")
        agree = same_outputs(work / "out-small-0", work / "out-large-0")
        print(f"same failures/warnings/frameworks from both jobs: {agree}")
        return 0 if agree else 1
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
