"""Frameworks that are the same structure: one key per MOF when it is featurized, groups when
the MOFs are ranked.

A structure database holds the same framework several times: refinements of one compound
(``KEJQAR`` and ``KEJQAR01``), the same host with different guests removed, a temperature
series. They predict alike and would each cost a GCMC run. Two MOFs are the same framework
when all of these agree (:func:`same_framework`):

* ``formula``: the Hill formula of the unit cell, every atom counted (so also the cell's
  size: a refinement in a doubled cell is not recognised);
* ``bond_graph``: a Weisfeiler–Lehman hash of the element-labelled bond graph (the bonds of
  :mod:`mofsieve.checks`, periodic images ignored): each atom's colour is refined
  :data:`WL_ROUNDS` times by the multiset of its bonded neighbours' colours and the multiset
  of final colours is hashed. It depends on which atoms are bonded, not on distances or on
  the order of atoms in the file;
* within :data:`TOLERANCE` (relative), each of: the cell volume; the three lengths of the
  Minkowski-reduced cell (the shortest lattice vectors, whatever cell the CIF chose); and
  the *anchor distances*: for k = 1…:data:`N_ANCHOR_DISTANCES`, the mean over the metal
  atoms (the heaviest element where there is no metal) of the distance to their k-th
  nearest metal atom (an average-minimum-distance invariant of the metal sublattice,
  Widdowson et al. 2022). Local bonding and the cell cannot tell apart two arrangements of
  the same building units in nearly the same cell (PEXBIF and GISMIG of CoRE MOF 2019:
  same formula, bonds and cell within 0.5 %, Cd–Cd distances 6.95/7.85 Å against
  6.69/8.35 Å); the anchor distances do.

Grouping (:func:`duplicate_of`) walks the MOFs best first: a MOF is a duplicate of the first
better MOF that leads a group and is the same framework as it, else it leads a group of its
own. Every member is thus within the tolerance of its leader, which is the best-ranked one.

The featurizer writes each shard's keys to ``frameworks-KKKKK.csv`` beside its failures and
warnings (:data:`FRAMEWORK_COLUMNS`); ``mofsieve rank`` reads them. This module is the one
reader and writer of that format.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mofsieve.atomic import write_csv_atomic

FRAMEWORK_COLUMNS = ("mof_id", "formula", "bond_graph", "volume_A3", "cell_A", "anchor_A")
TOLERANCE = 0.02  # relative, on volume, reduced cell lengths and anchor distances
WL_ROUNDS = 4
N_ANCHOR_DISTANCES = 8
# Anchor neighbours are searched in growing shells, each for the anchors still short of
# N_ANCHOR_DISTANCES (CoRE MOF 2019-ASR: half of the MOFs have all within 10 Å, 99 % within
# 16 Å, all within 25 Å); beyond the last shell a distance is missing (NaN), and two keys
# agree only if the same distances are missing.
_ANCHOR_SHELLS = (10.0, 16.0, 25.0)


class FrameworkFileError(ValueError):
    """A file that is not a framework key file (missing columns, unreadable numbers)."""


@dataclass(frozen=True)
class FrameworkKey:
    """What decides whether two MOFs are the same framework (see the module docstring)."""

    mof_id: str
    formula: str
    bond_graph: str  # 16 hex digits
    volume: float  # Å³, of the cell as given
    cell: tuple[float, float, float]  # Å, Minkowski-reduced cell lengths, ascending
    anchor: tuple[float, ...]  # Å, N_ANCHOR_DISTANCES mean k-th anchor distances (NaN: none)


# ---------------------------------------------------------------------------------------------
# the key of one structure


def framework_key(
    mof_id: str,
    atomic_number: np.ndarray,
    frac_coords: np.ndarray,
    lattice: np.ndarray,
    bond_a: np.ndarray,
    bond_b: np.ndarray,
) -> FrameworkKey:
    """The key of one crystal whose bonds join atoms ``bond_a[i]`` and ``bond_b[i]`` (both
    directions listed, as :class:`mofsieve.checks.Bonds` holds them)."""
    from ase.geometry import minkowski_reduce

    from mofsieve.checks import hill_formula

    z = np.asarray(atomic_number, dtype=np.int64)
    lattice = np.asarray(lattice, dtype=np.float64)
    reduced, _ = minkowski_reduce(lattice)
    a, b, c = (float(x) for x in np.sort(np.linalg.norm(reduced, axis=1)))
    return FrameworkKey(
        mof_id=mof_id,
        formula=hill_formula(z),
        bond_graph=bond_graph_hash(z, bond_a, bond_b),
        volume=float(abs(np.linalg.det(lattice))),
        cell=(a, b, c),
        anchor=anchor_distances(z, frac_coords, lattice),
    )


_MIX_ADD = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
_SELF = np.uint64(0x2545F4914F6CDD1D)


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser, element-wise: a fixed, platform-independent 64-bit hash."""
    x = np.asarray(x, dtype=np.uint64) + _MIX_ADD
    x = (x ^ (x >> np.uint64(30))) * _MIX_1
    x = (x ^ (x >> np.uint64(27))) * _MIX_2
    return x ^ (x >> np.uint64(31))


def bond_graph_hash(atomic_number: np.ndarray, bond_a: np.ndarray, bond_b: np.ndarray) -> str:
    """Weisfeiler–Lehman hash of the element-labelled bond graph, as 16 hex digits.

    Sums of hashed colours stand for multisets (a neighbourhood, the whole crystal), so
    neither the order of atoms nor that of bonds matters; uint64 arithmetic wraps.
    """
    z = np.asarray(atomic_number, dtype=np.uint64)
    a = np.asarray(bond_a, dtype=np.int64)
    b = np.asarray(bond_b, dtype=np.int64)
    colour = _mix(z)
    for _ in range(WL_ROUNDS):
        around = np.zeros(len(z), dtype=np.uint64)
        np.add.at(around, a, _mix(colour[b] ^ _SELF))
        colour = _mix(colour * _SELF ^ around)
    total = _mix(colour).sum(dtype=np.uint64)
    return f"{int(total):016x}"


