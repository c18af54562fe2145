"""Gather per-shard predictions, rank every MOF and flag the best ones.

Inputs are the run's manifest (which says how many shards there are and where each CIF came
from), the per-shard prediction CSVs (``mof_id,prediction,uncertainty,n_atoms``) of one model,
optionally those of a second model to subtract (working capacity = uptake at the adsorption
pressure − uptake at the desorption pressure, uncertainties combined in quadrature), the
per-shard featurization failures, warnings and framework keys (:mod:`mofsieve.duplicates`).

Outputs (all written atomically):

``ranked.csv``
    ``rank,mof_id,prediction_<unit>,uncertainty_<unit>,flagged,checks,duplicate_of,n_atoms,
    source`` for every MOF that has a prediction, best (largest) first. Values are rounded to
    the written precision *before* sorting, so MOFs that look tied in the file are tied, and
    ties are broken by ``mof_id``: the order never depends on shard or thread scheduling.
    ``checks`` names the structure checks a MOF's CIF raised (``;``-separated, empty when
    clean). ``duplicate_of`` names the best-ranked MOF of the same framework (empty for that
    one, and for MOFs without a framework key). The top fraction (or count) of distinct
    frameworks is flagged, one MOF each: a framework's best-ranked MOF, or, when that one has
    a check of ``--skip-checks``, its next-best copy without one. GCMC time goes to as many
    structures as asked for, none of them broken, none twice (``--flag-duplicates``: every
    MOF by itself).
``flagged.csv``
    the flagged rows plus ``charge_status`` (``ok``, ``missing``, ``net_charge_nonzero``,
    ``unreadable``) and ``net_charge_e`` from the CIF itself, which the GCMC hand-off needs.
``failures.csv``
    ``mof_id,source,stage,reason`` for every MOF of the manifest that has no usable prediction:
    the featurizer's failures, non-finite predictions, and MOFs missing from every output.
``warnings.csv``
    ``mof_id,source,check,detail``: the featurizer's per-shard warnings gathered, sorted.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mofsieve.atomic import write_csv_atomic
from mofsieve.duplicates import (
    FrameworkFileError,
    FrameworkKey,
    duplicate_of,
    read_framework_keys,
)
from mofsieve.failures import Failure, FailureFileError, read_failures, write_failures
from mofsieve.manifest import InputError, read_manifest, shard_count
from mofsieve.warning_records import (
    CHECKS,
    DEFAULT_SKIP_CHECKS,
    WarningFileError,
    checks_by_mof,
    read_warnings,
    write_warnings,
)

log = logging.getLogger(__name__)

PRECISION = 6  # decimals written for predictions and uncertainties


class RankError(ValueError):
    """Inputs that cannot be ranked (missing shard files, bad columns, contradictory options)."""


@dataclass(frozen=True)
class Prediction:
    mof_id: str
    value: float
    uncertainty: float
    n_atoms: int


@dataclass(frozen=True)
class RankedRow:
    rank: int
    mof_id: str
    prediction: float
    uncertainty: float
    flagged: bool
    n_atoms: int
    source: str
    checks: tuple[str, ...] = ()
    duplicate_of: str = ""  # the best-ranked MOF of the same framework ("" for that one)


def unit_slug(unit: str) -> str:
    """``mol/kg`` → ``mol_per_kg``: a unit that fits in a CSV column name."""
    slug = unit.strip().replace("/", "_per_").replace(" ", "_").replace(".", "_")
    slug = re.sub(r"[^A-Za-z0-9_]+", "", slug)
    return re.sub(r"_+", "_", slug).strip("_") or "unitless"


def value_columns(unit: str) -> tuple[str, str]:
    slug = unit_slug(unit)
    return f"prediction_{slug}", f"uncertainty_{slug}"


# ---------------------------------------------------------------------------------------------
# reading


def shard_files(
    inputs: Sequence[str | os.PathLike[str]],
    n_shards: int,
    pattern: str,
    missing_ok: bool = False,
) -> list[Path]:
    """Files named directly, and for the folders named exactly ``pattern.format(k)`` for every
    shard k, in shard order, each from the first folder that holds it: one folder may hold
    every shard, or several folders some each (one per workflow job).

    Folders are never globbed: a stale file from an earlier run with another shard size must
    not leak into this one, and a shard that no folder holds is an error, not a silent gap
    (``missing_ok``: left out, for files that older runs did not write).
    """
    files: list[Path] = []
    folders: list[Path] = []
    at = None  # where the folders' files go among the files named directly
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            at = len(files) if at is None else at
            folders.append(path)
        elif path.is_file():
            files.append(path)
        else:
            raise RankError(f"no such file or folder: {path}")
    if not folders:
        return files
    holder: dict[str, Path] = {}
    for folder in reversed(folders):  # the first folder holding a name wins
        holder.update(dict.fromkeys(os.listdir(folder), folder))
    expected = [pattern.format(k) for k in range(n_shards)]
    absent = [name for name in expected if name not in holder]
    if missing_ok:
        expected = [name for name in expected if name in holder]
    elif absent:
        where = (
            str(folders[0]) if len(folders) == 1 else f"{len(folders)} folders ({folders[0]}, …)"
        )
        raise RankError(
            f"{len(absent)} of {n_shards} shard files missing in {where}: "
            f"{', '.join(absent[:5])}{' …' if len(absent) > 5 else ''}"
        )
    files[at:at] = [holder[name] / name for name in expected]
    return files


def read_predictions(files: Iterable[Path]) -> dict[str, Prediction]:
    out: dict[str, Prediction] = {}
    for path in files:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            missing = {"mof_id", "prediction", "uncertainty", "n_atoms"} - set(
                reader.fieldnames or ()
            )
            if missing:
                raise RankError(f"prediction file {path} lacks columns {sorted(missing)}")
            for row in reader:
                mof_id = row["mof_id"]
                if mof_id in out:
                    raise RankError(f"{mof_id} is predicted twice (again in {path})")
                out[mof_id] = Prediction(
                    mof_id=mof_id,
                    value=_float(row["prediction"]),
                    uncertainty=_float(row["uncertainty"]),
                    n_atoms=int(row["n_atoms"]),
                )
    return out


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def model_unit(model_dir: str | os.PathLike[str]) -> str | None:
    """The target unit recorded in ``MODEL_DIR/model.json``, wherever the model put it."""
    path = Path(model_dir) / "model.json"
    if not path.is_file():
        return None
    meta = json.loads(path.read_text())
    for holder in (meta, meta.get("target") if isinstance(meta.get("target"), dict) else {}):
        for key in ("unit", "target_unit"):
            if isinstance(holder.get(key), str):
                return holder[key]
    return None


# ---------------------------------------------------------------------------------------------
# ranking


def combine(
    primary: dict[str, Prediction], minus: dict[str, Prediction] | None
) -> dict[str, Prediction]:
    """``primary − minus`` per MOF (uncertainties in quadrature); MOFs in only one are dropped."""
    if minus is None:
        return primary
    out: dict[str, Prediction] = {}
    for mof_id, high in primary.items():
        low = minus.get(mof_id)
        if low is None:
            continue
        out[mof_id] = Prediction(
            mof_id=mof_id,
            value=high.value - low.value,
            uncertainty=math.hypot(high.uncertainty, low.uncertainty),
            n_atoms=high.n_atoms,
        )
    return out


def n_to_flag(n_ranked: int, top_fraction: float | None, top_count: int | None) -> int:
    """How many of ``n_ranked`` to flag: ``ceil(fraction × n)`` or the count, capped at n."""
    if (top_fraction is None) == (top_count is None):
        raise RankError("give exactly one of top_fraction and top_count")
    if top_fraction is not None:
        if not 0.0 < top_fraction <= 1.0:
            raise RankError(f"top_fraction must be in (0, 1], got {top_fraction}")
        # round() first so that 0.05 × 200 = 10.000000000000002 flags 10, not 11
        return min(n_ranked, math.ceil(round(top_fraction * n_ranked, 9)))
    assert top_count is not None
    if top_count < 1:
        raise RankError(f"top_count must be at least 1, got {top_count}")
    return min(n_ranked, top_count)


def skip_checks_argument(text: str) -> tuple[str, ...]:
    """``isolated_atom,coordination`` → the check names; an unknown name is a RankError."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise RankError(f"unknown check(s) {', '.join(unknown)} (known: {', '.join(CHECKS)})")
    return names


