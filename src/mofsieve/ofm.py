"""Orbital field matrix (OFM) atom descriptors from periodic Voronoi cells: arrays in, arrays out.

The OFM of atom c (Pham et al. 2017; OCrystalNet eq. 1–2) is

.. math::
    X^c = \\sum_k w_k\\, o(c)\\, o(k)^\\top, \\qquad
    w_k = \\frac{\\theta_k / \\theta_{\\max}}{r_k}

over the Voronoi neighbours k of c: :math:`\\theta_k` is the solid angle of the Voronoi face
between c and k as seen from c, :math:`\\theta_{\\max}` the largest of c's faces, :math:`r_k`
the distance to the periodic image of k that owns the face (in Bohr, as matminer), and
:math:`o` the 32-d one-hot of the valence subshells' electron counts (s1, s2, p1…p6,
d1…d10, f1…f14; :func:`valence_onehot`). Since :math:`X^c = o(c) \\otimes s(c)` with
:math:`s(c) = \\sum_k w_k o(k)`, shards store the 32 numbers of s(c)
(:func:`orbital_neighbour_sum`) and the model forms the 1,024-d OFM on its device.

Voronoi cells come from freud-analysis (voro++). freud gives each cell's vertices and a
neighbour list with one entry per face (the vector to the neighbour image behind it), but no
face polygons: a face's vertices are the cell's vertices lying on its bisecting plane, ordered
by angle around their centroid; its solid angle is the sum over the fan of triangles from the
centroid (Van Oosterom & Strackee 1983). Two pitfalls are handled: freud's box has its own
Cartesian frame (it is built from the cell's lengths and angles and only distances are used),
and voro++ drops faces whose computed normal is exactly zero (tiny faces, seen in real MOFs);
an atom whose faces then fall short of 4π gets the missing faces from the convex hull of its
cell's vertices (:func:`_recover_missing_faces`), each face's neighbour found as the atom at
the mirror image of the centre through the face.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

ORBITAL_DIM = 32
_SHELL_OFFSETS = (0, 2, 8, 18)  # s1–s2, p1–p6, d1–d10, f1–f14 within the 32 slots
# matminer's constant (scipy's "Angstrom star" over the Bohr radius), so that OFMs agree.
ANG_TO_BOHR = 1.00001495e-10 / 5.29177210903e-11
_SLIVER = 1e-6  # faces below this share of the largest face's solid angle are ignored
_FULL_SPHERE_TOL = 1e-4  # sr; an atom whose faces sum further from 4π lost faces
_PLANE_TOL = 1e-5  # Å; a vertex this close to a face's plane lies on the face (freud: float32)
_FACE_CHUNK = 20_000  # faces handled at once (memory: chunk × vertices per cell × 3)


@lru_cache(maxsize=1)
def element_table() -> dict[str, np.ndarray]:
    """The packaged per-element table (``elements.npz``; see ``make_element_table.py``)."""
    with resources.files("mofsieve").joinpath("data/elements.npz").open("rb") as fh:
        with np.load(fh) as data:
            return {k: data[k] for k in data.files}


@lru_cache(maxsize=1)
def onehot_table() -> np.ndarray:
    """o(Z) for every atomic number of the table (rows 0…103, 32 columns)."""
    valence = element_table()["valence"]
    table = np.zeros((valence.shape[0], ORBITAL_DIM), dtype=np.float32)
    for l, offset in enumerate(_SHELL_OFFSETS):  # noqa: E741
        count = valence[:, l].astype(np.int64)
        rows = np.nonzero(count)[0]
        table[rows, offset + count[rows] - 1] = 1.0
    return table


def valence_onehot(atomic_number: np.ndarray) -> np.ndarray:
    """o(Z) for each atomic number (N×32 float32): a 1 at each valence subshell's electron
    count, e.g. Zn (3d¹⁰4s²) → s2 and d10, O (2s²2p⁴) → s2 and p4."""
    table = onehot_table()
    z = np.asarray(atomic_number, dtype=np.int64)
    if z.size and (z.min() < 1 or z.max() >= table.shape[0]):
        raise ValueError(
            f"no valence table entry for atomic numbers outside 1–{table.shape[0] - 1}"
        )
    return table[z]


@dataclass
class VoronoiFaces:
    """One row per Voronoi face: ``centre`` sees ``neighbour`` (its image at ``dist`` Å)
    through a face of solid angle ``solid_angle`` (sr)."""

    centre: np.ndarray  # (F,) int64
    neighbour: np.ndarray  # (F,) int64
    dist: np.ndarray  # (F,) float64
    solid_angle: np.ndarray  # (F,) float64


def _freud():
    # freud's import logs which FFT library its (unused here) MSD module picked, at INFO.
    logging.getLogger("freud").setLevel(logging.WARNING)
    import freud

    return freud


def _freud_system(frac_coords: np.ndarray, lattice: np.ndarray):
    freud = _freud()

    lengths = np.linalg.norm(lattice, axis=1)
    a, b, c = lattice

    def angle(u: np.ndarray, v: np.ndarray) -> float:
        return float(np.arccos(np.clip(u @ v / np.linalg.norm(u) / np.linalg.norm(v), -1, 1)))

    box = freud.box.Box.from_box_lengths_and_angles(
        *map(float, lengths), angle(b, c), angle(a, c), angle(a, b)
    )
    frac = np.mod(np.asarray(frac_coords, dtype=np.float64), 1.0)
    return box, box.make_absolute(frac)


def _triangle_solid_angles(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Solid angles of triangles (…×3 corner vectors seen from the origin), Van Oosterom &
    Strackee: tan(Ω/2) = |a·(b×c)| / (abc + (a·b)c + (a·c)b + (b·c)a)."""
    la, lb, lc = (np.linalg.norm(v, axis=-1) for v in (a, b, c))
    numerator = np.abs(np.einsum("...i,...i->...", a, np.cross(b, c)))
    denominator = (
        la * lb * lc
        + np.einsum("...i,...i->...", a, b) * lc
        + np.einsum("...i,...i->...", a, c) * lb
        + np.einsum("...i,...i->...", b, c) * la
    )
    return 2.0 * np.arctan2(numerator, denominator)


