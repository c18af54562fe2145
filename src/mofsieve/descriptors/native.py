"""The compiled loops of the fast geometric descriptors (``geometric_kernels.cpp`` with
``geometric_cells.h``).

:mod:`mofsieve.descriptors.geometric` runs them when they are available and its numpy
implementation otherwise: the same estimators, step for step, and the same numbers (equal
float32 descriptors on the CoRE MOFs the tests and ``bench/descriptors.py`` compare), about
ten times faster.

The source is plain C++ with a C interface, loaded with :mod:`ctypes` (no torch, no Python
headers), built the first time it is needed with the machine's C++ compiler (``$CXX``, else
``c++``; a few seconds) by :mod:`mofsieve.native_build`, into the kernel cache
(``$MOFSIEVE_KERNEL_CACHE``, default ``~/.cache/mofsieve``) under a name that changes with the
source and the flags. On x86-64 CPUs with AVX2 and FMA it is built for them (vectorised
surface tests, inline fused multiply-adds); elsewhere for the baseline, same numbers. Each
process builds in a private folder and renames the result into place, so jobs that start
together never wait on each other. Without a compiler, or with
``MOFSIEVE_GEOMETRIC_KERNELS=0``, the numpy implementation runs (said once in the log).
"""

from __future__ import annotations

import ctypes
import logging
from pathlib import Path

import numpy as np

from mofsieve.native_build import CtypesLibrary

SOURCE = Path(__file__).with_name("geometric_kernels.cpp")
HEADER = SOURCE.with_name("geometric_cells.h")  # included by SOURCE
SWITCH = "MOFSIEVE_GEOMETRIC_KERNELS"
# -ffp-contract=off: every a * b + c in the source rounds twice, as numpy's element-wise
# operations do (the fused multiply-adds it wants are written out with std::fma).
_FLAGS = ["-O3", "-std=c++17", "-ffp-contract=off", "-fno-math-errno"]

# Arrays go in as the addresses of C-contiguous buffers of the right type (see geometric()).
_ADDRESS = ctypes.c_void_p
_SIGNATURE = [
    ctypes.c_int,  # atoms
    _ADDRESS,  # Cartesian positions, wrapped into the cell (atoms × 3, float64)
    _ADDRESS,  # Zeo++ radii (float64)
    _ADDRESS,  # cell rows (3 × 3, float64)
    ctypes.c_int,  # void fraction (and largest sphere)?
    ctypes.c_int,  # largest sphere?
    ctypes.c_int,  # volume points
    _ADDRESS,  # volume points (points × 3, float64)
    ctypes.c_int,  # seed points
    ctypes.c_int,  # refined points
    ctypes.c_double,  # tolerance
    ctypes.c_double,  # travel
    ctypes.c_int,  # pattern directions
    _ADDRESS,  # pattern directions (directions × 3, float64)
    ctypes.c_int,  # surface?
    ctypes.c_double,  # probe radius
    _ADDRESS,  # Gaussian draws of the rotations (4 × atoms, float64)
    ctypes.c_int,  # surface points per atom
    _ADDRESS,  # surface unit directions (points × 3, float32)
    _ADDRESS,  # out: exposed points per atom (int32)
    _ADDRESS,  # out: points inside an atom, largest-sphere radius (2, float64)
]


LIBRARY = CtypesLibrary(
    "mofsieve_geometric",
    flags=_FLAGS,
    symbols={"mofsieve_geometric": (_SIGNATURE, ctypes.c_int)},
    sources=[SOURCE],
    headers=[HEADER],
    switch=SWITCH,
    subject="geometric descriptor kernels",
    fallback="numpy computes them instead (same numbers, slower)",
    logger=logging.getLogger(__name__),
)

# Compute with the numpy implementation inside this block (tests and benchmarks).
switched_off = LIBRARY.switched_off


def kernels() -> ctypes.CDLL | None:
    """The compiled kernels, or None: switched off, or the build failed (logged once)."""
    return LIBRARY.get()


def _buffer(array: np.ndarray, dtype: type[np.generic]) -> np.ndarray:
    if array.dtype != dtype or not array.flags.c_contiguous:
        return np.ascontiguousarray(array, dtype=dtype)
    return array


def geometric(
    library: ctypes.CDLL,
    atom_cart: np.ndarray,
    radii: np.ndarray,
    cell: np.ndarray,
    *,
    points: np.ndarray | None,
    want_largest_sphere: bool,
    seed_points: int,
    refined_points: int,
    tolerance: float,
    travel: float,
    pattern: np.ndarray,
    probe: float | None,
    rotation_draws: np.ndarray,
    surface_directions: np.ndarray,
) -> tuple[int, float, np.ndarray | None]:
    """(points inside an atom sphere, largest-sphere radius, exposed surface points per atom)
    from one call of ``mofsieve_geometric`` (see the source): the void fraction and largest
    sphere when ``points`` are given (radius 0.0 without ``want_largest_sphere``), the
    surface when ``probe`` is (else None)."""
    count = len(radii)
    if atom_cart.shape != (count, 3) or cell.shape != (3, 3):
        raise ValueError(f"positions {atom_cart.shape} and cell {cell.shape} for {count} atoms")
    if rotation_draws.shape != (4, count) or surface_directions.ndim != 2:
        raise ValueError(f"rotation draws {rotation_draws.shape} for {count} atoms")
    arrays = [
        _buffer(atom_cart, np.float64),
        _buffer(radii, np.float64),
        _buffer(cell, np.float64),
        _buffer(points if points is not None else np.empty((0, 3)), np.float64),
        _buffer(pattern, np.float64),
        _buffer(rotation_draws, np.float64),
        _buffer(surface_directions, np.float32),
    ]
    exposed = np.zeros(count if probe is not None else 0, dtype=np.int32)
    out = np.zeros(2, dtype=np.float64)
    cart, radii, cell, points_, pattern, draws, directions = arrays
    status = library.mofsieve_geometric(
        count,
        cart.ctypes.data,
        radii.ctypes.data,
        cell.ctypes.data,
        int(points is not None),
        int(want_largest_sphere),
        len(points_),
        points_.ctypes.data,
        seed_points,
        refined_points,
        tolerance,
        travel,
        len(pattern),
        pattern.ctypes.data,
        int(probe is not None),
        probe if probe is not None else 0.0,
        draws.ctypes.data,
        len(directions),
        directions.ctypes.data,
        exposed.ctypes.data,
        out.ctypes.data,
    )
    if status != 0:
        raise MemoryError("out of memory in the compiled geometric descriptor kernels")
    return int(out[0]), float(out[1]), exposed if probe is not None else None
