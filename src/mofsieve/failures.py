"""Failure records: one row per MOF that could not be used, ``mof_id,source,stage,reason``.

The featurizer writes one file per shard (``failures-KKKKK.csv``) and merges them into
``failures.csv``; ``mofsieve rank`` reads them, adds the MOFs that failed later, and writes the
run's ``failures.csv``; ``mofsieve report`` groups them by reason. This module is the one
reader and writer of that format.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass
from pathlib import Path

from mofsieve.atomic import write_csv_atomic
from mofsieve.record_files import read_record_file

FAILURE_COLUMNS = ("mof_id", "source", "stage", "reason")


class FailureFileError(ValueError):
    """A file that is not a failure record file (missing columns)."""


@dataclass(frozen=True)
class Failure:
    """One MOF that could not be used: at which stage and why, in words."""

    mof_id: str
    source: str
    stage: str
    reason: str


def write_failures(failures: Iterable[Failure], path: str | os.PathLike[str]) -> Path:
    """Write failure records to ``path`` atomically, in the order given; returns ``path``."""
    return write_csv_atomic(path, FAILURE_COLUMNS, (astuple(f) for f in failures))


def read_failures(path: str | os.PathLike[str]) -> list[Failure]:
    """The records of one failure file; ``FailureFileError`` naming it if columns are missing.

    Extra columns are ignored.
    """
    return read_record_file(path, FAILURE_COLUMNS, Failure, FailureFileError, "failure")


def merge_failures(paths: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str]) -> Path:
    """Concatenate failure files (e.g. one per shard, in shard order) into ``out``."""
    return write_failures((f for path in paths for f in read_failures(path)), out)
