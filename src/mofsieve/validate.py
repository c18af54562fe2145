"""`mofsieve validate`: how well the screen's predictions hold up under GCMC of its picks.

Two steps, as the workflow runs them (``workflow/rules/simulate.smk``):

``mofsieve validate pick --flagged flagged.csv --top N --out DIR``
    the N best flagged MOFs and their CIFs (:mod:`mofsieve.picks`): one simulate job each.
``mofsieve validate gather --ranked ranked.csv --simulated DIR... --pressure-bar P``
    reads each ``mofsieve simulate`` output folder (``results.csv``, ``failures.csv``) and
    ``ranked.csv`` (prediction, uncertainty, rank, the flag threshold) and writes

    ``validation.csv``
        one row per MOF (the picks with ``--picks``, else every MOF simulated or failed),
        best predicted first: :data:`VALIDATION_COLUMNS`. ``simulated`` is the uptake at
        ``--pressure-bar``, or with ``--minus-pressure-bar`` the working capacity (uptake at
        the first − at the second, errors combined in quadrature, as rank combines the
        predictions); ``predicted_rank`` and ``simulated_rank`` rank the simulated MOFs
        among themselves (1 = largest); ``hit`` says whether the simulated value reaches the
        flag threshold. A MOF that was not simulated keeps its row, with ``status``
        ``failed`` (simulate's or the pick's failure: ``reason`` says the stage and why) or
        ``missing`` (no result at all), and empty simulated columns.
    ``validation.json``
        n, MAE, mean error (predicted − simulated), Spearman, hit rate (the share of the
        simulated MOFs whose simulated value is at or above the flag threshold, the lowest
        flagged prediction), the charge methods, the protocol, and every failure listed.

Both are written atomically. This module is the one reader and writer of both files.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mofsieve.atomic import write_csv_atomic, write_text_atomic
from mofsieve.failures import Failure, FailureFileError, read_failures
from mofsieve.manifest import InputError
from mofsieve.picks import (
    PicksError,
    read_csv_rows,
    read_pick_failures,
    read_picks,
    write_picks,
)

log = logging.getLogger(__name__)

FORMAT = "mofsieve-validation"
FORMAT_VERSION = 1
UNIT = "mol/kg"  # what mofsieve simulate reports
UNIT_SLUG = "mol_per_kg"  # as ranked.csv's column names spell it
VALIDATION_COLUMNS = (
    "mof_id", "rank", "predicted", "uncertainty", "simulated", "simulated_error",
    "predicted_rank", "simulated_rank", "hit", "charge_method", "status", "reason",
)  # fmt: skip
SIMULATED_ERROR = "RASPA3's 95 % confidence half-width over 5 blocks of the production cycles"
PREDICTED_UNCERTAINTY = "the uncertainty column of ranked.csv (the surrogate's σ)"
DECIMALS = 6


class ValidateError(ValueError):
    """Inputs that cannot be compared (a missing file, wrong columns, a MOF not ranked)."""


# ---------------------------------------------------------------------------------------------
# reading the inputs


@dataclass(frozen=True)
class Ranked:
    """The screen's view of one MOF (``ranked.csv``)."""

    mof_id: str
    rank: int
    predicted: float
    uncertainty: float
    flagged: bool


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    try:
        return read_csv_rows(path)
    except PicksError as err:
        raise ValidateError(str(err)) from None


def read_ranked(path: str | os.PathLike[str]) -> dict[str, Ranked]:
    """``ranked.csv`` by mof_id; its predictions must be in mol/kg, as simulate's uptakes."""
    header, rows = _read_csv(Path(path))
    predicted, uncertainty = f"prediction_{UNIT_SLUG}", f"uncertainty_{UNIT_SLUG}"
    missing = [c for c in ("rank", "mof_id", predicted, uncertainty, "flagged") if c not in header]
    if missing:
        others = [c for c in header if c.startswith("prediction_")]
        unit = f" (its predictions are {others[0]}, simulate gives {UNIT})" if others else ""
        raise ValidateError(f"{path} is not a ranked.csv in {UNIT}: missing {missing}{unit}")
    return {
        r["mof_id"]: Ranked(
            r["mof_id"],
            int(r["rank"]),
            float(r[predicted]),
            float(r[uncertainty]),
            r["flagged"] == "yes",
        )  # fmt: skip
        for r in rows
    }


