"""`mofsieve simulate`: GCMC of CO2 in each MOF with RASPA3, in-process, one result per MOF.

INPUT is what ``mofsieve manifest`` takes (CIF files, folders, globs, tar archives), or a
folder written by ``mofsieve gcmc`` (its ``mofs.txt`` names the MOFs; each folder's P1 CIF
with charges is simulated). For every MOF, at every pressure asked, :mod:`mofsieve.raspa3_engine`
runs UFF + TraPPE CO2 GCMC (force field from :mod:`mofsieve.forcefield`) and

- ``OUT/<mof_id>/result.json`` is written once all its pressures are done, under a temporary
  name and renamed, so a killed run leaves none; a rerun skips MOFs whose ``result.json`` was
  made with the same protocol and redoes the rest;
- ``OUT/results.csv``: one row per MOF and pressure (:data:`RESULT_COLUMNS`), every finished
  MOF of the inputs, in input order;
- ``OUT/failures.csv``: each MOF that could not be simulated, with the stage and the reason
  (unreadable CIF, no charges, a charged cell, an input the engine must not get, an engine
  that died).

Each MOF runs in a child process (``--jobs`` of them at a time), so an engine that aborts
costs that MOF only. Charges come from the sources of :mod:`mofsieve.charge_sources`
(``--charges``, default ``cif_or_model``: the CIF's own, else the shipped charge model);
a MOF that gets no sane charges is refused with the reasons unless ``--allow-no-charges``.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import logging
import math
import multiprocessing as mp
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from mofsieve import forcefield as ff
from mofsieve.atomic import write_csv_atomic, write_text_atomic
from mofsieve.charge_sources import CHARGE_METHODS, add_charge_arguments, charge_model
from mofsieve.charges import DEFAULT_NET_CHARGE_TOLERANCE
from mofsieve.failures import Failure, write_failures
from mofsieve.manifest import InputError, build_manifest, iter_source_bytes, mof_id_of, split_source
from mofsieve.raspa3_engine import MOVES, EngineInputError, validate_protocol
from mofsieve.simulation import (
    ENGINE,
    RESULT_COLUMNS,
    MofFailure,
    SimulateSettings,
    Task,
    read_result,
    simulate_mof,
)

__all__ = ["RESULT_COLUMNS", "SimulateSettings", "Task", "collect_tasks", "run_simulations"]

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# inputs


def _gcmc_folder_sources(folder: Path) -> list[str]:
    """The P1 CIFs of a ``mofsieve gcmc`` folder, in ``mofs.txt`` order."""
    mof_ids = [line.strip() for line in (folder / "mofs.txt").read_text().splitlines()]
    return [str(folder / m / f"{m}.cif") for m in mof_ids if m]


def collect_tasks(inputs: Sequence[str]) -> list[Task]:
    """Tasks for every CIF the inputs name, in order; duplicate ids are an ``InputError``."""
    sources: list[str] = []
    plain: list[str] = []
    for item in inputs:
        if Path(item).is_dir() and (Path(item) / "mofs.txt").is_file():
            sources += _gcmc_folder_sources(Path(item))
        else:
            plain.append(item)
    rows = build_manifest(plain, shard_size=1) if plain else []
    ids = {r.source: r.mof_id for r in rows}
    seen: dict[str, str] = {}
    tasks = []
    for source, data in iter_source_bytes(sources + [r.source for r in rows]):
        mof_id = ids.get(source) or mof_id_of(split_source(source)[1])
        if mof_id in seen:
            raise InputError(f"duplicate mof_id {mof_id!r}: {seen[mof_id]} and {source}")
        seen[mof_id] = source
        if isinstance(data, OSError):
            raise InputError(f"cannot read {source}: {data}")
        tasks.append(Task(mof_id, source, data))
    if not tasks:
        raise InputError(f"no CIF files found in {list(inputs)}")
    return tasks


# ---------------------------------------------------------------------------------------------
# one MOF per child process


def _die_with_parent() -> None:
    """Linux: the child gets SIGKILL when the parent dies, so a killed run stops its GCMC."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def _child(conn: Connection, task: Task, settings: SimulateSettings) -> None:
    _die_with_parent()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        conn.send(("ok", simulate_mof(task, settings)))
    except MofFailure as err:
        conn.send(("failed", err.stage, err.reason))
    except Exception as err:  # anything else is still this MOF's failure, not the run's
        conn.send(("failed", "engine", f"{type(err).__name__}: {err}"))
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------
# many MOFs


