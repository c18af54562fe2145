"""Fast geometric pore descriptors: sampling estimates of CoRE MOF 2019's Zeo++ values,
without Zeo++, deterministic, about 1 ms of CPU per CoRE MOF CIF in total
(bench/descriptors.py).

Two implementations of the same estimators give the same numbers: compiled loops
(``geometric_kernels.cpp`` through :mod:`mofsieve.descriptors.native`: periodic cell lists,
no pair arrays), which run wherever they can be built, and numpy
(:mod:`mofsieve.descriptors.geometric_numpy`: pymatgen's periodic neighbour search and array
arithmetic, ~8 ms per CIF), which runs otherwise and is the reference the tests hold the
compiled loops to. Both take their points, orientations and radii from here (Zeo++'s default
radii table):

- ``void_fraction_geometric``: the zero-probe void fraction (CoRE's ``AV_VF``): the share of
  4,096 quasi-random points per cell (R3 sequence, deterministic) inside no atom sphere.
- ``surface_area_m2_cm3_geometric`` / ``_m2_g_``: the 1.65 Å-probe surface of the spheres of
  radius r + probe, from ~12,000 points per cell on those spheres (Fibonacci sets, a seeded
  random orientation per atom), a point counting when it lies in no other expanded sphere.
  Accessibility is NOT checked: surface in pockets the probe cannot reach from the channels
  counts too, so this estimates Zeo++'s ASA + NASA (CoRE's ``ASA_m2_cm3 + NASA_m2_cm3``). It
  over-reads ``ASA`` wherever CoRE has non-accessible surface: 34 % of CoRE MOF 2019-ASR,
  25 % with ASA = 0 because no 1.65 Å probe channel percolates. m²/g is derived by
  ``compute_descriptors`` with :func:`mofsieve.descriptors.cell.density`.
- ``largest_sphere_diameter_geometric``: the LCD, 2 max_p min_i(|p − x_i| − r_i), from 1,024
  seed points (the deepest found by growing neighbour shells) refined by a pattern search to
  0.01 Å; within ~0.03 Å of CoRE's Zeo++ ``-ha`` LCD on average, slightly below it (a local
  search can only under-estimate a maximum).

Sample counts are per cell, so the cost grows with the atom count only through the neighbour
searches (surface points: at least 12 per atom on big cells).
"""

from __future__ import annotations

import ctypes
import functools
import math
from dataclasses import dataclass

import numpy as np

from mofsieve.descriptors import native
from mofsieve.descriptors.cell import cell_volume

GEOMETRIC_DESCRIPTORS: tuple[str, ...] = (
    "void_fraction_geometric",
    "surface_area_m2_cm3_geometric",
    "surface_area_m2_g_geometric",
    "largest_sphere_diameter_geometric",
)

# Zeo++'s default atomic radii (Å), index = atomic number: its ``initializeRadTable`` as
# shipped by pyzeo 0.2.0 (read back with ``pyzeo.extension.lookupRadius``; the tests compare
# the two when pyzeo is installed). CoRE MOF 2019 ran Zeo++ with this table. Zeo++ has no
# entry past Lr (103); those elements get its 2.0 Å fallback here (no MOF contains them).
_ZEO_RADII_A = np.array(
    [0.0]  # Z = 0 is not an element
    + [1.09, 1.4, 1.82, 2.0, 2.0, 1.7, 1.55, 1.52, 1.47, 1.54]  # H-Ne
    + [2.27, 1.73, 2.0, 2.1, 1.8, 1.8, 1.75, 1.88, 2.75, 2.0]  # Na-Ca
    + [2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 1.63, 1.4, 1.39]  # Sc-Zn
    + [1.87, 2.0, 1.85, 1.9, 1.85, 2.02, 2.0, 2.0, 2.0, 2.0]  # Ga-Zr
    + [2.0, 2.0, 2.0, 2.0, 2.0, 1.63, 1.72, 1.58, 1.93, 2.17]  # Nb-Sn
    + [2.0, 2.06, 1.98, 2.16, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]  # Sb-Nd
    + [2.0] * 12  # Pm-Hf
    + [2.0, 2.0, 2.0, 2.0, 2.0, 1.72, 1.66, 1.55, 1.96, 2.02]  # Ta-Pb
    + [2.0] * 9  # Bi-Pa
    + [1.86]  # U
    + [2.0] * 26,  # Np-Og
    dtype=np.float64,
)


