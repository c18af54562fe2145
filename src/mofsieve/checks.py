"""Structure checks: what makes a crystal suspicious but not unusable, and under which name.

A structure that cannot be used at all is a failure (:mod:`mofsieve.failures`); one that is
kept but odd gets warnings (:mod:`mofsieve.warning_records`), each under a check name of
:data:`CHECKS`. The bond checks here read the crystal graph the featurizer builds anyway
(each atom's 12 nearest neighbours over periodic images): no second neighbour search.

Bonds. Atoms i and j are bonded when ``d_ij ≤ r_i + r_j + 0.4 Å`` with the covalent radii of
Cordero et al. (2008, ``ase.data.covalent_radii``), the criterion of the Cambridge
Structural Database, and ``+ 0.6 Å`` when either is a metal. Measured on CoRE MOF 2019
(README, ``bench/checks.py``): 0.3 Å misses long metal–ligand bonds (K–O 3.1 Å, Ag–O 2.7 Å,
Jahn–Teller Cu–O: more "isolated" atoms and molecules), 0.5 Å counts strong hydrogen bonds
(O–H···O 1.45 Å) as bonds and so H atoms as over-bonded. Bonds are looked for among each
atom's graph neighbours in both directions; no real structure has 12 atoms closer to an
atom than one it is bonded to. ``coordination`` counts non-metal partners only: η-bonded
carbons and the H of metal-bound water are not faults.

Framework. Following bonds around a cycle that ends in a translated copy of its start (a
nonzero sum of periodic images) means the component extends through the crystal: it is the
framework (interpenetrated nets are several such components). Components that close on
themselves are finite. When nothing extends (a crystal of discrete cages or complexes), the
largest components are taken as the framework.

Ions. A finite component is a charge-balancing ion rather than a stray when its chemistry
says so (:func:`is_ion_by_chemistry`): an alkali, alkaline-earth or halide atom; an
ammonium or phosphonium (N or P bonded to four non-metal atoms); an amine (only C, H, N, no
nitrile, and either no ring or every C–N bond ≥ 1.42 Å: a protonated amine whose N–H were
not located, such as the dimethylammonium of DMF's hydrolysis; pyridines and
phenanthrolines stay neutral); a borate (B with four bonds); an oxo or fluoro anion or
polyoxometalate (no H, at least three O/F, no bond between two other non-metals: NO3, ClO4,
SO4, BF4, PF6, SiF6, PW12O40, …); a carboxylate, sulfonate or phosphonate (a C with two, an S
or P with three terminal O); one of :data:`KNOWN_IONS`; and, in a CIF without partial
charges, any metal complex ([Mg(H2O)6]2+, [CdCl4]2-, [Fe(L)Cl2]+: a discrete complex in a
MOF crystal is nearly always a counter-ion). With partial charges, any component whose
charges sum to at least :data:`ION_CHARGE` e, opposite in sign to the rest of the crystal,
is an ion (complex ions in the charged CoRE copies carry 0.18–0.52 e).
Ions raise no warning: they belong in the structure and in a GCMC simulation of it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from ase.data import chemical_symbols, covalent_radii
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import breadth_first_order, connected_components

from mofsieve.warning_records import (
    CHECKS,
    COORDINATION,
    ENCODING,
    ISOLATED_ATOM,
    ISOLATED_MOLECULE,
    OCCUPANCY,
)

__all__ = ["CHECKS", "COORDINATION", "ENCODING", "ISOLATED_ATOM", "ISOLATED_MOLECULE",
           "OCCUPANCY", "bond_checks", "find_bonds", "finite_components",
           "periodic_components"]  # fmt: skip

BOND_TOLERANCE = 0.4  # Å added to the sum of covalent radii (CSD criterion)
METAL_BOND_TOLERANCE = 0.6  # Å, for bonds to a metal (Jahn–Teller Cu–O, Ag–O, K–O run long)
ION_CHARGE = 0.15  # e: |net partial charge| from which a finite component is an ion
MAX_NON_METAL_BONDS = {6: 4, 1: 1}  # C, H

_NON_METALS = (1, 2, 5, 6, 7, 8, 9, 10, 14, 15, 16, 17, 18, 33, 34, 35, 36, 52, 53, 54, 85, 86)
METAL = np.ones(119, dtype=bool)
METAL[[0, *_NON_METALS]] = False
# alone, these are ions: alkali and alkaline-earth metals, halogens
_MONATOMIC_IONS = frozenset({3, 11, 19, 37, 55, 4, 12, 20, 38, 56, 9, 17, 35, 53})
_O_OR_F = np.zeros(119, dtype=bool)
_O_OR_F[[8, 9]] = True
_C_N_AMINE = 1.42  # Å: shorter C–N bonds are aromatic or amide, unless the molecule has no ring
_C_N_TRIPLE = 1.25  # Å: shorter C–N bonds are nitriles
# Hill formulas of counter-ions the structural rules do not recognise
KNOWN_IONS = frozenset(
    {
        "HO", "H3O", "H5O2",  # hydroxide, oxonium, Zundel cation
        "CN", "CNO", "CNS", "CNSe", "N3", "NO2",  # pseudohalides, azide, nitrite
        "C4O4",  # squarate
        "C2H6N",  # dimethylammonium with its N–H not located (isolated N bonded to 2 C)
        "C3H3N2",  # imidazolate
        "C6H11N2", "C8H15N2",  # 1-ethyl- and 1-butyl-3-methylimidazolium
        "C12H14N2",  # methyl viologen
    }
)  # fmt: skip


@dataclass(frozen=True)
class Bonds:
    """Bonds as directed pairs ``(a, b, t)``: atom ``b`` shifted by image ``t`` bonds to ``a``.

    Every bond appears in both directions, each distinct bond once.
    """

    a: np.ndarray
    b: np.ndarray
    t: np.ndarray  # (n_bonds, 3) int64
    d: np.ndarray  # Å

    def count(self, n_atoms: int, mask: np.ndarray | None = None) -> np.ndarray:
        """Bonds of each atom (only those whose partner ``b`` is in ``mask``, if given)."""
        a = self.a if mask is None else self.a[mask[self.b]]
        return np.bincount(a, minlength=n_atoms)


def find_bonds(
    atomic_number: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    dist: np.ndarray,
    image: np.ndarray,
    tolerance: float = BOND_TOLERANCE,
    metal_tolerance: float = METAL_BOND_TOLERANCE,
) -> Bonds:
    """The graph edges that are bonds (``d ≤ r_i + r_j + tolerance``, ``metal_tolerance``
    where either atom is a metal)."""
    z = np.asarray(atomic_number, dtype=np.int64)
    radius = covalent_radii[z]
    src = np.asarray(src, dtype=np.int64)
    dst = np.asarray(dst, dtype=np.int64)
    slack = np.where(METAL[z[src]] | METAL[z[dst]], metal_tolerance, tolerance)
    bonded = np.asarray(dist) <= radius[src] + radius[dst] + slack
    a, b = dst[bonded], src[bonded]
    t = np.asarray(image, dtype=np.int64).reshape(-1, 3)[bonded]
    d = np.asarray(dist, dtype=np.float64)[bonded]
    # both directions; a pair the graph holds twice (each atom in the other's 12) once
    rows, first = np.unique(
        np.column_stack([np.concatenate([a, b]), np.concatenate([b, a]), np.concatenate([t, -t])]),
        axis=0,
        return_index=True,
    )
    return Bonds(a=rows[:, 0], b=rows[:, 1], t=rows[:, 2:], d=np.concatenate([d, d])[first])


def periodic_components(n_atoms: int, bonds: Bonds) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, periodic)``: each atom's component and whether that component extends
    through the crystal (a bond cycle that ends in a translated copy of its start)."""
    a, b, t = bonds.a, bonds.b, bonds.t
    adjacency = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n_atoms, n_atoms))
    n_comp, labels = connected_components(adjacency.tocsr(), directed=False)
    offsets = _unwrapped_offsets(n_atoms, labels, bonds)
    mismatch = (offsets[b] - offsets[a] - t).any(axis=1)
    periodic = np.zeros(n_comp, dtype=bool)
    periodic[labels[a[mismatch]]] = True
    return labels, periodic


