"""The compiled loop of the CO2 insertion energies (``energy_kernels.cpp``).

:mod:`mofsieve.descriptors.energy_grid` runs it when it is available and its numpy
implementation otherwise: the same energies to ~1e-5 relative (single-precision pair sums
here), over 1000 times faster (a few ms per CoRE MOF instead of seconds).

Built like :mod:`mofsieve.descriptors.native`, by :mod:`mofsieve.native_build`: plain C++ with
a C interface (it shares the lattice of ``geometric_cells.h``), loaded with :mod:`ctypes`,
compiled the first time it is needed with ``$CXX`` (else ``c++``) into the kernel cache
(``$MOFSIEVE_KERNEL_CACHE``, default ``~/.cache/mofsieve``) under a name that changes with the
sources and the flags, in a private folder renamed into place. Without a compiler, or with
``MOFSIEVE_ENERGY_KERNELS=0``, numpy computes the energies (said once in the log).
"""

from __future__ import annotations

import ctypes
import logging
from pathlib import Path

import numpy as np

from mofsieve.native_build import CtypesLibrary

SOURCE = Path(__file__).with_name("energy_kernels.cpp")
HEADER = SOURCE.with_name("geometric_cells.h")  # included by SOURCE (the lattice)
SWITCH = "MOFSIEVE_ENERGY_KERNELS"
MAX_SITES = 8  # the kernel's fixed per-molecule buffer
# -fopenmp-simd: the pair loops' ``omp simd reduction`` vectorises without -ffast-math (no
# OpenMP runtime, no threads); -fno-trapping-math lets it blend the pairs past the cutoff
# out instead of branching (no floating-point exception is ever trapped here).
_FLAGS = ["-O3", "-std=c++17", "-fopenmp-simd", "-fno-math-errno", "-fno-trapping-math"]

_ADDRESS = ctypes.c_void_p
_SIGNATURE = [
    ctypes.c_int,  # atoms
    _ADDRESS,  # Cartesian positions (atoms × 3, float64)
    _ADDRESS,  # atom types (atoms, int32)
    ctypes.c_int,  # types
    ctypes.c_int,  # sites of the molecule
    _ADDRESS,  # site offsets along the axis (sites, float64)
    _ADDRESS,  # pair parameters A, B, shift (types × sites × 3, float64)
    _ADDRESS,  # cell rows (3 × 3, float64)
    ctypes.c_double,  # cutoff
    ctypes.c_int,  # points
    _ADDRESS,  # points (points × 3, float64)
    _ADDRESS,  # axis unit vectors (points × 3, float64)
    ctypes.c_double,  # cap
    ctypes.c_double,  # bin width
    ctypes.c_double,  # near reach
    _ADDRESS,  # partial charges (atoms, float64) or NULL
    _ADDRESS,  # site charges (sites, float64)
    _ADDRESS,  # out: Lennard-Jones energies (points, float64)
    _ADDRESS,  # out: Coulomb energies (points, float64) or NULL
]


LIBRARY = CtypesLibrary(
    "mofsieve_energy",
    flags=_FLAGS,
    symbols={"mofsieve_energy_grid": (_SIGNATURE, ctypes.c_int)},
    sources=[SOURCE],
    headers=[HEADER],
    switch=SWITCH,
    subject="energy-grid kernel",
    fallback="numpy computes the energies instead (same numbers to ~1e-5, over 1000x slower)",
    logger=logging.getLogger(__name__),
)

# Compute with the numpy implementation inside this block (tests and benchmarks).
switched_off = LIBRARY.switched_off


def kernel() -> ctypes.CDLL | None:
    """The compiled kernel, or None: switched off, or the build failed (logged once)."""
    return LIBRARY.get()


def _c_array(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=np.float64)


def insertion_energies(
    library: ctypes.CDLL,
    atom_cart: np.ndarray,
    types: np.ndarray,
    site_offsets: np.ndarray,
    pair_params: np.ndarray,
    cell: np.ndarray,
    points: np.ndarray,
    axes: np.ndarray,
    *,
    cutoff: float,
    cap: float,
    bin_width: float,
    near_reach: float,
    charges: np.ndarray | None = None,
    site_charges: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """(Lennard-Jones, Coulomb) energies (K) of the molecule at each point, one call of
    ``mofsieve_energy_grid``; the arguments and results as
    :func:`mofsieve.descriptors.energy_grid.insertion_energies_numpy` has them."""
    count, sites, n_types = len(atom_cart), len(site_offsets), len(pair_params)
    if atom_cart.shape != (count, 3) or types.shape != (count,) or cell.shape != (3, 3):
        raise ValueError(f"positions {atom_cart.shape}, types {types.shape}, cell {cell.shape}")
    if not 1 <= sites <= MAX_SITES or pair_params.shape != (n_types, sites, 3):
        raise ValueError(f"pair parameters {pair_params.shape} for {sites} sites")
    if count and (types.min() < 0 or types.max() >= n_types):
        raise ValueError(f"atom types outside 0..{n_types - 1}")
    types_ = np.ascontiguousarray(types, dtype=np.int32)
    with_charges = charges is not None
    if with_charges and (charges.shape != (count,) or site_charges is None
                         or site_charges.shape != (sites,)):  # fmt: skip
        raise ValueError(f"charges {charges.shape} for {count} atoms, {sites} sites")
    charges_ = _c_array(charges) if with_charges else None
    site_charges_ = _c_array(site_charges) if with_charges else np.zeros(sites)
    coulomb = np.empty(len(points)) if with_charges else None
    if points.ndim != 2 or points.shape[1] != 3 or axes.shape != points.shape:
        raise ValueError(f"points {points.shape} and axes {axes.shape}")
    cart, offsets, params, cell_, points_, axes_ = (
        _c_array(a) for a in (atom_cart, site_offsets, pair_params, cell, points, axes)
    )
    energies = np.empty(len(points_), dtype=np.float64)
    status = library.mofsieve_energy_grid(
        count,
        cart.ctypes.data,
        types_.ctypes.data,
        n_types,
        sites,
        offsets.ctypes.data,
        params.ctypes.data,
        cell_.ctypes.data,
        cutoff,
        len(points_),
        points_.ctypes.data,
        axes_.ctypes.data,
        cap,
        bin_width,
        near_reach,
        charges_.ctypes.data if charges_ is not None else None,
        site_charges_.ctypes.data,
        energies.ctypes.data,
        coulomb.ctypes.data if coulomb is not None else None,
    )
    if status == 1:
        raise MemoryError("out of memory in the compiled energy-grid kernel")
    if status != 0:
        raise ValueError(f"the energy-grid kernel refused its arguments (status {status})")
    return energies, coulomb