def _face_solid_angles(
    cells: np.ndarray, centre: np.ndarray, normal: np.ndarray, offset: np.ndarray
) -> np.ndarray:
    """Solid angle of each face (F,) from its cell's vertices relative to the centre
    (``cells``: N×V×3, NaN-padded; row ``centre[f]`` for face f), the face's unit normal
    (F×3) and its plane's distance from the centre (F,)."""
    n_faces = len(centre)
    face_parts, vertex_parts = [], []
    for s in _chunks(n_faces, _FACE_CHUNK):
        height = np.einsum("fvi,fi->fv", cells[centre[s]], normal[s])
        on = np.abs(height - offset[s, None]) < _PLANE_TOL  # NaN padding compares False
        f, v = np.nonzero(on)
        face_parts.append(f + s.start)
        vertex_parts.append(v)
    face = np.concatenate(face_parts)  # incidences, grouped by face
    points = cells[centre[face], np.concatenate(vertex_parts)]
    count = np.bincount(face, minlength=n_faces)
    start = np.cumsum(count) - count
    centroid = np.zeros((n_faces, 3))
    has = count > 0  # (incidences come grouped by face: sums are segment sums)
    centroid[has] = np.add.reduceat(points, start[has], axis=0) / count[has, None]
    rel = points - centroid[face]
    u = np.zeros((n_faces, 3))
    u[count > 0] = rel[start[count > 0]]
    u /= np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-300)
    w = np.cross(normal, u)
    angle = np.arctan2(np.einsum("ki,ki->k", rel, w[face]), np.einsum("ki,ki->k", rel, u[face]))
    order = np.lexsort((angle, face))  # each face's vertices in turn around it
    slot = np.arange(len(face)) - start[face]
    following = order[start[face] + (slot + 1) % count[face]]
    omega = _triangle_solid_angles(centroid[face], points[order], points[following])
    total = np.bincount(face, weights=omega, minlength=n_faces)
    return np.where(count >= 3, total, 0.0)


def voronoi_faces(frac_coords: np.ndarray, lattice: np.ndarray) -> VoronoiFaces:
    """Every Voronoi face of every atom of the periodic cell, with its solid angle.

    Each atom's solid angles add up to 4π (faces that voro++ drops are recovered)."""
    freud = _freud()

    box, positions = _freud_system(frac_coords, lattice)
    voronoi = freud.locality.Voronoi()
    voronoi.compute((box, positions))
    nlist = voronoi.nlist
    centre = np.asarray(nlist.query_point_indices, dtype=np.int64)
    neighbour = np.asarray(nlist.point_indices, dtype=np.int64)
    vectors = np.asarray(nlist.vectors, dtype=np.float64)
    dist = np.linalg.norm(vectors, axis=1)
    polytopes = voronoi.polytopes
    n = len(positions)
    sizes = np.array([len(p) for p in polytopes])
    cells = np.full((n, int(sizes.max()), 3), np.nan)
    for i, poly in enumerate(polytopes):
        cells[i, : len(poly)] = np.asarray(poly, dtype=np.float64) - positions[i]
    normal = vectors / dist[:, None]
    angles = _face_solid_angles(cells, centre, normal, dist / 2)
    faces = VoronoiFaces(centre, neighbour, dist, angles)
    total = np.bincount(centre, weights=angles, minlength=n)
    short = np.nonzero(np.abs(total - 4 * np.pi) > _FULL_SPHERE_TOL)[0]
    if len(short):
        faces = _recover_missing_faces(faces, short, cells, frac_coords, lattice, box, positions)
    return faces


