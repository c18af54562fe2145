"""Periodic nearest-neighbour crystal graphs: arrays in, arrays out.

Each atom's ``max_neighbors`` nearest neighbours within ``cutoff`` over all periodic images
(CGCNN convention), as a multigraph: the same neighbour atom may appear through several
images. An atom with fewer neighbours in range simply has fewer edges; nothing is padded.

The pair search is pymatgen's compiled cell-list search (``find_points_in_spheres``, the
engine of ``Structure.get_neighbor_list``). The top-k step is one vectorised sort with a
fixed tie-break: distance (rounded to 1e-8 Å so that floating-point noise cannot decide),
then neighbour index, then image. About 7 % of MOF atoms tie between their 12th and 13th
neighbour, so without it graphs would not be reproducible. The compiled kernel of
:mod:`mofsieve.graph_native` sorts each atom's pairs alone in that order (numpy's two sorts
over every pair where it cannot be built: the same graph).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pymatgen.optimization.neighbors import find_points_in_spheres

from mofsieve import graph_native

# Measured on CoRE MOF 2019: 98.8 % of atoms have their 12th neighbour within 4.5 Å and
# 99.99 % within 6 Å. Searching growing shells, each only for the atoms still short of
# neighbours, gives the same graph far cheaper (pair count grows with the cube of the radius).
_SHELLS = (4.5, 6.0)
_TIE_DECIMALS = 8


@dataclass
class NeighbourGraph:
    """Edges from neighbour ``src`` to centre ``dst`` (PyG message direction)."""

    src: np.ndarray  # (E,) int32
    dst: np.ndarray  # (E,) int32
    dist: np.ndarray  # (E,) float64, Å
    image: np.ndarray  # (E, 3) int8, periodic image of src


def _pairs(cart: np.ndarray, centres: np.ndarray, lattice: np.ndarray, radius: float):
    centre_idx, neigh_idx, images, dist = find_points_in_spheres(
        cart,
        np.ascontiguousarray(cart[centres]),
        r=float(radius),
        pbc=np.ones(3, dtype=np.int64),
        lattice=lattice,
        tol=1e-8,
    )
    centre_idx = centres[centre_idx]
    images = np.rint(images).astype(np.int64)
    # The search returns each atom as its own neighbour at distance 0 through image (0,0,0).
    self_pair = (centre_idx == neigh_idx) & ~images.any(axis=1)
    keep = ~self_pair
    return centre_idx[keep], neigh_idx[keep], images[keep], dist[keep]


def _nearest_k(centre, neigh, images, dist, k: int, n_atoms: int):
    library = graph_native.kernel()
    if library is not None:
        kept = graph_native.nearest_k(library, centre, neigh, images, dist, n_atoms, k)
        return centre[kept], neigh[kept], images[kept], dist[kept]
    rounded = np.round(dist, _TIE_DECIMALS)
    # Cheap pass: one float sort finds each centre's k-th smallest distance, and only pairs
    # not beyond it (about k per centre, ties included) go through the full tie-break sort.
    by_distance = np.argsort(centre * 16.0 + rounded / 16.0, kind="stable")
    sorted_centre = centre[by_distance]
    starts = np.searchsorted(sorted_centre, sorted_centre, side="left")
    ends = np.searchsorted(sorted_centre, sorted_centre, side="right")
    threshold = np.empty_like(rounded)
    threshold[by_distance] = rounded[by_distance[np.minimum(starts + k - 1, ends - 1)]]
    candidate = rounded <= threshold
    centre, neigh, images, rounded, dist = (
        a[candidate] for a in (centre, neigh, images, rounded, dist)
    )
    order = np.lexsort((images[:, 2], images[:, 1], images[:, 0], neigh, rounded, centre))
    centre, neigh, images, dist = centre[order], neigh[order], images[order], dist[order]
    rank = np.arange(len(centre)) - np.searchsorted(centre, centre, side="left")
    keep = rank < k
    return centre[keep], neigh[keep], images[keep], dist[keep]


def neighbour_graph(
    frac_coords: np.ndarray,
    lattice: np.ndarray,
    cutoff: float = 8.0,
    max_neighbors: int = 12,
) -> NeighbourGraph:
    """The ``max_neighbors``-nearest-neighbour multigraph within ``cutoff`` Å under PBC.

    Edges are ordered by centre, then by the tie-break above, so the result is deterministic.
    """
    lattice = np.ascontiguousarray(lattice, dtype=np.float64)
    cart = np.ascontiguousarray(np.asarray(frac_coords, dtype=np.float64) @ lattice)
    n_atoms = cart.shape[0]
    all_centres = np.arange(n_atoms, dtype=np.int64)
    radii = [r for r in _SHELLS if r < cutoff] + [cutoff]
    centre, neigh, images, dist = _pairs(cart, all_centres, lattice, radii[0])
    for radius in radii[1:]:
        counts = np.bincount(centre, minlength=n_atoms)
        short = all_centres[counts < max_neighbors]
        if not len(short):
            break
        # Atoms without k neighbours so far: search them again in the larger shell.
        keep = np.isin(centre, short, invert=True)
        more = _pairs(cart, short, lattice, radius)
        centre, neigh, images, dist = (
            np.concatenate([a[keep], b])
            for a, b in zip((centre, neigh, images, dist), more, strict=True)
        )
    centre, neigh, images, dist = _nearest_k(centre, neigh, images, dist, max_neighbors, n_atoms)
    return NeighbourGraph(
        src=neigh.astype(np.int32),
        dst=centre.astype(np.int32),
        dist=dist.astype(np.float64),
        image=images.astype(np.int8),
    )