def anchor_distances(
    atomic_number: np.ndarray, frac_coords: np.ndarray, lattice: np.ndarray
) -> tuple[float, ...]:
    """For k = 1…N_ANCHOR_DISTANCES: the mean over anchor atoms (the metals, else the atoms
    of the heaviest element) of the distance to their k-th nearest anchor, periodic images
    included; NaN where some anchor has fewer than k within the last shell."""
    from pymatgen.optimization.neighbors import find_points_in_spheres

    from mofsieve.checks import METAL

    z = np.asarray(atomic_number, dtype=np.int64)
    anchors = METAL[z] if METAL[z].any() else z == z.max()
    lattice = np.ascontiguousarray(lattice, dtype=np.float64)
    cart = np.ascontiguousarray(np.asarray(frac_coords, dtype=np.float64)[anchors] @ lattice)
    n, k = len(cart), N_ANCHOR_DISTANCES
    nearest = np.full((n, k), np.nan)
    todo = np.arange(n)
    for radius in _ANCHOR_SHELLS:
        centre, _, image, dist = find_points_in_spheres(
            cart, np.ascontiguousarray(cart[todo]), r=radius,
            pbc=np.ones(3, dtype=np.int64), lattice=lattice, tol=1e-8,
        )  # fmt: skip
        keep = dist > 1e-8  # not the anchor itself
        centre, dist = todo[centre[keep]], dist[keep]
        order = np.lexsort((dist, centre))
        centre, dist = centre[order], dist[order]
        rank = np.arange(len(centre)) - np.searchsorted(centre, centre, side="left")
        within = rank < k
        nearest[centre[within], rank[within]] = dist[within]
        todo = todo[np.isnan(nearest[todo, -1])]
        if not len(todo):
            break
    return tuple(float(x) for x in nearest.mean(axis=0))


# ---------------------------------------------------------------------------------------------
# comparing and grouping


def _close(x: Sequence[float], y: Sequence[float], tolerance: float) -> bool:
    """Every pair within ``tolerance`` relative to the larger; NaN only against NaN."""
    for u, v in zip(x, y, strict=True):
        if math.isnan(u) or math.isnan(v):
            if not (math.isnan(u) and math.isnan(v)):
                return False
        elif abs(u - v) > tolerance * max(abs(u), abs(v)):
            return False
    return True


def same_framework(a: FrameworkKey, b: FrameworkKey, tolerance: float = TOLERANCE) -> bool:
    """Whether two keys are the same framework (the module docstring says how it decides)."""
    return (
        a.formula == b.formula
        and a.bond_graph == b.bond_graph
        and _close((a.volume, *a.cell), (b.volume, *b.cell), tolerance)
        and _close(a.anchor, b.anchor, tolerance)
    )


def duplicate_of(
    ranked_ids: Iterable[str], keys: dict[str, FrameworkKey], tolerance: float = TOLERANCE
) -> dict[str, str]:
    """``{mof_id: leader}`` for every MOF that duplicates a better one (``ranked_ids`` is best
    first); group leaders and MOFs without a key are not in it."""
    leaders: dict[tuple[str, str], list[FrameworkKey]] = {}
    out: dict[str, str] = {}
    for mof_id in ranked_ids:
        key = keys.get(mof_id)
        if key is None:
            continue
        bucket = leaders.setdefault((key.formula, key.bond_graph), [])
        leader = next((lead for lead in bucket if same_framework(key, lead, tolerance)), None)
        if leader is None:
            bucket.append(key)
        else:
            out[mof_id] = leader.mof_id
    return out


# ---------------------------------------------------------------------------------------------
# frameworks-KKKKK.csv


def _numbers(values: Iterable[float]) -> str:
    return " ".join(f"{v:.4f}" for v in values)


def write_framework_keys(keys: Iterable[FrameworkKey], path: str | os.PathLike[str]) -> Path:
    """Write keys to ``path`` atomically, in the order given; returns ``path``."""
    rows = (
        (k.mof_id, k.formula, k.bond_graph, f"{k.volume:.4f}", _numbers(k.cell),
         _numbers(k.anchor))
        for k in keys
    )  # fmt: skip
    return write_csv_atomic(path, FRAMEWORK_COLUMNS, rows)


def read_framework_keys(path: str | os.PathLike[str]) -> list[FrameworkKey]:
    """The keys of one file; :class:`FrameworkFileError` naming it and the row when the
    columns or numbers are wrong. Extra columns are ignored."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in FRAMEWORK_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise FrameworkFileError(
                f"{path} is not a mofsieve framework key file (missing columns {missing})"
            )
        out = []
        for line, row in enumerate(reader, start=2):
            try:
                cell = [float(x) for x in row["cell_A"].split()]
                anchor = tuple(float(x) for x in row["anchor_A"].split())
                if len(cell) != 3 or len(anchor) != N_ANCHOR_DISTANCES:
                    raise ValueError(f"{len(cell)} cell lengths, {len(anchor)} anchor distances")
                out.append(
                    FrameworkKey(row["mof_id"], row["formula"], row["bond_graph"],
                                 float(row["volume_A3"]), (cell[0], cell[1], cell[2]), anchor)
                )  # fmt: skip
            except (TypeError, ValueError) as err:
                raise FrameworkFileError(f"{path} line {line}: {err}") from None
        return out