def rank_predictions(
    predictions: dict[str, Prediction],
    sources: dict[str, str],
    top_fraction: float | None = None,
    top_count: int | None = None,
    checks: dict[str, tuple[str, ...]] | None = None,
    skip_checks: Sequence[str] = (),
    frameworks: dict[str, FrameworkKey] | None = None,
    flag_duplicates: bool = False,
) -> tuple[list[RankedRow], list[Failure]]:
    """Rank finite predictions best first; return the rows and failures for non-finite ones.

    ``checks`` holds each MOF's structure checks, ``frameworks`` their framework keys. The
    best frameworks are flagged, as many as ``top_fraction`` of the distinct frameworks
    ranked or ``top_count``, one MOF each (every MOF by itself with ``flag_duplicates``),
    passing over any with a check in ``skip_checks``.
    """
    checks = checks or {}
    failures: list[Failure] = []
    usable: list[tuple[float, float, Prediction]] = []
    for pred in predictions.values():
        if not math.isfinite(pred.value):
            failures.append(
                Failure(
                    pred.mof_id,
                    sources.get(pred.mof_id, ""),
                    "predict",
                    f"non-finite prediction ({pred.value})",
                )
            )
            continue
        usable.append((round(pred.value, PRECISION), round(pred.uncertainty, PRECISION), pred))
    usable.sort(key=lambda item: (-item[0], item[2].mof_id))
    leader = duplicate_of((pred.mof_id for _, _, pred in usable), frameworks or {})
    n_frameworks = len(usable) - (0 if flag_duplicates else len(leader))
    n_flag = n_to_flag(n_frameworks, top_fraction, top_count) if usable else 0
    skip = set(skip_checks)
    flagged_frameworks: set[str] = set()  # by their best-ranked MOF
    rows = []
    for i, (value, uncertainty, pred) in enumerate(usable):
        found = checks.get(pred.mof_id, ())
        framework = leader.get(pred.mof_id, pred.mof_id)
        flagged = (n_flag > 0 and not skip.intersection(found)
                   and (flag_duplicates or framework not in flagged_frameworks))  # fmt: skip
        if flagged:
            flagged_frameworks.add(framework)
        n_flag -= flagged
        rows.append(
            RankedRow(
                rank=i + 1,
                mof_id=pred.mof_id,
                prediction=value,
                uncertainty=uncertainty,
                flagged=flagged,
                n_atoms=pred.n_atoms,
                source=sources.get(pred.mof_id, ""),
                checks=found,
                duplicate_of=leader.get(pred.mof_id, ""),
            )
        )
    return rows, failures