def flag_threshold(ranked: dict[str, Ranked]) -> float | None:
    """The lowest flagged prediction (what a MOF had to reach to be flagged), or None."""
    flagged = [r.predicted for r in ranked.values() if r.flagged]
    return min(flagged) if flagged else None


@dataclass(frozen=True)
class SimulatedRow:
    """One row of a simulate ``results.csv``."""

    mof_id: str
    pressure_bar: float
    uptake: float
    error: float
    charge_method: str
    protocol: tuple[tuple[str, str], ...]  # temperature_K, cycles, init_cycles, seed


PROTOCOL_COLUMNS = ("temperature_K", "cycles", "init_cycles", "seed")


def read_simulated(
    folders: Sequence[str | os.PathLike[str]],
) -> tuple[dict[str, list[SimulatedRow]], dict[str, Failure]]:
    """Each folder's ``results.csv`` rows by MOF, and its ``failures.csv`` (absent: none);
    a folder may also be given by its ``results.csv``."""
    from mofsieve.simulation import RESULT_COLUMNS

    results: dict[str, list[SimulatedRow]] = {}
    failures: dict[str, Failure] = {}
    where: dict[str, Path] = {}
    for given in map(Path, folders):
        folder = given.parent if given.name == "results.csv" else given  # either is fine
        path = folder / "results.csv"
        if not path.is_file():
            raise ValidateError(f"{folder} holds no results.csv (not a mofsieve simulate output)")
        header, rows = _read_csv(path)
        missing = [c for c in RESULT_COLUMNS if c not in header]
        if missing:
            raise ValidateError(f"{path} is not a simulate results.csv (missing {missing})")
        for r in rows:
            mof_id = r["mof_id"]
            if where.setdefault(mof_id, folder) != folder:
                raise ValidateError(f"{mof_id} is simulated in both {where[mof_id]} and {folder}")
            results.setdefault(mof_id, []).append(
                SimulatedRow(
                    mof_id,
                    float(r["pressure_bar"]),
                    float(r["uptake_mol_per_kg"]),
                    float(r["uptake_error_mol_per_kg"]),
                    r["charge_method"],
                    tuple((c, r[c]) for c in PROTOCOL_COLUMNS),
                )
            )
        failed = folder / "failures.csv"
        if failed.is_file():
            try:
                for f in read_failures(failed):
                    failures.setdefault(f.mof_id, f)
            except FailureFileError as err:
                raise ValidateError(str(err)) from None
    return results, failures


# ---------------------------------------------------------------------------------------------
# comparing


@dataclass(frozen=True)
class Target:
    """What was ranked: the uptake at ``pressure_bar``, minus that at ``minus_pressure_bar``."""

    pressure_bar: float
    minus_pressure_bar: float | None = None

    def describe(self) -> str:
        if self.minus_pressure_bar is None:
            return f"uptake at {self.pressure_bar:g} bar"
        return f"working capacity {self.pressure_bar:g} − {self.minus_pressure_bar:g} bar"


def _at(rows: Sequence[SimulatedRow], pressure: float) -> SimulatedRow | None:
    return next((r for r in rows if math.isclose(r.pressure_bar, pressure, rel_tol=1e-9)), None)


def simulated_value(rows: Sequence[SimulatedRow], target: Target) -> tuple[float, float] | str:
    """``(value, error)`` of the target from one MOF's rows, or why there is none."""
    high = _at(rows, target.pressure_bar)
    if high is None:
        return f"no simulated uptake at {target.pressure_bar:g} bar"
    if target.minus_pressure_bar is None:
        return high.uptake, high.error
    low = _at(rows, target.minus_pressure_bar)
    if low is None:
        return f"no simulated uptake at {target.minus_pressure_bar:g} bar"
    return high.uptake - low.uptake, math.hypot(high.error, low.error)


@dataclass
class ValidationRow:
    mof_id: str
    rank: int
    predicted: float
    uncertainty: float
    simulated: float | None = None
    simulated_error: float | None = None
    predicted_rank: int | None = None
    simulated_rank: int | None = None
    hit: bool | None = None
    charge_method: str = ""
    status: str = "ok"
    reason: str = ""


def _ranks(values: Sequence[float]) -> list[int]:
    """1 = largest; ties share the order of their input (which is best-predicted first)."""
    order = sorted(range(len(values)), key=lambda i: -values[i])
    ranks = [0] * len(values)
    for position, i in enumerate(order, start=1):
        ranks[i] = position
    return ranks


