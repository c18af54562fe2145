"""The workflow's GCMC check of its own picks, from the config: is it on, and the words of
its rules (``workflow/rules/simulate.smk``).

``gcmc.simulate.top: N`` (0 = off) simulates the N best flagged MOFs with ``mofsieve
simulate`` at the target's pressures (both for a working capacity) and compares them with
the predictions (``mofsieve validate``), with the charges of ``gcmc.charges`` and
``gcmc.charge_model`` (the same words as the RASPA decks get).
"""

from __future__ import annotations

from typing import Any

from mofsieve.config import (
    WORKING_CAPACITY,
    gcmc_pressures,
    pressure_key,
    simulate_charge_arguments,
    working_capacity_pressures,
)


def simulate_settings(cfg: dict[str, Any]) -> dict[str, Any]:
    return cfg["gcmc"]["simulate"]


def simulate_top(cfg: dict[str, Any]) -> int:
    """How many of the best flagged MOFs to simulate (0: none, the step is off)."""
    return int(simulate_settings(cfg)["top"])


def simulate_enabled(cfg: dict[str, Any]) -> bool:
    return simulate_top(cfg) > 0


def simulate_arguments(cfg: dict[str, Any]) -> list[str]:
    """``mofsieve simulate``'s words for one MOF of the run: the target's pressures (both of
    a working capacity), its temperature, the protocol of ``gcmc.simulate``, and the cutoff,
    net-charge tolerance and charges of ``gcmc`` (the same model as the RASPA decks)."""
    s, g = simulate_settings(cfg), cfg["gcmc"]
    return [
        "--pressure-bar", *gcmc_pressures(cfg),
        "--temperature-k", format(float(cfg["target"]["temperature_K"]), "g"),
        "--cycles", str(s["cycles"]),
        "--init-cycles", str(s["init_cycles"]),
        "--seed", str(s["seed"]),
        "--cutoff", str(g["cutoff_A"]),
        "--net-charge-tolerance", str(g["net_charge_tolerance_e"]),
        *simulate_charge_arguments(cfg),
    ]  # fmt: skip


def validate_pressure_arguments(cfg: dict[str, Any]) -> list[str]:
    """``mofsieve validate gather``'s pressure words: ``--pressure-bar P``, or for a working
    capacity ``--pressure-bar HIGH --minus-pressure-bar LOW`` (simulated capacity = uptake at
    HIGH − uptake at LOW, as the ranking subtracts the predictions)."""
    pressure = cfg["target"]["pressure"]
    if pressure == WORKING_CAPACITY:
        high, low = working_capacity_pressures(cfg)
        return ["--pressure-bar", high, "--minus-pressure-bar", low]
    return ["--pressure-bar", pressure_key(pressure)]


def validation_files(cfg: dict[str, Any], run: str) -> list[str]:
    """``[validation.csv, validation.json]`` of the run, or nothing when the step is off."""
    if not simulate_enabled(cfg):
        return []
    return [f"{run}/validation.csv", f"{run}/validation.json"]


def report_validation_arguments(cfg: dict[str, Any], run: str) -> list[str]:
    """``mofsieve report``'s validation words (nothing when the step is off: the report then
    says the section is off)."""
    files = validation_files(cfg, run)
    if not files:
        return []
    return ["--validation-csv", files[0], "--validation-json", files[1]]