# ---------------------------------------------------------------------------------------------
# writing


def _fmt(value: float) -> str:
    return f"{value:.{PRECISION}f}"


def ranked_header(unit: str) -> list[str]:
    pred_col, unc_col = value_columns(unit)
    return ["rank", "mof_id", pred_col, unc_col, "flagged", "checks", "duplicate_of", "n_atoms",
            "source"]  # fmt: skip


def _ranked_cells(row: RankedRow) -> list[object]:
    return [
        row.rank,
        row.mof_id,
        _fmt(row.prediction),
        _fmt(row.uncertainty),
        "yes" if row.flagged else "no",
        ";".join(row.checks),
        row.duplicate_of,
        row.n_atoms,
        row.source,
    ]


def run_rank(
    manifest: Path,
    predictions: Sequence[Path],
    failures: Sequence[Path],
    out_ranked: Path,
    out_flagged: Path,
    out_failures: Path,
    unit: str,
    top_fraction: float | None = None,
    top_count: int | None = None,
    minus_predictions: Sequence[Path] = (),
    check_charges: bool = True,
    warnings: Sequence[Path] = (),
    out_warnings: Path | None = None,
    skip_checks: Sequence[str] = DEFAULT_SKIP_CHECKS,
    frameworks: Sequence[Path] = (),
    flag_duplicates: bool = False,
) -> list[RankedRow]:
    """Rank, flag and gather; ``warnings`` are the featurizer's warning files (or folders of
    ``warnings-KKKKK.csv``), whose checks fill ``ranked.csv``'s ``checks`` column;
    ``frameworks`` its framework key files (or folders of ``frameworks-KKKKK.csv``; graphs
    featurized before there were any have none, and their MOFs are never grouped)."""
    sources = {row.mof_id: row.source for row in read_manifest(manifest)}
    n_shards = shard_count(manifest)
    primary = read_predictions(shard_files(predictions, n_shards, "shard-{:05d}.csv"))
    minus = (
        read_predictions(shard_files(minus_predictions, n_shards, "shard-{:05d}.csv"))
        if minus_predictions
        else None
    )
    combined = combine(primary, minus)
    warning_files = shard_files(warnings, n_shards, "warnings-{:05d}.csv")
    warning_rows = sorted((w for path in warning_files for w in read_warnings(path)),
                          key=lambda w: (w.mof_id, w.check, w.detail))  # fmt: skip
    checks = checks_by_mof(warning_rows)
    keys = {
        key.mof_id: key
        for path in shard_files(frameworks, n_shards, "frameworks-{:05d}.csv", missing_ok=True)
        for key in read_framework_keys(path)
    }
    rows, bad = rank_predictions(combined, sources, top_fraction, top_count, checks, skip_checks,
                                 keys, flag_duplicates)  # fmt: skip

    failure_rows = [
        f
        for path in shard_files(failures, n_shards, "failures-{:05d}.csv")
        for f in read_failures(path)
    ]
    failure_rows.extend(bad)
    accounted = {r.mof_id for r in rows} | {f.mof_id for f in failure_rows}
    for mof_id, source in sources.items():
        if mof_id not in accounted:
            if mof_id in primary and minus is not None:
                reason = "predicted by one model only"
            else:
                reason = "no prediction and no featurization failure recorded"
            failure_rows.append(Failure(mof_id, source, "predict", reason))
    failure_rows.sort(key=lambda f: (f.mof_id, f.stage, f.reason))

    header = ranked_header(unit)
    write_csv_atomic(out_ranked, header, (_ranked_cells(r) for r in rows))
    flagged = [r for r in rows if r.flagged]
    charge_info: dict[str, tuple[str, float]] = {}
    if check_charges and flagged:
        from mofsieve.charges import charge_summaries

        charge_info = charge_summaries({r.mof_id: r.source for r in flagged})
    write_csv_atomic(
        out_flagged,
        [*header, "charge_status", "net_charge_e"],
        (
            [
                *_ranked_cells(r),
                charge_info.get(r.mof_id, ("unchecked", math.nan))[0],
                _fmt(charge_info.get(r.mof_id, ("unchecked", math.nan))[1]),
            ]
            for r in flagged
        ),
    )
    write_failures(failure_rows, out_failures)
    if out_warnings is not None:
        write_warnings(warning_rows, out_warnings)
    above = [r for r in rows[: flagged[-1].rank if flagged else 0] if not r.flagged]
    passed = sum(1 for r in above if set(skip_checks).intersection(r.checks))
    skipped = ",".join(skip_checks) or "none"
    log.info(f"ranked {len(rows)} MOFs, flagged {len(flagged)} ({passed} passed over for checks "
             f"{skipped}, {len(above) - passed} as duplicates), {len(failure_rows)} failures, "
             f"{len(checks)} MOFs with warnings (of {len(sources)} in the manifest)")  # fmt: skip
    _log_duplicates(rows, keys)
    return rows


