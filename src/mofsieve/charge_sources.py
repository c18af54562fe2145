"""Where a framework's partial charges come from for GCMC: a small registry of charge sources.

A charge source takes the parsed P1 cell (:class:`mofsieve.structures.Crystal`) and returns
one partial charge per atom, or raises :class:`ChargeSourceError` with the reason in words.
``mofsieve simulate`` asks the sources named on its command line in order and records the
name of the one that answered as ``charge_method``, with the cell's net charge.

Sources today:

- ``cif``: the CIF's own charges (``_atom_site_charge`` or ``_atom_type_partial_charge``),
  only when every atom has one;
- ``none``: every framework atom neutral — GCMC then has no framework electrostatics, the
  term that dominates CO2 uptake at low pressure, so ``simulate`` uses it only when asked.

A learned charge model (or EQeq) plugs in with :func:`register` under its own name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from mofsieve.structures import Crystal


class ChargeSourceError(ValueError):
    """No usable charges from a source (or from any of the sources asked), with the reason."""


ChargeSource = Callable[[Crystal], np.ndarray]


@dataclass(frozen=True)
class AssignedCharges:
    """The charges a framework is simulated with, the source that gave them, their sum."""

    values: np.ndarray  # (n,) float64, e
    method: str
    net_charge: float  # e per unit cell


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


SOURCES: dict[str, ChargeSource] = {"cif": cif_charges, "none": no_charges}


def register(name: str, source: ChargeSource) -> None:
    """Make ``source`` available as ``name`` (e.g. a learned charge model as ``model``)."""
    if not name or not name.isidentifier():
        raise ValueError(f"charge source name must be a plain word, not {name!r}")
    SOURCES[name] = source


def assign_charges(crystal: Crystal, methods: Sequence[str]) -> AssignedCharges:
    """Charges from the first of ``methods`` that gives them; the reasons of all if none does."""
    reasons = []
    for method in methods:
        if method not in SOURCES:
            raise ChargeSourceError(
                f"unknown charge source {method!r} (known: {', '.join(sorted(SOURCES))})"
            )
        try:
            values = np.asarray(SOURCES[method](crystal), dtype=np.float64)
        except ChargeSourceError as err:
            reasons.append(f"{method}: {err}")
            continue
        if values.shape != (crystal.n_atoms,) or not np.isfinite(values).all():
            reasons.append(f"{method}: gave {values.shape} values, not one finite charge per atom")
            continue
        return AssignedCharges(values, method, float(values.sum()))
    raise ChargeSourceError("; ".join(reasons) or "no charge source asked")