def _unwrapped_offsets(n: int, labels: np.ndarray, bonds: Bonds) -> np.ndarray:
    """Each atom's periodic image along a breadth-first spanning tree of its component.

    One search from an extra node joined to one root per component reaches every atom; the
    images are then summed root-wards by pointer doubling (log₂ of the depth numpy passes).
    """
    a, b, t = bonds.a, bonds.b, bonds.t
    roots = np.unique(labels, return_index=True)[1]
    rows = np.concatenate([a, np.full(len(roots), n)])
    cols = np.concatenate([b, roots])
    tree = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n + 1, n + 1))
    _, pred = breadth_first_order(tree.tocsr(), n, directed=True, return_predecessors=True)
    parent = pred[:n].astype(np.int64)
    is_root = parent == n
    parent[is_root] = np.flatnonzero(is_root)
    step = np.zeros((n, 3), dtype=np.int64)
    if len(a):  # the image of one bond parent → atom; any does, the mismatch test reads all
        keys = a * n + b  # sorted: bonds are unique rows sorted by (a, b, t)
        where = np.minimum(np.searchsorted(keys, parent * n + np.arange(n)), len(keys) - 1)
        step = np.where(is_root[:, None], 0, t[where])
    while True:
        grand = parent[parent]
        if (grand == parent).all():
            return step
        step = step + step[parent]
        parent = grand