def _log_duplicates(rows: Sequence[RankedRow], keys: dict[str, FrameworkKey]) -> None:
    n_duplicates = sum(1 for r in rows if r.duplicate_of)
    n_groups = len({r.duplicate_of for r in rows if r.duplicate_of})
    n_keyless = sum(1 for r in rows if r.mof_id not in keys)
    log.info(f"{n_duplicates} MOFs duplicate {n_groups} better-ranked ones (same framework: "
             "mofsieve.duplicates)")  # fmt: skip
    if rows and n_keyless == len(rows):
        log.warning("no framework keys (give --frameworks the graph folders; graphs featurized "
                    "before mofsieve wrote frameworks-KKKKK.csv have none): duplicates are not "
                    "grouped, duplicate_of is empty")  # fmt: skip
    elif n_keyless:
        log.warning(f"{n_keyless} of {len(rows)} ranked MOFs have no framework key "
                    "(frameworks-KKKKK.csv missing): they are never grouped")  # fmt: skip


# ---------------------------------------------------------------------------------------------
# command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", required=True, type=Path, help="the run's manifest CSV")
    parser.add_argument(
        "--predictions",
        required=True,
        nargs="+",
        type=Path,
        help="prediction CSVs, or folders holding shard-KKKKK.csv (each manifest shard in one)",
    )
    parser.add_argument(
        "--minus-predictions",
        nargs="+",
        type=Path,
        default=[],
        help="predictions to subtract (working capacity: give the desorption-pressure model's)",
    )
    parser.add_argument(
        "--failures",
        nargs="+",
        type=Path,
        default=[],
        help="featurizer failure CSVs, or folders holding failures-KKKKK.csv (each shard in one)",
    )
    parser.add_argument(
        "--warnings",
        nargs="+",
        type=Path,
        default=[],
        help="featurizer warning CSVs, or folders holding warnings-KKKKK.csv (each shard in one) "
        "(their checks fill ranked.csv's checks column)",
    )
    parser.add_argument(
        "--frameworks",
        nargs="+",
        type=Path,
        default=[],
        help="featurizer framework key CSVs, or folders holding frameworks-KKKKK.csv (MOFs that "
        "are the same framework are flagged once; shards without one are not grouped)",
    )
    parser.add_argument(
        "--flag-duplicates",
        action="store_true",
        help="flag every MOF by its own rank, duplicates too (duplicate_of is still filled)",
    )
    parser.add_argument(
        "--skip-checks",
        default=",".join(DEFAULT_SKIP_CHECKS),
        help="comma-separated checks whose MOFs are never flagged (default %(default)s; '' for "
        f"none; checks: {', '.join(CHECKS)})",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--top-fraction", type=float, help="flag this fraction, e.g. 0.05")
    which.add_argument("--top-count", type=int, help="flag this many")
    parser.add_argument("--unit", help="unit of the predictions (default: from --model)")
    parser.add_argument("--model", type=Path, help="model directory whose model.json has the unit")
    parser.add_argument("--out-dir", type=Path, default=Path("."), help="where outputs go")
    parser.add_argument("--ranked", type=Path, help="default OUT_DIR/ranked.csv")
    parser.add_argument("--flagged", type=Path, help="default OUT_DIR/flagged.csv")
    parser.add_argument("--failures-out", type=Path, help="default OUT_DIR/failures.csv")
    parser.add_argument("--warnings-out", type=Path, help="default OUT_DIR/warnings.csv")
    parser.add_argument(
        "--no-charge-check",
        action="store_true",
        help="do not read the flagged CIFs to check their partial charges",
    )


def run(args: argparse.Namespace) -> int:
    unit = args.unit or (model_unit(args.model) if args.model else None)
    if not unit:
        log.error("no unit: give --unit, or --model with a model.json that records one")
        return 2
    try:
        run_rank(
            skip_checks=skip_checks_argument(args.skip_checks),
            frameworks=args.frameworks,
            flag_duplicates=args.flag_duplicates,
            warnings=args.warnings,
            out_warnings=args.warnings_out or args.out_dir / "warnings.csv",
            manifest=args.manifest,
            predictions=args.predictions,
            minus_predictions=args.minus_predictions,
            failures=args.failures,
            out_ranked=args.ranked or args.out_dir / "ranked.csv",
            out_flagged=args.flagged or args.out_dir / "flagged.csv",
            out_failures=args.failures_out or args.out_dir / "failures.csv",
            unit=unit,
            top_fraction=args.top_fraction,
            top_count=args.top_count,
            check_charges=not args.no_charge_check,
        )
    except (RankError, InputError, FailureFileError, WarningFileError, FrameworkFileError) as err:
        log.error("%s", err)
        return 1
    return 0