@dataclass(frozen=True)
class GeometricSettings:
    """Sample sizes of the geometric estimators; fixed per cell, so that the cost is bounded
    by the atom count (neighbour searches) and not by these numbers times the atom count."""

    # Quasi-random points per cell for the void fraction (zero probe). A Kronecker (R3)
    # sequence: its error falls about as 1/N, not 1/√N as Monte Carlo's.
    volume_points: int = 4096
    # The first of those points that seed the largest-sphere search, and how many of the
    # deepest ones are then refined by a pattern search down to ``lcd_tolerance_a``.
    lcd_seed_points: int = 1024
    lcd_refined_points: int = 8
    lcd_tolerance_a: float = 0.01
    surface_probe_radius: float = 1.65
    # Points on the atoms' probe-expanded spheres, per cell, split evenly over the atoms but
    # never fewer than ``surface_points_min_per_atom`` (big cells: linear in the atom count)
    # nor more than ``surface_points_max_per_atom`` (small cells: no gain past it).
    surface_points: int = 12_000
    surface_points_min_per_atom: int = 12
    surface_points_max_per_atom: int = 200
    seed: int = 0


FAST_GEOMETRY = GeometricSettings()

# The R3 low-discrepancy sequence (Roberts 2018): steps 1/g, 1/g², 1/g³ with g the real root
# of x⁴ = x + 1 (the generalised golden ratio in 3-D; the plastic number is the 2-D one).
_R3_RATIO = 1.2207440846057596
_R3_STEP = np.array([1 / _R3_RATIO, 1 / _R3_RATIO**2, 1 / _R3_RATIO**3])
# Pattern-search moves: the 6 axis and 8 body-diagonal unit vectors.
_PATTERN_DIRECTIONS = np.array(
    [
        (i, j, k)
        for i in (-1, 0, 1)
        for j in (-1, 0, 1)
        for k in (-1, 0, 1)
        if abs(i) + abs(j) + abs(k) in (1, 3)
    ],
    dtype=np.float64,
)
_PATTERN_DIRECTIONS /= np.linalg.norm(_PATTERN_DIRECTIONS, axis=1, keepdims=True)


@functools.cache
def _quasi_random_fractions(count: int) -> np.ndarray:
    fractions = (0.5 + np.arange(1, count + 1)[:, None] * _R3_STEP) % 1.0
    fractions.flags.writeable = False  # shared by every call
    return fractions


@functools.cache
def _fibonacci_sphere(count: int) -> np.ndarray:
    """``count`` unit vectors spread evenly over the sphere, float32 (as the products use
    them); shared by every call."""
    k = np.arange(count) + 0.5
    z = 1.0 - 2.0 * k / count
    ring = np.sqrt(1.0 - z * z)
    azimuth = k * math.pi * (3.0 - math.sqrt(5.0))
    directions = np.stack([ring * np.cos(azimuth), ring * np.sin(azimuth), z], axis=1)
    directions = directions.astype(np.float32)
    directions.flags.writeable = False
    return directions


def _surface_points_per_atom(count: int, settings: GeometricSettings) -> int:
    """Surface points per atom: the cell's budget split evenly, within the per-atom bounds."""
    share = settings.surface_points // count
    return min(
        max(share, settings.surface_points_min_per_atom), settings.surface_points_max_per_atom
    )


