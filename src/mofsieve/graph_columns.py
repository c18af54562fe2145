"""Optional graph columns: what OCrystalNet needs beyond the 12-nearest-neighbour graph.

A shard's featurization parameters list the optional columns it holds
(:attr:`FeaturizationParams.columns`); a model lists the ones it needs, and a shard with more
serves it too. The nearest-neighbour edges themselves are never changed by a column, so
AE-CGCNN reads a shard with columns exactly as one without.

``reverse_edges``
    Communicative message passing needs every directed edge's reverse, but the k-nearest-
    neighbour relation is not symmetric: in CoRE MOF 12-NN graphs 12.7 % of the edges j→i
    have no i→j. The graph is symmetrised by union: for every edge j→i (image m of j) whose
    reverse i→j (image −m of i) is missing, that reverse is added, with the same distance.
    The added edges are stored apart (``extra_edge_*``, sorted by centre, neighbour, image),
    and ``edge_reverse`` gives, for every edge of the nearest-neighbour edges followed by the
    added ones, the position of its reverse in that same list. Union costs ~1.11× the edges.
``orbital_neighbour_sum``
    s(c) (N×32), from which the model forms each atom's orbital field matrix
    (:mod:`mofsieve.ofm`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

REVERSE_EDGES = "reverse_edges"
ORBITAL_NEIGHBOUR_SUM = "orbital_neighbour_sum"
COLUMNS = (REVERSE_EDGES, ORBITAL_NEIGHBOUR_SUM)


def check_columns(columns: Sequence[str]) -> tuple[str, ...]:
    """``columns`` in the canonical order, or ValueError naming the unknown one."""
    unknown = [c for c in columns if c not in COLUMNS]
    if unknown:
        raise ValueError(f"unknown graph column(s) {unknown}; known: {list(COLUMNS)}")
    return tuple(c for c in COLUMNS if c in columns)


@dataclass
class ReverseEdges:
    """The edges added to make the graph symmetric, and every edge's reverse."""

    src: np.ndarray  # (E',) int32
    dst: np.ndarray  # (E',) int32
    dist: np.ndarray  # (E',) float32
    image: np.ndarray  # (E', 3) int8
    reverse: np.ndarray  # (E + E',) int32, into [nearest-neighbour edges; added edges]


def _edge_keys(src: np.ndarray, dst: np.ndarray, image: np.ndarray, n: int) -> np.ndarray:
    """One int64 per directed edge (centre, neighbour, image): equal keys, equal edges."""
    img = (np.asarray(image, np.int64) + 128) & 0xFF
    packed = (img[:, 0] << 16) | (img[:, 1] << 8) | img[:, 2]
    return ((np.asarray(dst, np.int64) * n + np.asarray(src, np.int64)) << 24) | packed


def reverse_edges(
    src: np.ndarray, dst: np.ndarray, dist: np.ndarray, image: np.ndarray, n_atoms: int
) -> ReverseEdges:
    """Symmetrise the graph ``src → dst`` (``image`` of src) by union; see the module docstring."""
    image = np.asarray(image, dtype=np.int8)
    keys = _edge_keys(src, dst, image, n_atoms)
    reverse_keys = _edge_keys(dst, src, -image.astype(np.int64), n_atoms)
    missing = ~np.isin(reverse_keys, keys)
    # One added edge per missing reverse, in a fixed order (by key: centre, neighbour, image).
    order = np.argsort(reverse_keys[missing], kind="stable")
    added = np.nonzero(missing)[0][order]
    extra = ReverseEdges(
        src=np.asarray(dst, np.int32)[added],
        dst=np.asarray(src, np.int32)[added],
        dist=np.asarray(dist, np.float32)[added],
        image=(-image[added].astype(np.int64)).astype(np.int8),
        reverse=np.zeros(0, np.int32),
    )
    all_keys = np.concatenate([keys, reverse_keys[added]])
    all_reverse_keys = np.concatenate([reverse_keys, keys[added]])
    by_key = np.argsort(all_keys, kind="stable")
    position = np.searchsorted(all_keys[by_key], all_reverse_keys)
    extra.reverse = by_key[position].astype(np.int32)
    return extra


def compute_columns(
    columns: Sequence[str],
    atomic_number: np.ndarray,
    frac_coords: np.ndarray,
    lattice: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    dist: np.ndarray,
    image: np.ndarray,
) -> dict[str, np.ndarray]:
    """The :class:`~mofsieve.store.CrystalGraph` fields of the optional ``columns``."""
    out: dict[str, np.ndarray] = {}
    if REVERSE_EDGES in columns:
        rev = reverse_edges(src, dst, dist, image, len(atomic_number))
        out |= {
            "extra_edge_src": rev.src,
            "extra_edge_dst": rev.dst,
            "extra_edge_dist": rev.dist,
            "extra_edge_image": rev.image,
            "edge_reverse": rev.reverse,
        }
    if ORBITAL_NEIGHBOUR_SUM in columns:
        from mofsieve.ofm import orbital_neighbour_sum

        out["orbital_neighbour_sum"] = orbital_neighbour_sum(atomic_number, frac_coords, lattice)
    return out