def hill_formula(atomic_number: np.ndarray) -> str:
    """C first, H second, then alphabetical (Hill); without carbon, all alphabetical."""
    counts = Counter(chemical_symbols[int(z)] for z in atomic_number)
    first = [s for s in ("C", "H") if s in counts] if "C" in counts else []
    order = first + sorted(s for s in counts if s not in first)
    return "".join(f"{s}{counts[s] if counts[s] > 1 else ''}" for s in order)


@dataclass(frozen=True)
class _Context:
    """Per-atom facts the ion rules read."""

    z: np.ndarray
    n_bonds: np.ndarray  # bonds to non-metal atoms
    bonded_to_non_o_f: np.ndarray  # has a bond to a non-metal that is neither O nor F
    terminal_o: np.ndarray  # bonds to terminal O (an O bonded to nothing else)
    short_c_n: np.ndarray  # has a C–N bond shorter than an amine's
    triple_c_n: np.ndarray  # has a C–N bond as short as a nitrile's
    degree: np.ndarray  # bonds of each atom

    @classmethod
    def of(cls, z: np.ndarray, bonds: Bonds) -> _Context:
        n = len(z)
        terminal = (z == 8) & (bonds.count(n) == 1)
        za, zb = z[bonds.a], z[bonds.b]
        c_n = ((za == 6) & (zb == 7)) | ((za == 7) & (zb == 6))
        return cls(
            z=z,
            n_bonds=bonds.count(n, ~METAL[z]),
            bonded_to_non_o_f=bonds.count(n, ~_O_OR_F[z] & ~METAL[z]) > 0,
            terminal_o=bonds.count(n, terminal),
            short_c_n=np.bincount(bonds.a[c_n & (bonds.d < _C_N_AMINE)], minlength=n) > 0,
            triple_c_n=np.bincount(bonds.a[c_n & (bonds.d < _C_N_TRIPLE)], minlength=n) > 0,
            degree=bonds.count(n),
        )


def is_ion_by_chemistry(
    atoms: np.ndarray, formula: str, ctx: _Context, complexes_are_ions: bool = True
) -> bool:
    """Whether a finite component is an ion by the rules of the module docstring
    (``complexes_are_ions``: a metal complex counts as one, for CIFs without charges)."""
    z = ctx.z[atoms]
    if len(atoms) == 1:
        return int(z[0]) in _MONATOMIC_IONS
    if formula in KNOWN_IONS:
        return True
    metal, o_f = METAL[z], _O_OR_F[z]
    n_bonds, terminal_o = ctx.n_bonds[atoms], ctx.terminal_o[atoms]
    elements = set(z.tolist())
    acid_group = ((z == 6) & (terminal_o == 2)) | (np.isin(z, (15, 16)) & (terminal_o >= 3))
    acyclic = ctx.degree[atoms].sum() // 2 == len(atoms) - 1
    amine = (
        elements <= {1, 6, 7}
        and 7 in elements
        and not ctx.triple_c_n[atoms].any()
        and (acyclic or not ctx.short_c_n[atoms].any())
    )
    rules = (
        not metal.any() and (np.isin(z, (7, 15)) & (n_bonds == 4)).any(),  # ammonium
        amine,  # a protonated amine, its N–H perhaps not located
        ((z == 5) & (n_bonds == 4)).any(),  # borate
        1 not in elements and o_f.sum() >= 3 and not ctx.bonded_to_non_o_f[atoms][~o_f].any(),
        not metal.any() and acid_group.any(),  # carboxylate, sulfonate, phosphonate
        complexes_are_ions and metal.any(),  # a coordination complex
    )
    return any(bool(rule) for rule in rules)