def _rotation_draws(count: int, settings: GeometricSettings) -> np.ndarray:
    """The seeded Gaussian draws (4 × atoms) that make each atom's random orientation:
    ``default_rng(seed).normal(size=(4, count))``, sliced from a cached stream (a Generator
    draws them one after another, so a shorter draw is a prefix of a longer one; the tests
    compare with the numpy implementation, which draws them afresh)."""
    length = 1 << max(14, (4 * count - 1).bit_length())
    return _normal_stream(settings.seed, length)[: 4 * count].reshape(4, count)


@functools.cache
def _normal_stream(seed: int, length: int) -> np.ndarray:
    stream = np.random.default_rng(seed).normal(size=length)
    stream.flags.writeable = False
    return stream


def _area_from_exposed(expanded: np.ndarray, exposed: np.ndarray, per_atom: int) -> float:
    """Å² from each atom's count of exposed points (``exposed.mean(axis=1)`` of the boolean
    table, the same float64 numbers)."""
    sphere_areas = 4.0 * math.pi * expanded**2
    return float(sphere_areas @ (exposed / per_atom))


def _compiled(
    library: ctypes.CDLL,
    atom_cart: np.ndarray,
    radii: np.ndarray,
    cell: np.ndarray,
    volume: float,
    wanted: frozenset[str],
    settings: GeometricSettings,
) -> dict[str, float]:
    """The descriptors ``wanted`` from the compiled loops (native.py), one call; the same
    numbers as :func:`mofsieve.descriptors.geometric_numpy.pore_descriptors`."""
    pores = bool(wanted & {"void_fraction_geometric", "largest_sphere_diameter_geometric"})
    want_lcd = "largest_sphere_diameter_geometric" in wanted
    surface = bool(wanted & {"surface_area_m2_cm3_geometric", "surface_area_m2_g_geometric"})
    count = len(radii)
    per_atom = _surface_points_per_atom(count, settings)
    points = _quasi_random_fractions(settings.volume_points) @ cell if pores else None
    inside, radius, exposed = native.geometric(
        library,
        atom_cart,
        radii,
        cell,
        points=points,
        want_largest_sphere=want_lcd,
        seed_points=settings.lcd_seed_points,
        refined_points=settings.lcd_refined_points,
        tolerance=settings.lcd_tolerance_a,
        travel=(volume / settings.lcd_seed_points) ** (1 / 3),
        pattern=_PATTERN_DIRECTIONS,
        probe=settings.surface_probe_radius if surface else None,
        rotation_draws=_rotation_draws(count, settings),
        surface_directions=_fibonacci_sphere(per_atom),
    )
    values: dict[str, float] = {}
    if pores:
        values["void_fraction_geometric"] = 1.0 - inside / settings.volume_points
    if want_lcd:
        values["largest_sphere_diameter_geometric"] = 2.0 * radius
    if exposed is not None:
        expanded = radii + settings.surface_probe_radius
        area = _area_from_exposed(expanded, exposed, per_atom)
        # Å²/Å³ = 1e-20 m² / 1e-24 cm³.
        values["surface_area_m2_cm3_geometric"] = area / volume * 1e4
    return values


def geometric_descriptors(
    numbers: np.ndarray,
    frac: np.ndarray,
    cell: np.ndarray,
    wanted: frozenset[str],
    settings: GeometricSettings = FAST_GEOMETRY,
    *,
    volume: float | None = None,
) -> dict[str, float]:
    """The fast pore descriptors (see the module docstring) that ``wanted`` names: compiled
    where the kernels can be built, numpy otherwise (the same numbers). ``volume``: the
    cell's, :func:`~mofsieve.descriptors.cell.cell_volume`, when the caller has it."""
    radii = _ZEO_RADII_A[numbers]
    atom_cart = (frac - np.floor(frac)) @ cell
    library = native.kernels()
    if library is None:
        from mofsieve.descriptors.geometric_numpy import pore_descriptors

        return pore_descriptors(atom_cart, radii, cell, wanted, settings)
    volume = cell_volume(cell) if volume is None else volume
    return _compiled(library, atom_cart, radii, cell, volume, wanted, settings)