def compare(
    ranked: dict[str, Ranked],
    mof_ids: Sequence[str],
    results: dict[str, list[SimulatedRow]],
    failures: dict[str, Failure],
    target: Target,
) -> list[ValidationRow]:
    """One row per MOF of ``mof_ids``, best predicted first."""
    absent = [m for m in mof_ids if m not in ranked]
    if absent:
        raise ValidateError(f"not in ranked.csv: {', '.join(absent[:5])}")
    threshold = flag_threshold(ranked)
    rows = []
    for mof_id in sorted(dict.fromkeys(mof_ids), key=lambda m: ranked[m].rank):
        r = ranked[mof_id]
        row = ValidationRow(mof_id, r.rank, r.predicted, r.uncertainty)
        simulated = simulated_value(results[mof_id], target) if mof_id in results else None
        if isinstance(simulated, tuple):
            row.simulated, row.simulated_error = simulated
            row.charge_method = results[mof_id][0].charge_method
            row.hit = threshold is not None and row.simulated >= threshold
        elif mof_id in failures:
            f = failures[mof_id]
            row.status, row.reason = "failed", f"{f.stage}: {f.reason}"
        else:
            row.status = "missing"
            row.reason = simulated or "no result and no failure in the simulate outputs"
        rows.append(row)
    done = [row for row in rows if row.status == "ok"]
    for row, p, s in zip(
        done,
        _ranks([row.predicted for row in done]),
        _ranks([row.simulated for row in done]),  # type: ignore[misc]
        strict=True,
    ):
        row.predicted_rank, row.simulated_rank = p, s
    return rows


def _scalar(text: str) -> int | float | str:
    """A results.csv protocol cell as the number it is (``298`` → 298, ``298.15`` → 298.15)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def metrics(
    rows: Sequence[ValidationRow],
    threshold: float | None,
    target: Target,
    protocols: Iterable[tuple[tuple[str, str], ...]] = (),
) -> dict[str, Any]:
    """``validation.json``'s content."""
    done = [r for r in rows if r.status == "ok"]
    errors = [r.predicted - r.simulated for r in done]  # type: ignore[operator]
    spearman = None
    if len(done) >= 2:
        from mofsieve.metrics import spearman as spearman_of

        spearman = _finite(spearman_of([r.predicted for r in done], [r.simulated for r in done]))
    hits = sum(1 for r in done if r.hit)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "quantity": target.describe(),
        "unit": UNIT,
        "pressure_bar": target.pressure_bar,
        "minus_pressure_bar": target.minus_pressure_bar,
        "n_picked": len(rows),
        "n_simulated": len(done),
        "n_failed": len(rows) - len(done),
        "mae": sum(map(abs, errors)) / len(errors) if errors else None,
        "mean_error": sum(errors) / len(errors) if errors else None,
        "spearman": spearman,
        "flag_threshold": threshold,
        "hits": hits,
        "hit_rate": hits / len(done) if done and threshold is not None else None,
        "charge_methods": dict(sorted(Counter(r.charge_method for r in done).items())),
        "protocols": [{k: _scalar(v) for k, v in p} for p in sorted(set(protocols))],
        "simulated_error": SIMULATED_ERROR,
        "predicted_uncertainty": PREDICTED_UNCERTAINTY,
        "failures": [
            {"mof_id": r.mof_id, "status": r.status, "reason": r.reason}
            for r in rows
            if r.status != "ok"
        ],
    }


# ---------------------------------------------------------------------------------------------
# writing and reading validation.csv / validation.json


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{DECIMALS}f}"
    return value


def write_validation(
    rows: Sequence[ValidationRow], summary: dict[str, Any], out_csv: Path, out_json: Path
) -> None:
    write_csv_atomic(
        out_csv,
        VALIDATION_COLUMNS,
        ([_cell(getattr(r, c)) for c in VALIDATION_COLUMNS] for r in rows),
    )
    write_text_atomic(out_json, json.dumps(summary, indent=2, allow_nan=False) + "\n")


