"""The compiled top-k step of the neighbour graph (``graph_kernels.cpp``).

:func:`mofsieve.graphs.neighbour_graph` keeps each atom's nearest pairs with it when it is
available and with numpy otherwise: the same pairs in the same order (the tests hold the two
to identical graphs), the compiled one sorting each atom's few dozen pairs alone instead of
every pair of the crystal twice.

Built like the descriptor kernels (:mod:`mofsieve.native_build`): plain C++ with a C
interface, loaded with :mod:`ctypes`, compiled the first time it is needed with ``$CXX``
(else ``c++``) into the kernel cache. Without a compiler, or with
``MOFSIEVE_GRAPH_KERNELS=0``, numpy does it (said once in the log).
"""

from __future__ import annotations

import ctypes
import logging
from pathlib import Path

import numpy as np

from mofsieve.native_build import CtypesLibrary

SOURCE = Path(__file__).with_name("graph_kernels.cpp")
SWITCH = "MOFSIEVE_GRAPH_KERNELS"
# -ffp-contract=off: d * 1e8 rounds once, as numpy's multiply does before its rint.
_FLAGS = ["-O3", "-std=c++17", "-ffp-contract=off", "-fno-math-errno"]

_ADDRESS = ctypes.c_void_p
_SIGNATURE = [
    ctypes.c_int64,  # pairs
    _ADDRESS,  # centre of each pair (int64)
    _ADDRESS,  # neighbour of each pair (int64)
    _ADDRESS,  # image of each pair (pairs × 3, int64)
    _ADDRESS,  # distance of each pair (float64)
    ctypes.c_int64,  # atoms
    ctypes.c_int64,  # k
    _ADDRESS,  # out: kept pair indices (room for every pair, int64)
    _ADDRESS,  # out: how many were kept (one int64)
]

LIBRARY = CtypesLibrary(
    "mofsieve_graph",
    flags=_FLAGS,
    symbols={"mofsieve_nearest_k": (_SIGNATURE, ctypes.c_int)},
    sources=[SOURCE],
    switch=SWITCH,
    subject="neighbour-graph kernel",
    fallback="numpy keeps the nearest neighbours instead (the same graph, slower)",
    logger=logging.getLogger(__name__),
)

# Build graphs with the numpy implementation inside this block (tests and benchmarks).
switched_off = LIBRARY.switched_off


def kernel() -> ctypes.CDLL | None:
    """The compiled kernel, or None: switched off, or the build failed (logged once)."""
    return LIBRARY.get()


def _int64(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=np.int64)


def nearest_k(
    library: ctypes.CDLL,
    centre: np.ndarray,
    neigh: np.ndarray,
    images: np.ndarray,
    dist: np.ndarray,
    n_atoms: int,
    k: int,
) -> np.ndarray:
    """The indices of the pairs each centre keeps, in the graph's order (see the source)."""
    n_pairs = len(centre)
    if neigh.shape != (n_pairs,) or images.shape != (n_pairs, 3) or dist.shape != (n_pairs,):
        raise ValueError(f"pair arrays of different lengths: {neigh.shape}, {images.shape}, "
                         f"{dist.shape} for {n_pairs} centres")  # fmt: skip
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    centre_, neigh_, images_ = _int64(centre), _int64(neigh), _int64(images)
    dist_ = np.ascontiguousarray(dist, dtype=np.float64)
    kept = np.empty(n_pairs, dtype=np.int64)
    n_kept = np.zeros(1, dtype=np.int64)
    status = library.mofsieve_nearest_k(
        n_pairs,
        centre_.ctypes.data,
        neigh_.ctypes.data,
        images_.ctypes.data,
        dist_.ctypes.data,
        int(n_atoms),
        int(k),
        kept.ctypes.data,
        n_kept.ctypes.data,
    )
    if status == 1:
        raise MemoryError("the neighbour-graph kernel ran out of memory")
    if status != 0:
        raise ValueError(f"a pair's centre outside 0..{n_atoms - 1}")
    return kept[: int(n_kept[0])]
