"""Where a framework's partial charges come from for GCMC: charge sources and their checks.

A charge source takes the parsed P1 cell (:class:`mofsieve.structures.Crystal`) and returns
one partial charge per atom, or raises :class:`ChargeSourceError` with the reason in words.
``mofsieve simulate`` and ``mofsieve gcmc`` ask the sources of the configured charge method
(:data:`CHARGE_METHODS`) in order and record the one that answered as ``charge_method``, with
the cell's net charge.

Sources:

- ``cif``: the CIF's own charges (``_atom_site_charge`` or ``_atom_type_partial_charge``),
  only when every atom has one;
- ``model``: the shipped per-atom charge model (:mod:`mofsieve.charge_model`), loaded once per
  process from its folder, on first use;
- ``eqeq``: EQeq through Open Babel (:mod:`mofsieve.eqeq`);
- ``none``: every framework atom neutral — GCMC then has no framework electrostatics, the
  term that dominates CO2 uptake at low pressure, so it is used only when asked.

Methods are sources in order: ``cif_or_model`` (the default) is ``cif``, then ``model``.

Computed charges (``model``, ``eqeq`` and any source registered as bounded) must lie within
plausible ranges per element (:data:`ELEMENT_BOUNDS`, :func:`check_bounds`); a result with one
atom outside is refused with the atom, its charge and the range, never used.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mofsieve.structures import Crystal


class ChargeSourceError(ValueError):
    """No usable charges from a source (or from any of the sources asked), with the reason."""


ChargeSource = Callable[[Crystal], np.ndarray]

# configured method → the sources it asks, in order
CHARGE_METHODS: dict[str, tuple[str, ...]] = {
    "cif_or_model": ("cif", "model"),
    "cif": ("cif",),
    "model": ("model",),
    "eqeq": ("eqeq",),
    "none": ("none",),
}
DEFAULT_CHARGE_METHOD = "cif_or_model"

# Plausible partial charges (e) per element for computed charges; any element not listed
# (metals, lanthanides, …) takes METAL_BOUNDS, and no charge may exceed MAX_ABS_CHARGE.
# Chosen on the 9,525 CoRE MOF 2019 CIFs with EQeq charges (../shared/data/core2019-co2,
# 2.8 M atoms; 0.1–99.9 percentiles): H −0.28…0.65, C −1.50…1.00, N −0.45…0.09,
# O −1.22…−0.03, F −1.02…−0.14, Cl −1.03…−0.12, S −1.49…1.08, P −0.07…0.95, B −0.51…2.58,
# Si 0.46…2.71, metals −0.18 (Au)…2.73 (Eu); Cu 0.45…1.01, Zn 0.64…1.29. The ranges below
# pass 9,408 of those MOFs (98.8 %); the 117 refused have the set's own outliers (C −2.9 e,
# H ±1.5 e, O −2.1 e). Runaway results lie far outside: Open Babel's EQeq on a skewed cell
# gave Cu +10.9 e, C −15.9 e (ALAMUW), O −3.4 e, H +2.3 e (GAHWIX) — see mofsieve.eqeq.
METAL_BOUNDS = (-0.5, 3.0)
MAX_ABS_CHARGE = 3.0
ELEMENT_BOUNDS: dict[str, tuple[float, float]] = {
    "H": (-0.5, 0.8),
    "C": (-1.6, 1.6),
    "N": (-1.2, 1.0),
    "O": (-1.5, 0.5),
    "F": (-1.5, 0.5),
    "Cl": (-1.5, 0.5),
    "Br": (-1.5, 0.5),
    "I": (-1.5, 0.5),
    "S": (-2.0, 1.5),
    "Se": (-2.0, 1.5),
    "Te": (-2.0, 1.5),
    "P": (-1.0, 2.0),
    "As": (-1.0, 2.0),
    "Sb": (-1.0, 2.0),
    "B": (-1.0, 3.0),
    "Si": (-1.0, 3.0),
    "Ge": (-1.0, 3.0),
}


@dataclass(frozen=True)
class AssignedCharges:
    """The charges a framework is simulated with, the source that gave them, their sum."""

    values: np.ndarray  # (n,) float64, e
    method: str  # the source that answered: cif, model, eqeq, none, …
    net_charge: float  # e per unit cell
    detail: str = ""  # which model or program: the charge model's name, eqeq's


def element_bounds(symbol: str) -> tuple[float, float]:
    low, high = ELEMENT_BOUNDS.get(symbol, METAL_BOUNDS)
    return max(low, -MAX_ABS_CHARGE), min(high, MAX_ABS_CHARGE)


def check_bounds(crystal: Crystal, values: np.ndarray) -> None:
    """Raise :class:`ChargeSourceError` naming the worst atom if any charge is implausible."""
    from ase.data import chemical_symbols

    symbols = [chemical_symbols[int(z)] for z in crystal.atomic_number]
    bounds = {s: element_bounds(s) for s in set(symbols)}
    low = np.array([bounds[s][0] for s in symbols])
    high = np.array([bounds[s][1] for s in symbols])
    excess = np.maximum(low - values, values - high)
    if values.size == 0 or excess.max() <= 0:
        return
    worst = int(np.argmax(excess))
    symbol = symbols[worst]
    label = f"{symbol}{symbols[: worst + 1].count(symbol)}"  # as in the P1 CIF's labels
    n_out = int((excess > 0).sum())
    lo, hi = bounds[symbol]
    raise ChargeSourceError(
        f"implausible charge {values[worst]:+.3f} e on {label}, outside {symbol}'s "
        f"[{lo:+.2f}, {hi:+.2f}] e ({n_out} of {values.size} atoms outside their bounds)"
    )


# ---------------------------------------------------------------------------------------------
# sources


def cif_charges(crystal: Crystal) -> np.ndarray:
    """The CIF's partial charges; refused unless every atom has a finite one."""
    charge = np.asarray(crystal.charge, dtype=np.float64)
    missing = int((~np.isfinite(charge)).sum())
    if charge.size == 0 or missing:
        raise ChargeSourceError(
            f"the CIF has no partial charge for {missing} of its {charge.size} atoms"
        )
    return charge