def read_validation(
    csv_path: str | os.PathLike[str], json_path: str | os.PathLike[str]
) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """The rows of ``validation.csv`` and the content of ``validation.json``, checked."""
    header, rows = _read_csv(Path(csv_path))
    if header != list(VALIDATION_COLUMNS):
        raise ValidateError(f"{csv_path} is not a validation.csv (columns {header})")
    try:
        summary = json.loads(Path(json_path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValidateError(f"cannot read {json_path} as JSON: {err}") from None
    if not isinstance(summary, dict) or summary.get("format") != FORMAT:
        raise ValidateError(f"{json_path} is not a {FORMAT} file")
    if summary.get("format_version") != FORMAT_VERSION:
        raise ValidateError(
            f"{json_path} has format version {summary.get('format_version')!r}; this mofsieve "
            f"reads {FORMAT_VERSION}: run mofsieve validate gather again"
        )
    return rows, summary


# ---------------------------------------------------------------------------------------------
# the steps


def gather(
    ranked_csv: Path,
    simulated: Sequence[Path],
    target: Target,
    out_csv: Path,
    out_json: Path,
    picks_dir: Path | None = None,
) -> dict[str, Any]:
    """Compare; write ``validation.csv`` and ``validation.json``; return the summary."""
    ranked = read_ranked(ranked_csv)
    results, failures = read_simulated(simulated)
    if picks_dir is not None:
        unreadable = read_pick_failures(picks_dir)  # picked, but the CIF could not be read
        for f in unreadable:
            failures.setdefault(f.mof_id, f)
        mof_ids = [p.mof_id for p in read_picks(picks_dir)] + [f.mof_id for f in unreadable]
        extra = sorted(set(results) - set(mof_ids))
        if extra:
            log.info("not among the picks, left out: %s", ", ".join(extra[:10]))
    else:
        mof_ids = list(results) + [m for m in failures if m not in results]
    rows = compare(ranked, mof_ids, results, failures, target)
    protocols = (results[r.mof_id][0].protocol for r in rows if r.status == "ok")
    summary = metrics(rows, flag_threshold(ranked), target, protocols)
    write_validation(rows, summary, out_csv, out_json)
    for r in rows:
        if r.status != "ok":
            log.warning("%s: not simulated (%s): %s", r.mof_id, r.status, r.reason)
    log.info(
        "%d of %d picked MOFs simulated; MAE %s, Spearman %s, hit rate %s → %s",
        summary["n_simulated"], summary["n_picked"], _show(summary["mae"]),
        _show(summary["spearman"]), _show(summary["hit_rate"]), out_csv,
    )  # fmt: skip
    return summary


def _show(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


# ---------------------------------------------------------------------------------------------
# command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    steps = parser.add_subparsers(dest="step", required=True, metavar="STEP")
    pick = steps.add_parser(
        "pick", help="the best N flagged MOFs and their CIFs, one folder (simulate's input)"
    )
    pick.add_argument("--flagged", required=True, type=Path, help="the run's flagged.csv")
    pick.add_argument("--top", required=True, type=int, help="how many to pick (N ≥ 0)")
    pick.add_argument("--out", required=True, type=Path, help="the picks folder to write")

    gather_ = steps.add_parser(
        "gather", help="compare simulate's results with ranked.csv: validation.csv and .json"
    )
    gather_.add_argument("--ranked", required=True, type=Path, help="the run's ranked.csv")
    gather_.add_argument(
        "--simulated",
        nargs="*",
        type=Path,
        default=[],
        help="mofsieve simulate output folders (results.csv, failures.csv), or their results.csv; "
        "none when every pick failed before simulate",
    )
    gather_.add_argument(
        "--picks", type=Path, help="the picks folder: its MOFs are compared, none left out"
    )
    gather_.add_argument("--pressure-bar", required=True, type=float, help="what was ranked")
    gather_.add_argument(
        "--minus-pressure-bar",
        type=float,
        help="working capacity: subtract the uptake at this pressure",
    )
    gather_.add_argument("--out-dir", type=Path, default=Path("."), help="where outputs go")
    gather_.add_argument("--out-csv", type=Path, help="default OUT_DIR/validation.csv")
    gather_.add_argument("--out-json", type=Path, help="default OUT_DIR/validation.json")


def run(args: argparse.Namespace) -> int:
    try:
        if args.step == "pick":
            picks = write_picks(args.flagged, args.top, args.out)
            log.info("%d MOFs picked for GCMC → %s", len(picks), args.out)
            return 0
        if not args.simulated and args.picks is None:
            raise ValidateError("give --simulated folders, --picks, or both")
        gather(
            ranked_csv=args.ranked,
            simulated=args.simulated,
            target=Target(args.pressure_bar, args.minus_pressure_bar),
            out_csv=args.out_csv or args.out_dir / "validation.csv",
            out_json=args.out_json or args.out_dir / "validation.json",
            picks_dir=args.picks,
        )
    except (ValidateError, PicksError, InputError, FailureFileError) as err:
        log.error("%s", err)
        return 1
    return 0
