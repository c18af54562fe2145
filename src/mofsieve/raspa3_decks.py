"""RASPA3 JSON input for one MOF: ``simulation.json``, ``force_field.json`` and ``CO2.json``.

The files follow the format of the examples shipped with RASPA3 3.1.0 (the release that the
``raspalib`` pinned by mofsieve is built from; e.g. ``examples/basic/11_mc_adsorption_of_co2_in_cu_btc``),
and use only keys that its input readers accept (``InputReader::generalOptions``,
``systemOptions``, ``componentOptions``; ``ForceField::options``). Later RASPA3 sources
renamed ``NumberOfCycles`` to ``NumberOfProductionCycles`` and refuse the old name, so these
decks are for RASPA3 3.1.x.

How RASPA3 reads them, run from the MOF's folder (``raspa3`` with no arguments):

- ``simulation.json``: one framework system per pressure (systems in one run are independent
  unless a move couples them); ``Name`` is the MOF id, so the framework is read from
  ``<mof_id>.cif`` beside it. ``UseChargesFrom: CIF_File`` takes each atom's
  ``_atom_site_charge``: ``mofsieve gcmc`` writes every P1 CIF with the charges it assigned
  (:mod:`mofsieve.charge_sources`; zeros only when charge method ``none`` was asked).
- ``force_field.json``: one pseudo atom per framework element, named by its symbol. RASPA3
  matches an ``_atom_site_label`` such as ``Zn12`` to a pseudo atom by its name, then by the
  name with digits removed, so the P1 CIF's ``<Element><n>`` labels map to their element.
- ``CO2.json``: the rigid TraPPE molecule with the critical constants for Peng–Robinson.

All parameters come from :mod:`mofsieve.forcefield`, as for the RASPA2 decks and
``mofsieve simulate``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from mofsieve import forcefield as ff
from mofsieve.atomic import write_text_atomic

RASPA3_VERSION = "3.1.0"  # the release whose input readers these decks were checked against
# the keys written below, each accepted by RASPA3 3.1.0's readers (see the module docstring)
SIMULATION_KEYS = frozenset(
    {"SimulationType", "NumberOfCycles", "NumberOfInitializationCycles", "PrintEvery",
     "RandomSeed", "Systems", "Components"}
)  # fmt: skip
SYSTEM_KEYS = frozenset(
    {"Type", "Name", "NumberOfUnitCells", "ChargeMethod", "UseChargesFrom", "CutOffVDW",
     "CutOffCoulomb", "ExternalTemperature", "ExternalPressure", "HeliumVoidFraction"}
)  # fmt: skip
COMPONENT_KEYS = frozenset(
    {"Name", "TranslationProbability", "RotationProbability", "ReinsertionProbability",
     "SwapProbability", "CreateNumberOfMolecules"}
)  # fmt: skip
FORCE_FIELD_KEYS = frozenset(
    {"MixingRule", "TruncationMethod", "TailCorrections", "CutOffVDW", "CutOffCoulomb",
     "ChargeMethod", "PseudoAtoms", "SelfInteractions"}
)  # fmt: skip


def force_field_json(
    elements: Iterable[str],
    cutoff: float = ff.DEFAULT_CUTOFF,
    truncation: str = ff.DEFAULT_TRUNCATION,
) -> dict[str, Any]:
    """``force_field.json``: UFF framework elements + TraPPE CO2, Lorentz–Berthelot."""
    ff.check_truncation(truncation)
    atoms = ff.framework_pseudo_atoms(elements) + ff.co2_pseudo_atoms()
    return {
        "MixingRule": ff.MIXING_RULE,
        "TruncationMethod": truncation,
        "TailCorrections": truncation == "truncated",
        "CutOffVDW": float(cutoff),
        "CutOffCoulomb": float(cutoff),
        "ChargeMethod": "Ewald",
        "PseudoAtoms": [
            {
                "name": a.name,
                "framework": a.framework,
                "print_to_output": True,
                "element": a.element,
                "print_as": a.element,
                "mass": a.mass,
                "charge": a.charge,
                "source": a.source,
            }
            for a in atoms
        ],
        "SelfInteractions": [
            {
                "name": a.name,
                "type": "lennard-jones",
                "parameters": [round(a.epsilon_k, 6), round(a.sigma, 6)],
                "source": a.source,
            }
            for a in atoms
        ],
    }


def co2_json() -> dict[str, Any]:
    """``CO2.json``: rigid linear TraPPE CO2 and its critical constants."""
    tc, pc, omega = ff.CO2_CRITICAL
    return {
        "CriticalTemperature": tc,
        "CriticalPressure": pc,
        "AcentricFactor": omega,
        "Type": "rigid",
        "pseudoAtoms": [[name, [0.0, 0.0, z]] for name, z in ff.CO2_ATOMS],
    }


def simulation_json(
    mof_id: str,
    cells: Sequence[int],
    temperature_k: float,
    pressures_bar: Sequence[float],
    cycles: int,
    init_cycles: int,
    cutoff: float = ff.DEFAULT_CUTOFF,
    print_every: int = 1000,
    seed: int | None = None,
) -> dict[str, Any]:
    """``simulation.json``: GCMC of pure CO2 in the framework, one system per pressure,
    with the framework charges of the CIF beside it."""
    system = {
        "Type": "Framework",
        "Name": mof_id,
        "NumberOfUnitCells": [int(n) for n in cells],
        "ChargeMethod": "Ewald",
        "UseChargesFrom": "CIF_File",
        "CutOffVDW": float(cutoff),
        "CutOffCoulomb": float(cutoff),
        "ExternalTemperature": float(temperature_k),
    }
    deck: dict[str, Any] = {
        "SimulationType": "MonteCarlo",
        "NumberOfCycles": int(cycles),
        "NumberOfInitializationCycles": int(init_cycles),
        "PrintEvery": int(print_every),
    }
    if seed is not None:
        deck["RandomSeed"] = int(seed)
    deck["Systems"] = [
        {**system, "ExternalPressure": float(p) * ff.BAR_IN_PA} for p in pressures_bar
    ]
    deck["Components"] = [
        {
            "Name": "CO2",
            "TranslationProbability": 0.5,
            "RotationProbability": 0.5,
            "ReinsertionProbability": 0.5,
            "SwapProbability": 1.0,
            "CreateNumberOfMolecules": 0,
        }
    ]
    return deck


def write_raspa3_decks(
    folder: Path,
    mof_id: str,
    elements: Iterable[str],
    cells: Sequence[int],
    temperature_k: float,
    pressures_bar: Sequence[float],
    cycles: int,
    init_cycles: int,
    cutoff: float = ff.DEFAULT_CUTOFF,
    print_every: int = 1000,
) -> list[Path]:
    """Write the three RASPA3 files into ``folder`` (atomically); returns their paths."""
    files = {
        "simulation.json": simulation_json(
            mof_id,
            cells,
            temperature_k,
            pressures_bar,
            cycles,
            init_cycles,
            cutoff,
            print_every,
        ),  # fmt: skip
        "force_field.json": force_field_json(elements, cutoff),
        "CO2.json": co2_json(),
    }
    return [
        write_text_atomic(folder / name, json.dumps(doc, indent=2) + "\n")
        for name, doc in files.items()
    ]