def _chunks(n: int, size: int) -> list[slice]:
    return [slice(s, min(s + size, n)) for s in range(0, n, size)]


def _recover_missing_faces(
    faces: VoronoiFaces,
    atoms: np.ndarray,
    cells: np.ndarray,
    frac_coords: np.ndarray,
    lattice: np.ndarray,
    box,
    positions: np.ndarray,
) -> VoronoiFaces:
    """Rebuild the faces of ``atoms`` from the convex hull of their cells' vertices.

    Hull facets are grouped by plane; each plane's neighbour image sits at the centre's mirror
    image through it (distance twice the plane's), found among the atoms by fractional
    coordinates. Only atoms whose faces from freud fall short of 4π come here (rare)."""
    from scipy.spatial import ConvexHull

    frac = np.mod(np.asarray(frac_coords, dtype=np.float64), 1.0)
    # freud's frame: rows of the box matrix are its cell vectors, in the order of lattice's.
    box_rows = np.asarray(box.to_matrix(), dtype=np.float64).T
    inverse = np.linalg.inv(box_rows)
    keep = ~np.isin(faces.centre, atoms)
    parts = [(faces.centre[keep], faces.neighbour[keep], faces.dist[keep],
              faces.solid_angle[keep])]  # fmt: skip
    for atom in atoms:
        vertices = cells[atom][~np.isnan(cells[atom][:, 0])]
        hull = ConvexHull(vertices)
        eq = hull.equations  # n·x + d = 0, outward n, d < 0 (the centre is inside)
        plane = np.unique(np.round(eq, 5), axis=0, return_inverse=True)[1].reshape(-1)
        tri = vertices[hull.simplices]
        omega = _triangle_solid_angles(tri[:, 0], tri[:, 1], tri[:, 2])
        n_planes = int(plane.max()) + 1
        theta = np.bincount(plane, weights=omega, minlength=n_planes)
        first = np.zeros(n_planes, dtype=np.int64)
        first[plane[::-1]] = np.arange(len(plane))[::-1]
        normal, depth = eq[first, :3], -eq[first, 3]
        image = positions[atom] + 2 * depth[:, None] * normal
        image_frac = image @ inverse
        delta = image_frac[:, None, :] - frac[None, :, :] + 0.5  # freud's origin is the centre
        delta -= np.rint(delta)
        neighbour = np.argmin(np.linalg.norm(delta @ box_rows, axis=-1), axis=1)
        parts.append((np.full(n_planes, atom), neighbour, 2 * depth, theta))
    centre, neighbour, dist, angle = (np.concatenate(x) for x in zip(*parts, strict=True))
    order = np.argsort(centre, kind="stable")
    return VoronoiFaces(centre[order], neighbour[order], dist[order], angle[order])


def orbital_neighbour_sum(
    atomic_number: np.ndarray, frac_coords: np.ndarray, lattice: np.ndarray
) -> np.ndarray:
    """s(c) = Σ_k (θ_k/θ_max) / r_k · o(k) over the Voronoi faces of each atom (N×32 float32,
    r in Bohr): what a shard stores for the OFM (:math:`X^c = o(c) \\otimes s(c)`)."""
    faces = voronoi_faces(frac_coords, lattice)  # rows grouped by centre
    n = len(atomic_number)
    count = np.bincount(faces.centre, minlength=n)
    has = count > 0
    start = (np.cumsum(count) - count)[has]
    theta_max = np.ones(n)
    theta_max[has] = np.maximum.reduceat(faces.solid_angle, start)
    share = faces.solid_angle / theta_max[faces.centre]
    weight = np.where(share >= _SLIVER, share / (faces.dist * ANG_TO_BOHR), 0.0)
    onehot = valence_onehot(atomic_number).astype(np.float64)
    out = np.zeros((n, ORBITAL_DIM))
    out[has] = np.add.reduceat(weight[:, None] * onehot[faces.neighbour], start, axis=0)
    return out.astype(np.float32)


def orbital_field_matrix(atomic_number: np.ndarray, neighbour_sum: np.ndarray) -> np.ndarray:
    """X^c = o(c) ⊗ s(c) for every atom (N×32×32): row = the centre's orbital."""
    onehot = valence_onehot(atomic_number)
    return onehot[:, :, None] * np.asarray(neighbour_sum)[:, None, :]