def result_path(out_dir: Path, mof_id: str) -> Path:
    return out_dir / mof_id / "result.json"


def _finished(out_dir: Path, task: Task, settings: SimulateSettings) -> dict[str, Any] | None:
    """The MOF's ``result.json`` record if it was made by this engine, moves and protocol."""
    record = read_result(result_path(out_dir, task.mof_id))
    if record is None:
        return None
    made_by = (record.get("engine"), record.get("moves"), record.get("protocol"))
    if made_by != (ENGINE, MOVES, settings.as_record()):
        return None
    if record.get("charge_method") == "model" and record.get("charge_detail") != _model_name(
        settings.charge_model
    ):  # charged by a model that has since been retrained or replaced
        return None
    return record


def _model_name(model_dir: str | None) -> str | None:
    """The name (folder and weights hash) of the charge model now in ``model_dir``."""
    from mofsieve.charge_sources import ChargeSourceError

    try:
        return str(charge_model(model_dir).name)
    except ChargeSourceError:
        return None


def _run_isolated(
    tasks: Iterable[Task],
    settings: SimulateSettings,
    jobs: int,
    target: Callable[[Connection, Task, SimulateSettings], None] = _child,
) -> Iterable[tuple[Task, tuple[Any, ...]]]:
    """(task, message) as children running ``target`` finish; one that dies without a word
    (an engine abort, a signal) is that task's failure."""
    ctx = mp.get_context("spawn")
    queue = deque(tasks)
    running: dict[Connection, tuple[Any, Task]] = {}
    while queue or running:
        while queue and len(running) < jobs:
            task = queue.popleft()
            recv, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=target, args=(send, task, settings), daemon=True)
            proc.start()
            send.close()
            running[recv] = (proc, task)
        for recv in wait(list(running)):
            proc, task = running.pop(recv)  # type: ignore[index]
            try:
                message = recv.recv()  # type: ignore[union-attr]
            except EOFError:
                message = None
            proc.join()
            recv.close()  # type: ignore[union-attr]
            if message is None:
                code = proc.exitcode or 0
                what = f"signal {-code} ({signal.Signals(-code).name})" if code < 0 else code
                message = ("failed", "engine crash", f"the GCMC process died: {what}")
            yield task, message


def _run_inline(
    tasks: Iterable[Task], settings: SimulateSettings
) -> Iterable[tuple[Task, tuple[Any, ...]]]:
    for task in tasks:
        try:
            yield task, ("ok", simulate_mof(task, settings))
        except MofFailure as err:
            yield task, ("failed", err.stage, err.reason)


def run_simulations(
    tasks: Sequence[Task],
    settings: SimulateSettings,
    out_dir: Path,
    jobs: int = 1,
    isolate: bool = True,
) -> tuple[list[dict[str, Any]], list[Failure]]:
    """Simulate the tasks not finished yet; write results and failures; return both."""
    for pressure in settings.pressures_bar:
        validate_protocol(settings.protocol(pressure))
    out_dir.mkdir(parents=True, exist_ok=True)
    todo = [t for t in tasks if _finished(out_dir, t, settings) is None]
    if len(todo) < len(tasks):
        log.info(
            "%d of %d MOFs already simulated in %s", len(tasks) - len(todo), len(tasks), out_dir
        )
    failures: list[Failure] = []
    runs = _run_isolated(todo, settings, max(1, jobs)) if isolate else _run_inline(todo, settings)
    for task, message in runs:
        if message[0] == "ok":
            write_text_atomic(result_path(out_dir, task.mof_id), json.dumps(message[1], indent=2))
        else:
            _, stage, reason = message
            log.warning("%s: not simulated (%s): %s", task.mof_id, stage, reason)
            failures.append(Failure(task.mof_id, task.source, stage, reason))
    records = [r for t in tasks if (r := _finished(out_dir, t, settings)) is not None]
    write_results_csv(records, out_dir / "results.csv")
    write_failures(failures, out_dir / "failures.csv")
    log.info(
        "%d of %d MOFs simulated, %d failed → %s", len(records), len(tasks), len(failures), out_dir
    )
    return records, failures


