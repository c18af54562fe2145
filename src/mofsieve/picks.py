"""The MOFs a run simulates to check its predictions: the best N flagged ones, and their CIFs.

``write_picks`` takes ``flagged.csv`` (best first), passes over rows that name another MOF
in a ``duplicate_of`` column (when rank grouped duplicates: the group's first member stands
for it), keeps the first N, and writes a picks folder:

``picks.csv``
    ``mof_id,rank,source``: the picked MOFs whose CIF could be read, best first;
``<mof_id>.cif``
    each one's CIF, byte for byte (charges and all), read once from its source, also out of
    an archive, so that each simulate job reads one small file;
``failures.csv``
    ``mof_id,source,stage,reason`` for a picked MOF whose CIF could not be read.

The folder is built beside its final name and renamed into place, so a killed job leaves
either the old folder or the complete new one. This module is the one reader and writer of
the picks folder.
"""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mofsieve.atomic import write_csv_atomic
from mofsieve.failures import Failure, read_failures, write_failures
from mofsieve.manifest import iter_source_bytes

PICK_COLUMNS = ("mof_id", "rank", "source")
PICKS_CSV = "picks.csv"
FAILURES_CSV = "failures.csv"


class PicksError(ValueError):
    """A flagged.csv or picks folder that cannot be used, with the reason."""


@dataclass(frozen=True)
class Pick:
    mof_id: str
    rank: int
    source: str


def read_csv_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a CSV; :class:`PicksError` naming it if it cannot be read."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            return list(reader.fieldnames or ()), list(reader)
    except OSError as err:
        raise PicksError(f"cannot read {path}: {err.strerror or err}") from None


def select_picks(flagged_csv: str | os.PathLike[str], top: int) -> list[Pick]:
    """The first ``top`` rows of ``flagged.csv`` that are not duplicates of another MOF."""
    if top < 0:
        raise PicksError(f"top must be ≥ 0, not {top}")
    header, rows = read_csv_rows(Path(flagged_csv))
    missing = [c for c in PICK_COLUMNS if c not in header]
    if missing:
        raise PicksError(f"{flagged_csv} is not a flagged.csv (missing columns {missing})")
    picks: list[Pick] = []
    for row in rows:
        if len(picks) == top:
            break
        if row.get("duplicate_of"):  # its group is simulated once, through its first member
            continue
        picks.append(Pick(row["mof_id"], int(row["rank"]), row["source"]))
    return picks


def write_picks(
    flagged_csv: str | os.PathLike[str], top: int, out_dir: str | os.PathLike[str]
) -> list[Pick]:
    """Write the picks folder ``out_dir`` (see the module docstring); returns the picks whose
    CIF was written."""
    out = Path(out_dir)
    picks = select_picks(flagged_csv, top)
    building = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    try:
        written: list[Pick] = []
        failures: list[Failure] = []
        for pick, (_, data) in zip(picks, iter_source_bytes(p.source for p in picks), strict=True):
            if isinstance(data, OSError):
                failures.append(
                    Failure(pick.mof_id, pick.source, "pick", f"cannot read the CIF: {data}")
                )
                continue
            (building / f"{pick.mof_id}.cif").write_bytes(data)
            written.append(pick)
        write_csv_atomic(
            building / PICKS_CSV, PICK_COLUMNS, ((p.mof_id, p.rank, p.source) for p in written)
        )
        write_failures(failures, building / FAILURES_CSV)
        _replace_folder(building, out)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return written


def _replace_folder(new: Path, final: Path) -> None:
    """Put the complete folder ``new`` at ``final`` (a rename; an old ``final`` is removed)."""
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        os.replace(final, old)
    os.replace(new, final)
    shutil.rmtree(old, ignore_errors=True)


def read_picks(picks_dir: str | os.PathLike[str]) -> list[Pick]:
    """The picks of a picks folder, best first."""
    path = Path(picks_dir) / PICKS_CSV
    header, rows = read_csv_rows(path)
    if list(header) != list(PICK_COLUMNS):
        raise PicksError(f"{path} is not a picks file (columns {header}, not {list(PICK_COLUMNS)})")
    return [Pick(r["mof_id"], int(r["rank"]), r["source"]) for r in rows]


def read_pick_failures(picks_dir: str | os.PathLike[str]) -> list[Failure]:
    """The picked MOFs whose CIF could not be read (none when the folder has no such file)."""
    path = Path(picks_dir) / FAILURES_CSV
    return read_failures(path) if path.is_file() else []


def pick_ids(picks_dir: str | os.PathLike[str]) -> list[str]:
    """The ids of the picks with a CIF: one simulate job each."""
    return [p.mof_id for p in read_picks(picks_dir)]


def cif_path(picks_dir: str | os.PathLike[str], mof_id: str) -> Path:
    return Path(picks_dir) / f"{mof_id}.cif"


__all__: Sequence[str] = (
    "Pick",
    "PicksError",
    "cif_path",
    "pick_ids",
    "read_pick_failures",
    "read_picks",
    "select_picks",
    "write_picks",
)
