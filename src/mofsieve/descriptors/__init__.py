"""Per-crystal global descriptors for the descriptor-hybridised model variant (design §5).

Pure functions: arrays in (atomic numbers, fractional coordinates, lattice rows in Å), a
float32 vector out (:func:`compute_descriptors`, which validates the input once and hands it
to one module per kind of descriptor):

- :mod:`mofsieve.descriptors.cell`: the cheap descriptors (lattice lengths/angles, volume per
  atom, density), closed-form; also the input validation and :class:`DescriptorError`.
- :mod:`mofsieve.descriptors.geometric`: the fast geometric pore descriptors, sampling
  estimates of CoRE MOF 2019's Zeo++ values, deterministic, ~1 ms per CIF for all of them
  in compiled loops (:mod:`~mofsieve.descriptors.native`), ~8 ms in numpy where those cannot
  be built (:mod:`~mofsieve.descriptors.geometric_numpy`); the same numbers either way.
- :mod:`mofsieve.descriptors.zeo`: the Zeo++ pore descriptors, from Zeo++ through the PyPI
  package ``pyzeo`` in a forked, time-limited child process (0.1–60 s per CIF).
- :mod:`mofsieve.descriptors.energy_grid`: force-field descriptors, the Lennard-Jones energy
  landscape of a TraPPE CO2 in the cell with the labels' UFF parameters (Henry coefficient,
  Boltzmann-weighted and lowest energy, an energy histogram), and the same with the
  framework's partial charges where every atom has one; a few ms per CIF in compiled loops
  (:mod:`~mofsieve.descriptors.energy_native`). Only computed when named (the shipped
  models name them).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mofsieve.descriptors.cell import (
    CHEAP_DESCRIPTORS,
    DescriptorError,
    _validated,
    cell_descriptors,
    cell_volume,
    density,
)
from mofsieve.descriptors.energy_grid import (
    DEFAULT_ENERGY,
    ENERGY_DESCRIPTORS,
    EnergySettings,
    energy_descriptors,
)
from mofsieve.descriptors.geometric import (
    FAST_GEOMETRY,
    GEOMETRIC_DESCRIPTORS,
    GeometricSettings,
    geometric_descriptors,
)
from mofsieve.descriptors.zeo import (
    ACCURATE_ZEO,
    FAST_ZEO,
    ZEO_DESCRIPTORS,
    ZeoSettings,
    zeo_descriptors,
)

__all__ = [
    "ACCURATE_ZEO",
    "CHEAP_DESCRIPTORS",
    "DEFAULT_ENERGY",
    "DESCRIPTORS",
    "ENERGY_DESCRIPTORS",
    "FAST_DESCRIPTORS",
    "FAST_GEOMETRY",
    "FAST_ZEO",
    "GEOMETRIC_DESCRIPTORS",
    "ZEO_DESCRIPTORS",
    "DescriptorError",
    "EnergySettings",
    "GeometricSettings",
    "ZeoSettings",
    "cell_descriptors",
    "cell_volume",
    "compute_descriptors",
    "density",
    "energy_descriptors",
    "geometric_descriptors",
    "zeo_descriptors",
]

# The featurizer's default pore set: no Zeo++, a few ms per CIF (see descriptors.geometric).
FAST_DESCRIPTORS: tuple[str, ...] = CHEAP_DESCRIPTORS + GEOMETRIC_DESCRIPTORS
DESCRIPTORS: tuple[str, ...] = (
    CHEAP_DESCRIPTORS + ZEO_DESCRIPTORS + GEOMETRIC_DESCRIPTORS + ENERGY_DESCRIPTORS
)


def compute_descriptors(
    names: Sequence[str],
    atomic_number: np.ndarray,
    frac_coords: np.ndarray,
    lattice: np.ndarray,
    *,
    zeo_settings: ZeoSettings = FAST_ZEO,
    geometric_settings: GeometricSettings = FAST_GEOMETRY,
    energy_settings: EnergySettings = DEFAULT_ENERGY,
    charges: np.ndarray | None = None,
) -> np.ndarray:
    """The named descriptors of one crystal, float32, in the order of ``names``.

    ``lattice`` holds the cell vectors as rows (Å); ``charges``, the atoms' partial charges
    (e, NaN where unknown), are used only by the charged energy descriptors, which are NaN
    without a charge for every atom. Raises ``ValueError`` for unknown names and
    :class:`DescriptorError` (a ``ValueError``) when the structure cannot be described.
    """
    names = list(names)
    unknown = [name for name in names if name not in DESCRIPTORS]
    if unknown:
        raise ValueError(f"unknown descriptor(s) {unknown}; valid: {', '.join(DESCRIPTORS)}")
    numbers, frac, cell = _validated(atomic_number, frac_coords, lattice)
    volume = cell_volume(cell)  # once: several descriptors divide by it

    values = cell_descriptors(numbers, cell, volume=volume)

    wanted = frozenset(names) & frozenset(ZEO_DESCRIPTORS)
    if wanted:
        values.update(zeo_descriptors(numbers, frac, cell, wanted, zeo_settings))
        if "asa_m2_cm3" in values:
            # m²/cm³ ÷ g/cm³; our density rather than Zeo++'s mass table, for consistency.
            values["asa_m2_g"] = values["asa_m2_cm3"] / values["density"]
    wanted = frozenset(names) & frozenset(GEOMETRIC_DESCRIPTORS)
    if wanted:
        values.update(
            geometric_descriptors(numbers, frac, cell, wanted, geometric_settings, volume=volume)
        )
        if "surface_area_m2_cm3_geometric" in values:
            values["surface_area_m2_g_geometric"] = (
                values["surface_area_m2_cm3_geometric"] / values["density"]
            )
    wanted = frozenset(names) & frozenset(ENERGY_DESCRIPTORS)
    if wanted:
        values.update(energy_descriptors(numbers, frac, cell, wanted, energy_settings,
                                         density=values["density"], charges=charges))  # fmt: skip
    return np.array([values[name] for name in names], dtype=np.float32)