def result_rows(record: dict[str, Any]) -> list[list[object]]:
    """The ``results.csv`` rows of one ``result.json`` record, one per pressure."""
    p = record["protocol"]
    return [
        [
            record["mof_id"],
            f"{r['pressure_bar']:g}",
            f"{p['temperature_k']:g}",
            f"{r['uptake_mol_per_kg']:.6f}",
            f"{r['uptake_error_mol_per_kg']:.6f}",
            p["cycles"],
            p["init_cycles"],
            p["seed"],
            record["charge_method"],
            "x".join(str(n) for n in record["unit_cells"]),
            f"{r['wall_s']:.2f}",
            f"{record['net_charge_e']:.6f}",
        ]  # fmt: skip
        for r in record["results"]
    ]


def write_results_csv(records: Iterable[dict[str, Any]], path: Path) -> Path:
    return write_csv_atomic(path, RESULT_COLUMNS, (row for r in records for row in result_rows(r)))


# ---------------------------------------------------------------------------------------------
# command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="CIF files, folders, globs, tar archives, or a folder written by `mofsieve gcmc`",
    )
    parser.add_argument("--out", required=True, type=Path, help="folder for the results")
    parser.add_argument("--pressure-bar", type=float, nargs="+", required=True, metavar="P")
    parser.add_argument("--temperature-k", type=float, default=298.0, metavar="T")
    parser.add_argument("--cycles", type=int, default=2000, help="production cycles")
    parser.add_argument("--init-cycles", type=int, default=1000, help="initialization cycles")
    parser.add_argument("--seed", type=int, default=0, help="random seed of every run")
    parser.add_argument("--jobs", type=int, default=1, help="MOFs simulated at once")
    add_charge_arguments(parser)
    parser.add_argument(
        "--allow-no-charges",
        action="store_true",
        help="simulate a MOF whose charges cannot be had with neutral atoms (charge_method none) "
        "instead of refusing it",
    )
    parser.add_argument(
        "--net-charge-tolerance",
        type=float,
        default=DEFAULT_NET_CHARGE_TOLERANCE,
        help="largest |net charge| of a unit cell, e (default %(default)s)",
    )
    parser.add_argument("--cutoff", type=float, default=ff.DEFAULT_CUTOFF, help="Å")
    parser.add_argument(
        "--truncation",
        choices=ff.TRUNCATIONS,
        default=ff.DEFAULT_TRUNCATION,
        help="Lennard-Jones: cut and shifted (default) or truncated with tail corrections",
    )


def settings_from_args(args: argparse.Namespace) -> SimulateSettings:
    charges = list(CHARGE_METHODS[args.charges])
    if args.allow_no_charges and "none" not in charges:
        charges.append("none")
    return SimulateSettings(
        pressures_bar=tuple(args.pressure_bar),
        temperature_k=args.temperature_k,
        cycles=args.cycles,
        init_cycles=args.init_cycles,
        seed=args.seed,
        cutoff=args.cutoff,
        truncation=args.truncation,
        charges=tuple(charges),
        net_charge_tolerance=args.net_charge_tolerance,
        charge_model=str(args.charge_model),
    )


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    if args.jobs < 1 or not math.isfinite(settings.net_charge_tolerance):
        log.error("--jobs must be ≥ 1 and --net-charge-tolerance finite")
        return 2
    try:
        for pressure in settings.pressures_bar:
            validate_protocol(settings.protocol(pressure))
        tasks = collect_tasks(args.inputs)
    except (InputError, EngineInputError) as err:
        log.error("%s", err)
        return 2
    run_simulations(tasks, settings, args.out, jobs=args.jobs)
    return 0
