"""Warning records: one row per finding in a structure that was kept, ``mof_id,source,check,
detail``.

A failure (:mod:`mofsieve.failures`) is a CIF that could not be used; a warning is a CIF
that was used but is odd: a stray atom or molecule, an over-bonded carbon, partial occupancy
read as full (the check names are :data:`mofsieve.checks.CHECKS`). The featurizer writes
one file per shard (``warnings-KKKKK.csv``) beside its failures and merges them into
``warnings.csv``; ``mofsieve rank`` gathers them into the run's ``warnings.csv`` and the
``checks`` column of ``ranked.csv``. This module is the one reader and writer of that format, and the keeper of the check names.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass
from pathlib import Path

from mofsieve.atomic import write_csv_atomic
from mofsieve.record_files import read_record_file

WARNING_COLUMNS = ("mof_id", "source", "check", "detail")

# The ``check`` column's words. Defined here, beside the format, so that reading and ranking
# do not import the checks themselves (numpy, scipy, ase).
ISOLATED_ATOM = "isolated_atom"
ISOLATED_MOLECULE = "isolated_molecule"
COORDINATION = "coordination"
OCCUPANCY = "occupancy"
ENCODING = "encoding"
CHARGES = "charges"

# every check with what it means, in the order the report lists them
CHECKS: dict[str, str] = {
    ISOLATED_ATOM: "an atom bonded to nothing that is not a charge-balancing ion "
    "(a stray H, an oxygen left of a water)",
    ISOLATED_MOLECULE: "a finite molecule bonded to no framework that is not an ion "
    "(free solvent, an acid, a cut-off piece of ligand)",
    COORDINATION: "a carbon bonded to more than 4, or a hydrogen to more than 1, non-metal "
    "atoms (overlapping disorder, misplaced H)",
    OCCUPANCY: "sites with partial occupancy read as full atoms (ingest.partial_occupancy: keep)",
    ENCODING: "the file is not UTF-8 and was read as Latin-1",
    CHARGES: "no partial charges in the CIF and none from the charge model (featurize "
    "--charges cif_or_model): NaN charges in its graph and charged descriptors",
}
# what flag.skip_checks keeps out of the flagged set unless told otherwise
DEFAULT_SKIP_CHECKS = (ISOLATED_ATOM, COORDINATION)


class WarningFileError(ValueError):
    """A file that is not a warning record file (missing columns)."""


@dataclass(frozen=True)
class WarningRecord:
    """One odd finding in a structure that was kept: which check, and what it saw."""

    mof_id: str
    source: str
    check: str
    detail: str


def write_warnings(warnings: Iterable[WarningRecord], path: str | os.PathLike[str]) -> Path:
    """Write warning records to ``path`` atomically, in the order given; returns ``path``."""
    return write_csv_atomic(path, WARNING_COLUMNS, (astuple(w) for w in warnings))


def read_warnings(path: str | os.PathLike[str]) -> list[WarningRecord]:
    """The records of one warning file; ``WarningFileError`` naming it if columns are missing.

    Extra columns are ignored.
    """
    return read_record_file(path, WARNING_COLUMNS, WarningRecord, WarningFileError, "warning")


def merge_warnings(paths: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str]) -> Path:
    """Concatenate warning files (e.g. one per shard, in shard order) into ``out``."""
    return write_warnings((w for path in paths for w in read_warnings(path)), out)


def checks_by_mof(warnings: Iterable[WarningRecord]) -> dict[str, tuple[str, ...]]:
    """Each MOF's distinct check names, sorted: what ``ranked.csv``'s ``checks`` column says."""
    found: dict[str, set[str]] = {}
    for w in warnings:
        found.setdefault(w.mof_id, set()).add(w.check)
    return {mof_id: tuple(sorted(checks)) for mof_id, checks in found.items()}
