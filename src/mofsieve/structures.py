"""CIF text → the atoms of one unit cell, with an explicit error policy (and back: P1 CIFs).

gemmi (a maintained C++ CIF parser) reads the syntax, numbers with uncertainties such as
``0.1234(5)`` and symmetry operators; this module turns that into plain arrays and decides
what makes a file unusable. Every rejection is a :class:`StructureError` whose message is the
reason a user reads in ``failures.csv``.

Two conventions follow pymatgen's CIF parser so that graphs agree with the CGCNN reference to
floating-point precision: fractional coordinates within a relative 1e-4 of 1/3 or 2/3 are
snapped to the exact fraction, and every coordinate is wrapped into [0, 1).

What the parser keeps but a user should hear about goes into :attr:`Crystal.notes` as
``(check, detail)`` pairs under the check names of :mod:`mofsieve.checks`: a file read as
Latin-1 because it is not UTF-8 (``encoding``), and sites with partial occupancy kept as
full atoms (``occupancy``), which ``partial_occupancy="reject"`` turns into a
:class:`StructureError` naming the sites instead.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

import gemmi
import numpy as np
from ase.geometry import cellpar_to_cell

from mofsieve.warning_records import ENCODING, OCCUPANCY

# pymatgen's CifParser snaps these fractions (relative tolerance 1e-4): finite-precision
# 0.6667 and 0.66667 both mean 2/3 in crystallography.
_SNAP_FRACTIONS = (1.0 / 3.0, 2.0 / 3.0)
_SNAP_TOLERANCE = 1e-4
# Symmetry-equivalent positions closer than this (fractional, per axis) are one site.
_SITE_TOLERANCE = 1e-4
_ELEMENT_SYMBOL = re.compile(r"^([A-Za-z]{1,2})")
# An occupancy is full when 1 lies within its precision (the stated standard uncertainty, or
# one unit of its last decimal), but never more than this far from 1 ("0.9" is partial).
_MAX_OCCUPANCY_PRECISION = 0.05
OCCUPANCY_POLICIES = ("reject", "keep")


class StructureError(ValueError):
    """A CIF that cannot be turned into a crystal graph; ``stage`` says where it failed."""

    def __init__(self, reason: str, stage: str = "parse") -> None:
        super().__init__(reason)
        self.reason = reason
        self.stage = stage


@dataclass
class Crystal:
    """The P1 unit cell of one crystal as arrays.

    ``lattice`` rows are the cell vectors (Å); ``frac_coords`` are wrapped into [0, 1);
    ``charge`` is NaN for atoms whose CIF gives no partial charge.
    """

    atomic_number: np.ndarray  # (n,) uint8
    frac_coords: np.ndarray  # (n, 3) float64
    lattice: np.ndarray  # (3, 3) float64
    charge: np.ndarray  # (n,) float32
    # (check, detail) of what was kept but is odd (see the module docstring)
    notes: tuple[tuple[str, str], ...] = ()

    @property
    def n_atoms(self) -> int:
        return int(self.atomic_number.shape[0])

    @property
    def cart_coords(self) -> np.ndarray:
        return self.frac_coords @ self.lattice


def _number(value: str, what: str) -> float:
    """A CIF number (uncertainty in parentheses allowed); '?' and '.' are missing values."""
    if value in ("?", "."):
        raise StructureError(f"missing value for {what}")
    number = gemmi.cif.as_number(value)
    if not math.isfinite(number):
        raise StructureError(f"non-numeric or non-finite value {value!r} for {what}")
    return number


def _numbers(values: list[str], what: str) -> np.ndarray:
    out = np.array([gemmi.cif.as_number(v) for v in values], dtype=np.float64)
    bad = ~np.isfinite(out)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise StructureError(
            f"non-numeric, missing or non-finite {what} {values[i]!r} at atom site {i + 1}"
        )
    return out


def _atomic_number(symbol: str, site: int) -> int:
    """Element of a type symbol or label such as 'Cu', 'Cu2+', 'O1', 'ZN'."""
    z = _element_of(symbol.strip())
    if z == 0:
        raise StructureError(f"unknown element {symbol!r} at atom site {site + 1}")
    return z


@lru_cache(maxsize=4096)
def _element_of(symbol: str) -> int:
    """Atomic number of a symbol, 0 when it names no element."""
    match = _ELEMENT_SYMBOL.match(symbol)
    if match:
        letters = match.group(1)
        # Two letters only when the pair is an element ('Co'); otherwise 'C' of 'C12', 'Ca'…
        for candidate in (letters.capitalize(), letters[0].upper()):
            z = gemmi.Element(candidate).atomic_number
            if z > 0 and gemmi.Element(candidate).name == candidate:
                return z
    return 0


def _atom_block(doc: gemmi.cif.Document) -> gemmi.cif.Block:
    blocks = [
        b for b in doc if b.find_values("_atom_site_fract_x") or b.find_values("_atom_site_Cartn_x")
    ]
    if not blocks:
        raise StructureError("no atom sites (_atom_site_fract_x or _atom_site_Cartn_x loop)")
    if len(blocks) > 1:
        names = ", ".join(b.name for b in blocks[:4])
        raise StructureError(
            f"{len(blocks)} data blocks with atoms ({names}); one structure per file"
        )
    return blocks[0]


def _lattice(block: gemmi.cif.Block) -> np.ndarray:
    params = []
    for key in ("length_a", "length_b", "length_c", "angle_alpha", "angle_beta", "angle_gamma"):
        value = block.find_value(f"_cell_{key}")
        if value is None:
            raise StructureError(f"missing _cell_{key}")
        params.append(_number(value, f"_cell_{key}"))
    a, b, c, alpha, beta, gamma = params
    if min(a, b, c) <= 0.1:
        raise StructureError(f"degenerate cell: lengths {a:g}, {b:g}, {c:g} Å")
    angles = np.radians([alpha, beta, gamma])
    cos_a, cos_b, cos_g = np.cos(angles)
    # Squared volume factor of a triclinic cell; <= 0 means the three angles cannot close.
    factor = 1 - cos_a**2 - cos_b**2 - cos_g**2 + 2 * cos_a * cos_b * cos_g
    if not (0 < alpha < 180 and 0 < beta < 180 and 0 < gamma < 180) or factor < 1e-6:
        raise StructureError(f"degenerate cell: angles {alpha:g}, {beta:g}, {gamma:g} degrees")
    return np.asarray(cellpar_to_cell(params), dtype=np.float64)


def _symmetry_operations(block: gemmi.cif.Block) -> list[gemmi.Op]:
    for key in ("_space_group_symop_operation_xyz", "_symmetry_equiv_pos_as_xyz"):
        triplets = list(block.find_values(key))
        if triplets:
            try:
                return [gemmi.Op(gemmi.cif.as_string(t)) for t in triplets]
            except (RuntimeError, ValueError) as err:
                raise StructureError(f"unreadable symmetry operator in {key}: {err}") from None
    for key in ("_space_group_name_H-M_alt", "_symmetry_space_group_name_H-M"):
        name = block.find_value(key)
        if name and gemmi.cif.as_string(name).strip() not in ("", "?", "."):
            group = gemmi.find_spacegroup_by_name(gemmi.cif.as_string(name))
            if group is None:
                raise StructureError(f"unknown space group {gemmi.cif.as_string(name)!r}")
            return list(group.operations())
    return [gemmi.Op("x,y,z")]


def _snap(frac: np.ndarray) -> np.ndarray:
    frac = frac.copy()
    for target in _SNAP_FRACTIONS:
        frac[np.abs(frac / target - 1.0) <= _SNAP_TOLERANCE] = target
    return frac


def _wrap(frac: np.ndarray) -> np.ndarray:
    wrapped = frac - np.floor(frac)
    wrapped[wrapped >= 1.0] = 0.0  # -1e-17 wraps to 1.0 in floating point
    return wrapped


def _expand(frac: np.ndarray, ops: list[gemmi.Op]) -> tuple[np.ndarray, np.ndarray]:
    """Apply symmetry operators; returns P1 coordinates and the asymmetric site of each."""
    if len(ops) == 1 and ops[0].triplet() == "x,y,z":
        return _wrap(frac), np.arange(len(frac))
    rot = np.array([op.rot for op in ops], dtype=np.float64) / gemmi.Op.DEN  # (M, 3, 3)
    tran = np.array([op.tran for op in ops], dtype=np.float64) / gemmi.Op.DEN  # (M, 3)
    images = _wrap(np.einsum("mij,nj->nmi", rot, frac) + tran[None])  # (n, M, 3)
    coords, origin = [], []
    for site, orbit in enumerate(images):
        kept: list[np.ndarray] = []
        for position in orbit:
            delta = np.abs(np.asarray(kept) - position) if kept else None
            if delta is not None:
                delta = np.minimum(delta, 1.0 - delta)
                if (delta < _SITE_TOLERANCE).all(axis=1).any():
                    continue
            kept.append(position)
        coords.extend(kept)
        origin.extend([site] * len(kept))
    return np.asarray(coords, dtype=np.float64), np.asarray(origin, dtype=np.int64)


def _charges(block: gemmi.cif.Block, symbols: list[str], n_sites: int) -> np.ndarray:
    site_charges = list(block.find_values("_atom_site_charge"))
    if len(site_charges) == n_sites:
        return np.array([gemmi.cif.as_number(v) for v in site_charges], dtype=np.float32)
    type_table = block.find("_atom_type_", ["symbol", "partial_charge"])
    if len(type_table):
        by_type = {gemmi.cif.as_string(row[0]): gemmi.cif.as_number(row[1]) for row in type_table}
        return np.array([by_type.get(s, math.nan) for s in symbols], dtype=np.float32)
    return np.full(n_sites, np.nan, dtype=np.float32)


def _is_full(value: str) -> bool:
    """Whether an ``_atom_site_occupancy`` value means a full site ('?' and '.' do: the CIF
    default is 1)."""
    number = gemmi.cif.as_number(value)
    if not math.isfinite(number):
        return True
    mantissa, _, uncertainty = value.partition("(")
    decimals = len(mantissa.partition(".")[2].rstrip()) if "." in mantissa else 0
    precision = 10.0**-decimals
    if uncertainty.rstrip(")").isdigit():
        precision = max(precision, int(uncertainty.rstrip(")")) * precision)
    return abs(number - 1.0) <= min(precision, _MAX_OCCUPANCY_PRECISION) + 1e-12


def _partial_sites(block: gemmi.cif.Block, labels: list[str]) -> list[str]:
    """``label occupancy`` of every site whose occupancy is not 1 within its precision."""
    raw = list(block.find_values("_atom_site_occupancy"))
    if len(raw) != len(labels):
        return []
    # A CIF repeats a handful of values ("1", "1.0", "0.5") over thousands of sites: each
    # distinct value is judged once.
    value = {v: gemmi.cif.as_string(v) for v in set(raw)}
    partial = {v for v, text in value.items() if not _is_full(text)}
    return [f"{label} {value[v]}" for label, v in zip(labels, raw, strict=True) if v in partial]


def _occupancy_note(
    block: gemmi.cif.Block, labels: list[str], policy: str
) -> tuple[str, str] | None:
    partial = _partial_sites(block, labels)
    if not partial:
        return None
    shown = ", ".join(partial[:5]) + (", …" if len(partial) > 5 else "")
    sites = f"{len(partial)} site{'s' if len(partial) > 1 else ''}"
    if policy == "reject":
        raise StructureError(
            f"partial occupancy at {sites} ({shown}): a disordered model; "
            "ingest.partial_occupancy: keep reads every site as a full atom"
        )
    return (OCCUPANCY, f"{sites} with partial occupancy read as full atoms: {shown}")


def parse_cif(
    text: str | bytes, max_atoms: int = 20_000, partial_occupancy: str = "keep"
) -> Crystal:
    """Read one CIF into its P1 unit cell; raises :class:`StructureError` with the reason.

    ``partial_occupancy``: ``"keep"`` reads every site as a full atom (noting it in
    :attr:`Crystal.notes`), ``"reject"`` raises. The library default is ``keep`` so that the
    tools reading a CIF the screen already accepted (GCMC hand-off, charge check) read it as
    the featurizer did; ``mofsieve featurize`` rejects unless told otherwise.
    """
    if partial_occupancy not in OCCUPANCY_POLICIES:
        raise ValueError(f"partial_occupancy must be one of {OCCUPANCY_POLICIES}")
    notes: list[tuple[str, str]] = []
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            text = text.decode("latin-1")
            notes.append((ENCODING, "not UTF-8: read as Latin-1"))
    if not text.strip():
        raise StructureError("empty file")
    try:
        doc = gemmi.cif.read_string(text)
    except (RuntimeError, ValueError) as err:
        raise StructureError(f"CIF syntax error: {err}") from None
    block = _atom_block(doc)
    lattice = _lattice(block)

    prefix = "_atom_site_fract_" if block.find_values("_atom_site_fract_x") else "_atom_site_Cartn_"
    columns = [list(block.find_values(prefix + axis)) for axis in "xyz"]
    if len({len(column) for column in columns}) != 1:
        raise StructureError(f"{prefix}x/y/z columns have different lengths")
    xyz = np.stack(
        [_numbers(column, prefix + axis) for column, axis in zip(columns, "xyz", strict=True)],
        axis=1,
    )
    frac = xyz if prefix == "_atom_site_fract_" else xyz @ np.linalg.inv(lattice)
    n_sites = frac.shape[0]
    if n_sites == 0:
        raise StructureError("no atom sites")

    symbols = [gemmi.cif.as_string(s) for s in block.find_values("_atom_site_type_symbol")]
    if len(symbols) != n_sites:
        symbols = [gemmi.cif.as_string(s) for s in block.find_values("_atom_site_label")]
    if len(symbols) != n_sites:
        raise StructureError("atom sites have neither _atom_site_type_symbol nor _atom_site_label")
    elements = np.array([_atomic_number(s, i) for i, s in enumerate(symbols)], dtype=np.int64)
    charges = _charges(block, symbols, n_sites)
    labels = [gemmi.cif.as_string(s) for s in block.find_values("_atom_site_label")]
    occupancy = _occupancy_note(block, labels if len(labels) == n_sites else symbols,
                                partial_occupancy)  # fmt: skip
    if occupancy:
        notes.append(occupancy)

    ops = _symmetry_operations(block)
    coords, origin = _expand(_snap(frac), ops)
    if len(coords) > max_atoms:
        raise StructureError(
            f"{len(coords)} atoms in the unit cell exceeds the limit of {max_atoms}"
        )
    return Crystal(
        atomic_number=elements[origin].astype(np.uint8),
        frac_coords=coords,
        lattice=lattice,
        charge=charges[origin],
        notes=tuple(notes),
    )


# ---------------------------------------------------------------------------------------------
# Writing: one P1 CIF writer for every tool that reads CIFs (Zeo++, RASPA).


def lattice_parameters(lattice: np.ndarray) -> tuple[float, float, float, float, float, float]:
    """a, b, c (Å) and α, β, γ (degrees) of a lattice given as rows of cell vectors."""
    cell = np.asarray(lattice, dtype=np.float64)
    lengths = np.linalg.norm(cell, axis=1)

    def angle(i: int, j: int) -> float:
        cosine = float(cell[i] @ cell[j] / (lengths[i] * lengths[j]))
        return math.degrees(math.acos(min(1.0, max(-1.0, cosine))))

    a, b, c = (float(x) for x in lengths)
    return a, b, c, angle(1, 2), angle(0, 2), angle(0, 1)


def p1_cif_text(
    data_name: str,
    atomic_number: np.ndarray,
    frac_coords: np.ndarray,
    lattice: np.ndarray,
    charge: np.ndarray | None = None,
    audit: str | None = None,
) -> str:
    """The cell as a P1 CIF; ``_atom_site_charge`` only when every atom has a charge.

    Readers rebuild the cell from a, b, c, α, β, γ in their own standard orientation: a
    rotation of ``lattice``, to which fractional coordinates (and every descriptor and GCMC
    result) are invariant.
    """
    from ase.data import chemical_symbols

    a, b, c, alpha, beta, gamma = lattice_parameters(lattice)
    with_charges = charge is not None and charge.size > 0 and not np.isnan(charge).any()
    lines = [f"data_{data_name}"]
    if audit:
        lines.append(f"_audit_creation_method '{audit}'")
    lines += [
        "_symmetry_space_group_name_H-M 'P 1'",
        "_symmetry_Int_Tables_number 1",
        "loop_",
        "_symmetry_equiv_pos_as_xyz",
        "  'x, y, z'",
        f"_cell_length_a {a:.8f}",
        f"_cell_length_b {b:.8f}",
        f"_cell_length_c {c:.8f}",
        f"_cell_angle_alpha {alpha:.8f}",
        f"_cell_angle_beta {beta:.8f}",
        f"_cell_angle_gamma {gamma:.8f}",
        "loop_",
        "_atom_site_label",
        "_atom_site_type_symbol",
        "_atom_site_fract_x",
        "_atom_site_fract_y",
        "_atom_site_fract_z",
    ]
    if with_charges:
        lines.append("_atom_site_charge")
    counts: dict[str, int] = {}
    for i, z in enumerate(np.asarray(atomic_number, dtype=np.int64)):
        symbol = chemical_symbols[int(z)]
        counts[symbol] = counts.get(symbol, 0) + 1
        x, y, w = frac_coords[i]
        row = f"{symbol}{counts[symbol]} {symbol} {x:.8f} {y:.8f} {w:.8f}"
        if with_charges:
            row += f" {float(charge[i]):.6f}"  # type: ignore[index]
        lines.append(row)
    return "\n".join(lines) + "\n"
