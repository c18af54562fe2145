"""Periodic nearest-neighbour crystal graphs: arrays in, arrays out.

Each atom's ``max_neighbors`` nearest neighbours within ``cutoff`` over all periodic images
(CGCNN convention), as a multigraph: the same neighbour atom may appear through several
images. An atom with fewer neighbours in range simply has fewer edges; nothing is padded.

The pair search is pymatgen's compiled cell-list search (``find_points_in_spheres``, the
engine of ``Structure.get_neighbor_list``). The top-k step is one vectorised sort with a
fixed tie-break: distance (rounded to 1e-8 Å so that floating-point noise cannot decide),
then neighbour index, then image. About 7 % of MOF atoms tie between their 12th and 13th
neighbour, so without it graphs would not be reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pymatgen.optimization.neighbors import find_points_in_spheres

# Most MOF atoms have 12 neighbours well inside 6 Å; searching that shell first and the full
# cutoff only for the atoms still short of neighbours gives the same graph far cheaper
# (pair count grows with the cube of the radius).
_FIRST_SHELL = 6.0
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


def _nearest_k(centre, neigh, images, dist, k: int):
    order = np.lexsort(
        (images[:, 2], images[:, 1], images[:, 0], neigh, np.round(dist, _TIE_DECIMALS), centre)
    )
    centre, neigh, images, dist = centre[order], neigh[order], images[order], dist[order]
    starts = np.searchsorted(centre, centre, side="left")
    rank = np.arange(len(centre)) - starts
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
    first_radius = min(_FIRST_SHELL, cutoff)
    centre, neigh, images, dist = _pairs(cart, all_centres, lattice, first_radius)
    if first_radius < cutoff:
        counts = np.bincount(centre, minlength=n_atoms)
        short = all_centres[counts < max_neighbors]
        if len(short):
            # Atoms without k neighbours in the first shell: search them again to the cutoff.
            keep = np.isin(centre, short, invert=True)
            more = _pairs(cart, short, lattice, cutoff)
            centre, neigh, images, dist = (
                np.concatenate([a[keep], b])
                for a, b in zip((centre, neigh, images, dist), more, strict=True)
            )
    centre, neigh, images, dist = _nearest_k(centre, neigh, images, dist, max_neighbors)
    return NeighbourGraph(
        src=neigh.astype(np.int32),
        dst=centre.astype(np.int32),
        dist=dist.astype(np.float64),
        image=images.astype(np.int8),
    )