def _listing(found: list[tuple[str, float]]) -> str:
    """``2 × H2O, 1 × CH4O`` (with the net charge of one of them where the CIF has charges)."""
    counts = Counter(formula for formula, _ in found)
    charge = dict(found)
    parts = []
    for formula, k in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        q = charge[formula]
        parts.append(f"{k} × {formula}" + (f" ({q:+.2f} e)" if np.isfinite(q) else ""))
    return ", ".join(parts)


def _coordination(z: np.ndarray, n_bonds: np.ndarray) -> str:
    """``coordination``'s detail, or "" when every C and H is within its valence."""
    parts = []
    for element, limit in MAX_NON_METAL_BONDS.items():
        over = np.flatnonzero((z == element) & (n_bonds > limit))
        if len(over):
            symbol = chemical_symbols[element]
            parts.append(
                f"{len(over)} {symbol} bonded to more than {limit} non-metal atoms "
                f"(up to {int(n_bonds[over].max())})"
            )
    return "; ".join(parts)


@dataclass(frozen=True)
class Finite:
    """A bonded component that is not framework: its formula, net charge (NaN without
    charges), size, and whether it is a charge-balancing ion."""

    formula: str
    net_charge: float
    atoms: np.ndarray
    ion: bool

    @property
    def n_atoms(self) -> int:
        return len(self.atoms)


def finite_components(z: np.ndarray, charge: np.ndarray, bonds: Bonds) -> tuple[list[Finite], bool]:
    """The components that are not framework, and whether any component is periodic."""
    labels, periodic = periodic_components(len(z), bonds)
    sizes = np.bincount(labels)
    framework = periodic if periodic.any() else sizes == sizes.max()
    if framework.all():
        return [], bool(periodic.any())
    net = np.bincount(labels, weights=charge)  # NaN where any atom has no charge
    total = float(net.sum())
    ctx = _Context.of(z, bonds)
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(len(sizes) + 1))
    out = []
    for c in np.flatnonzero(~framework):
        atoms = order[bounds[c] : bounds[c + 1]]
        formula = hill_formula(z[atoms])
        q = float(net[c])
        by_charge = np.isfinite(total) and abs(q) >= ION_CHARGE and q * (total - q) < 0
        ion = by_charge or is_ion_by_chemistry(atoms, formula, ctx, not np.isfinite(total))
        out.append(Finite(formula, q, atoms, ion))
    return out, bool(periodic.any())


def bond_checks(
    atomic_number: np.ndarray,
    charge: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    dist: np.ndarray,
    image: np.ndarray,
    tolerance: float = BOND_TOLERANCE,
    metal_tolerance: float = METAL_BOND_TOLERANCE,
    bonds: Bonds | None = None,
) -> list[tuple[str, str]]:
    """``(check, detail)`` of the isolated-atom, isolated-molecule and coordination checks
    for one crystal graph (edges ``src → dst`` at ``dist`` Å, ``image`` of ``src``), or of
    its ``bonds`` when :func:`find_bonds` has found them already."""
    z = np.asarray(atomic_number, dtype=np.int64)
    if len(z) == 0:
        return []
    if bonds is None:
        bonds = find_bonds(z, src, dst, dist, image, tolerance, metal_tolerance)
    found: list[tuple[str, str]] = []
    strays = [f for f in finite_components(z, np.asarray(charge, np.float64), bonds)[0]
              if not f.ion]  # fmt: skip
    lone = [(f.formula, f.net_charge) for f in strays if f.n_atoms == 1]
    if lone:
        found.append((ISOLATED_ATOM, _listing(lone)))
    molecules = [(f.formula, f.net_charge) for f in strays if f.n_atoms > 1]
    if molecules:
        found.append((ISOLATED_MOLECULE, _listing(molecules)))
    detail = _coordination(z, bonds.count(len(z), ~METAL[z]))
    if detail:
        found.append((COORDINATION, detail))
    return found
