"""Closed-form cell descriptors: lattice lengths and angles, volume per atom, density.

Pure functions of the atomic numbers and the lattice rows (Å). Also holds what every
descriptor kind shares: :func:`_validated`, the input check run before any descriptor, the
element tables (IUPAC standard atomic weights from ``ase.data``), and
:class:`DescriptorError`, the error of a structure that cannot be described.
"""

from __future__ import annotations

import numpy as np

from mofsieve.structures import lattice_parameters

CHEAP_DESCRIPTORS: tuple[str, ...] = (
    "a",
    "b",
    "c",
    "alpha",
    "beta",
    "gamma",
    "volume_per_atom",
    "density",
)

# g/mol → g, and Å³ → cm³, folded into one factor: density [g/cm³] = mass_sum [g/mol] *
# _AMU_PER_A3_TO_G_PER_CM3 / volume [Å³].
_AMU_PER_A3_TO_G_PER_CM3 = 1.0e24 / 6.02214076e23


class DescriptorError(ValueError):
    """A structure cannot be described; the message says why."""


def _element_tables() -> tuple[list[str], np.ndarray]:
    # ase.data is a light import (no Atoms machinery) and holds IUPAC standard atomic weights.
    from ase.data import atomic_masses, chemical_symbols

    return list(chemical_symbols), np.asarray(atomic_masses, dtype=np.float64)


_SYMBOLS, _MASSES = _element_tables()


def _validated(
    atomic_number: np.ndarray, frac_coords: np.ndarray, lattice: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    numbers = np.asarray(atomic_number)
    frac = np.asarray(frac_coords, dtype=np.float64)
    cell = np.asarray(lattice, dtype=np.float64)
    if numbers.ndim != 1 or numbers.size == 0:
        raise DescriptorError(
            f"atomic_number must be a non-empty 1-D array, got shape {numbers.shape}"
        )
    if frac.shape != (numbers.size, 3):
        raise DescriptorError(f"frac_coords must have shape ({numbers.size}, 3), got {frac.shape}")
    if cell.shape != (3, 3):
        raise DescriptorError(f"lattice must have shape (3, 3), got {cell.shape}")
    if not (np.all(np.isfinite(frac)) and np.all(np.isfinite(cell))):
        raise DescriptorError("frac_coords or lattice contain NaN/inf")
    if not np.issubdtype(numbers.dtype, np.integer):
        if not np.all(numbers == np.round(numbers)):
            raise DescriptorError("atomic_number must hold integers")
        numbers = numbers.astype(np.int64)
    if numbers.min() < 1 or numbers.max() >= len(_SYMBOLS):
        raise DescriptorError(
            f"atomic numbers must lie in 1..{len(_SYMBOLS) - 1}, got {numbers.min()}..{numbers.max()}"
        )
    if abs(np.linalg.det(cell)) < 1e-6:
        raise DescriptorError("lattice is singular (cell volume ~0)")
    return numbers.astype(np.int64), frac, cell


def cell_volume(lattice: np.ndarray) -> float:
    """Unit-cell volume in Å³."""
    return float(abs(np.linalg.det(np.asarray(lattice, dtype=np.float64))))


def density(atomic_number: np.ndarray, lattice: np.ndarray) -> float:
    """Mass density in g/cm³ from IUPAC standard atomic weights."""
    mass = float(_MASSES[np.asarray(atomic_number, dtype=np.int64)].sum())
    return mass * _AMU_PER_A3_TO_G_PER_CM3 / cell_volume(lattice)


def cell_descriptors(
    numbers: np.ndarray, cell: np.ndarray, *, volume: float | None = None
) -> dict[str, float]:
    """All of ``CHEAP_DESCRIPTORS`` of a validated structure (see :func:`_validated`);
    ``volume``: :func:`cell_volume` of ``cell`` when the caller has it."""
    volume = cell_volume(cell) if volume is None else volume
    values: dict[str, float] = {}
    a, b, c, alpha, beta, gamma = lattice_parameters(cell)
    values.update(a=a, b=b, c=c, alpha=alpha, beta=beta, gamma=gamma)
    values["volume_per_atom"] = volume / len(numbers)
    # density(numbers, cell), with the volume already at hand.
    mass = float(_MASSES[numbers].sum())
    values["density"] = mass * _AMU_PER_A3_TO_G_PER_CM3 / volume
    return values