def no_charges(crystal: Crystal) -> np.ndarray:
    """Every framework atom neutral."""
    return np.zeros(crystal.n_atoms, dtype=np.float64)


def eqeq_source(crystal: Crystal) -> np.ndarray:
    """EQeq charges from Open Babel (:mod:`mofsieve.eqeq`)."""
    from mofsieve.eqeq import EqeqError, eqeq_charges

    try:
        return eqeq_charges(crystal)
    except EqeqError as err:
        raise ChargeSourceError(str(err)) from None


# loaded charge models (or why not) by resolved folder: one load per process and folder
_charge_models: dict[str, Any] = {}


def charge_model(model_dir: str | os.PathLike[str] | None = None) -> Any:
    """The charge model in ``model_dir`` (default: the shipped one), loaded on first use;
    :class:`ChargeSourceError` with the reason if it cannot be."""
    from mofsieve.charge_model import (
        DEFAULT_CHARGE_MODEL_DIR,
        ChargeModelError,
        load_charge_model,
    )

    key = str(Path(model_dir or DEFAULT_CHARGE_MODEL_DIR).resolve())
    if key not in _charge_models:
        try:
            _charge_models[key] = load_charge_model(key)
        except ChargeModelError as err:
            _charge_models[key] = ChargeSourceError(str(err))
    loaded = _charge_models[key]
    if isinstance(loaded, ChargeSourceError):
        raise loaded
    return loaded


def model_charges(crystal: Crystal, model_dir: str | os.PathLike[str] | None = None) -> np.ndarray:
    """The charge model's prediction for ``crystal``."""
    from mofsieve.charge_model import ChargeModelError

    try:
        return np.asarray(charge_model(model_dir).predict(crystal), dtype=np.float64)
    except ChargeModelError as err:
        raise ChargeSourceError(str(err)) from None


SOURCES: dict[str, ChargeSource] = {
    "cif": cif_charges,
    "model": model_charges,
    "eqeq": eqeq_source,
    "none": no_charges,
}
BOUNDED: set[str] = {"model", "eqeq"}  # sources whose results must pass check_bounds


def register(name: str, source: ChargeSource, bounded: bool = True) -> None:
    """Make ``source`` available as ``name``; a computed source is checked by
    :func:`check_bounds` unless ``bounded`` is False."""
    if not name or not name.isidentifier():
        raise ValueError(f"charge source name must be a plain word, not {name!r}")
    SOURCES[name] = source
    (BOUNDED.add if bounded else BOUNDED.discard)(name)


def sources_of(method: str) -> tuple[str, ...]:
    """The sources a configured charge method asks, in order (``cif_or_model`` → cif, model)."""
    try:
        return CHARGE_METHODS[method]
    except KeyError:
        raise ChargeSourceError(
            f"unknown charge method {method!r} (known: {', '.join(CHARGE_METHODS)})"
        ) from None


def _detail(method: str, model_dir: str | os.PathLike[str] | None) -> str:
    if method == "model":
        return str(charge_model(model_dir).name)
    if method == "eqeq":
        from mofsieve.eqeq import EQEQ_NAME

        return EQEQ_NAME
    return ""


def assign_charges(
    crystal: Crystal,
    methods: Sequence[str],
    model_dir: str | os.PathLike[str] | None = None,
) -> AssignedCharges:
    """Charges from the first source of ``methods`` that gives sane ones; the reasons of all
    if none does. ``model_dir``: the charge model's folder (default: the shipped one)."""
    reasons = []
    for method in methods:
        if method not in SOURCES:
            raise ChargeSourceError(
                f"unknown charge source {method!r} (known: {', '.join(sorted(SOURCES))})"
            )
        try:
            if method == "model":
                values = model_charges(crystal, model_dir)
            else:
                values = np.asarray(SOURCES[method](crystal), dtype=np.float64)
            if values.shape != (crystal.n_atoms,) or not np.isfinite(values).all():
                raise ChargeSourceError(
                    f"gave {values.shape} values, not one finite charge per atom"
                )
            if method in BOUNDED:
                check_bounds(crystal, values)
        except ChargeSourceError as err:
            reasons.append(f"{method}: {err}")
            continue
        return AssignedCharges(values, method, float(values.sum()), _detail(method, model_dir))
    raise ChargeSourceError("; ".join(reasons) or "no charge source asked")


def add_charge_arguments(parser: argparse.ArgumentParser) -> None:
    """``--charges`` and ``--charge-model``, as ``mofsieve simulate`` and ``gcmc`` take them."""
    from mofsieve.charge_model import DEFAULT_CHARGE_MODEL_DIR

    parser.add_argument(
        "--charges",
        default=DEFAULT_CHARGE_METHOD,
        choices=list(CHARGE_METHODS),
        help="where the framework's partial charges come from: cif_or_model (default: the "
        "CIF's own, else the charge model), cif, model, eqeq (Open Babel), none (neutral)",
    )
    parser.add_argument(
        "--charge-model",
        type=Path,
        default=DEFAULT_CHARGE_MODEL_DIR,
        metavar="DIR",
        help="charge-model folder (default: the shipped models/charges)",
    )
