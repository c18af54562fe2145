"""One MOF's GCMC as `mofsieve simulate` runs it: settings, charges, engine input, result.

:func:`simulate_mof` parses a CIF, takes its charges from the charge sources asked
(:mod:`mofsieve.charge_sources`), refuses a charged cell, builds the engine's input (P1 cell
in radians, unit cells from :func:`mofsieve.forcefield.unit_cells`) and runs
:func:`mofsieve.raspa3_engine.run_gcmc` at every pressure. It returns the MOF's
``result.json`` record or raises :class:`MofFailure` with the stage and the reason.
:mod:`mofsieve.simulate` runs it for many MOFs, each in a child process.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mofsieve import forcefield as ff
from mofsieve.charge_sources import (
    CHARGE_METHODS,
    DEFAULT_CHARGE_METHOD,
    ChargeSourceError,
    assign_charges,
)
from mofsieve.charges import DEFAULT_NET_CHARGE_TOLERANCE
from mofsieve.raspa3_engine import (
    MOVES,
    RASPALIB_VERSION,
    EngineError,
    EngineInputError,
    FrameworkInput,
    Protocol,
    lattice_to_cell,
    run_gcmc,
)

log = logging.getLogger(__name__)

RESULT_FORMAT = "mofsieve-simulate-result"
RESULT_FORMAT_VERSION = 1
RESULT_COLUMNS = (
    "mof_id", "pressure_bar", "temperature_K", "uptake_mol_per_kg", "uptake_error_mol_per_kg",
    "cycles", "init_cycles", "seed", "charge_method", "unit_cells", "wall_s", "net_charge_e",
)  # fmt: skip
ENGINE = f"RASPA3 in-process (raspalib {RASPALIB_VERSION})"


@dataclass(frozen=True)
class SimulateSettings:
    """Everything that decides a MOF's result (``result.json`` records it as ``protocol``)."""

    pressures_bar: tuple[float, ...]
    temperature_k: float = 298.0
    cycles: int = 2000
    init_cycles: int = 1000
    seed: int = 0
    cutoff: float = ff.DEFAULT_CUTOFF
    truncation: str = ff.DEFAULT_TRUNCATION
    charges: tuple[str, ...] = CHARGE_METHODS[DEFAULT_CHARGE_METHOD]  # sources, in order
    net_charge_tolerance: float = DEFAULT_NET_CHARGE_TOLERANCE
    charge_model: str | None = None  # the charge model's folder; None: the shipped one

    def protocol(self, pressure_bar: float) -> Protocol:
        return Protocol(
            temperature_k=self.temperature_k,
            pressure_bar=pressure_bar,
            cycles=self.cycles,
            init_cycles=self.init_cycles,
            seed=self.seed,
            cutoff=self.cutoff,
            truncation=self.truncation,
        )

    def as_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["pressures_bar"] = list(self.pressures_bar)
        record["charges"] = list(self.charges)
        if "model" not in self.charges:  # the folder of a model never asked decides nothing
            record["charge_model"] = None
        return record


@dataclass(frozen=True)
class Task:
    """One MOF to simulate: its id, where its CIF came from, and the CIF's bytes."""

    mof_id: str
    source: str
    data: bytes = field(repr=False)


class MofFailure(Exception):
    """A MOF that cannot be simulated: the stage and the reason, for ``failures.csv``."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(reason)
        self.stage = stage
        self.reason = reason


def prepare(task: Task, settings: SimulateSettings) -> tuple[FrameworkInput, dict[str, Any]]:
    """The engine's input for a MOF and what ``result.json`` records about it."""
    from mofsieve.structures import StructureError, parse_cif

    try:
        crystal = parse_cif(task.data)
    except StructureError as err:
        raise MofFailure("parse", err.reason) from None
    try:
        charges = assign_charges(crystal, settings.charges, settings.charge_model)
    except ChargeSourceError as err:
        hint = "" if "none" in settings.charges else "; --allow-no-charges simulates it neutral"
        raise MofFailure("charges", f"no usable partial charges ({err}){hint}") from None
    if abs(charges.net_charge) > settings.net_charge_tolerance:
        raise MofFailure(
            "charges",
            f"framework net charge {charges.net_charge:+.4f} e per cell ({charges.method}) is "
            f"beyond ±{settings.net_charge_tolerance:g} e; Ewald needs a neutral cell",
        )
    from ase.data import chemical_symbols

    try:
        lengths, angles = lattice_to_cell(crystal.lattice)
    except EngineInputError as err:
        raise MofFailure("engine input", str(err)) from None
    framework = FrameworkInput(
        name=task.mof_id,
        lengths=lengths,
        angles_rad=angles,
        elements=tuple(chemical_symbols[int(z)] for z in crystal.atomic_number),
        frac_coords=crystal.frac_coords,
        charges=charges.values,
        unit_cells=ff.unit_cells(crystal.lattice, settings.cutoff),
    )
    about = {
        "charge_method": charges.method,
        "charge_detail": charges.detail,
        "net_charge_e": charges.net_charge,
        "n_atoms": crystal.n_atoms,
        "unit_cells": list(framework.unit_cells),
    }
    return framework, about


def simulate_mof(task: Task, settings: SimulateSettings) -> dict[str, Any]:
    """Every pressure of one MOF → its ``result.json`` record; :class:`MofFailure` if not."""
    framework, about = prepare(task, settings)
    results = []
    for pressure in settings.pressures_bar:
        log.info("%s: GCMC at %g bar, %g K", task.mof_id, pressure, settings.temperature_k)
        try:
            r = run_gcmc(framework, settings.protocol(pressure))
        except (EngineInputError, EngineError) as err:
            raise MofFailure("engine input", str(err)) from None
        log.info(
            "%s: %g bar → %.4f ± %.4f mol/kg (%.1f s, %.4f s/cycle)",
            task.mof_id, pressure, r.uptake_mol_per_kg, r.uptake_error_mol_per_kg, r.wall_s,
            r.seconds_per_cycle,
        )  # fmt: skip
        results.append({"pressure_bar": pressure, **asdict(r)})
    return {
        "format": RESULT_FORMAT,
        "format_version": RESULT_FORMAT_VERSION,
        "mof_id": task.mof_id,
        "source": task.source,
        "engine": ENGINE,
        "force_field": {
            "framework": "UFF",
            "adsorbate": "TraPPE CO2 (rigid)",
            "mixing": ff.MIXING_RULE,
            "truncation": settings.truncation,
            "electrostatics": "Ewald (relative precision 1e-6)",
            "fugacity": "Peng-Robinson",
        },
        "moves": MOVES,
        "protocol": settings.as_record(),
        **about,
        "results": results,
    }


def read_result(path: Path) -> dict[str, Any] | None:
    """A ``result.json`` record, or None when the file is absent or not one."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("format") == RESULT_FORMAT else None
