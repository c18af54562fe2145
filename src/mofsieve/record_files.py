"""Reading the small per-MOF record CSVs (failures, warnings): one reader for their shape.

Each such file has fixed columns (extra ones are ignored) and one record per row; a file
without those columns is refused with an error naming it and what it lacks.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from typing import TypeVar

Record = TypeVar("Record")


def read_record_file(
    path: str | os.PathLike[str],
    columns: Sequence[str],
    make: Callable[..., Record],
    error: type[ValueError],
    what: str,
) -> list[Record]:
    """``make(*row[columns])`` for every row; ``error`` naming the file if columns are missing."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in columns if c not in (reader.fieldnames or ())]
        if missing:
            raise error(f"{path} is not a mofsieve {what} file (missing columns {missing})")
        return [make(*(row[c] for c in columns)) for row in reader]
