"""Write the structure-check test CIFs of this folder (run once; the CIFs are committed).

Every file is ZAZBUZ (Cu2(bdc)2, a paddlewheel layer MOF; CoRE MOF 2019-ASR, Chung et al.,
J. Chem. Eng. Data 64, 5985 (2019), CC BY 4.0) as the core-mof package ships it, changed in
one way that one check must see (or, for the ions, must not):

    clean.cif                    as shipped: no check fires
    isolated_atom.cif            + a lone H in the channel
    isolated_molecule.cif        + a water molecule in the channel
    coordination.cif             + two H on an aromatic C (five bonds)
    ammonium.cif                 + NH4+ in the channel, no charges: an ion by its chemistry
    pyridinium_charged.cif       + C5H6N with +0.6 e, framework -0.6 e: an ion by its charges
    water_charged.cif            + a water with 0 e in a charged CIF: neutral solvent
    partial_occupancy.cif        one aromatic C as two half-occupied sites 0.8 Å apart
    latin1.cif                   a Latin-1 byte in a text field (not UTF-8)

    python tests/data/checks/make_check_cifs.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase.geometry import cellpar_to_cell

HERE = Path(__file__).resolve().parent
CELL = (6.6050, 10.4478, 11.0881, 62.0640, 73.4100, 78.4040)
ATOMS = """\
Cu1 Cu 0.00000 0.00000 0.50000
Cu2 Cu 0.50000 0.00000 0.50000
H1 H 0.58670 0.73100 0.44290
H2 H 0.14620 0.44530 0.57760
H3 H 0.34780 0.04650 0.87280
H4 H 0.76380 0.95030 0.90830
H5 H 0.41330 0.26900 0.55710
H6 H 0.85380 0.55470 0.42240
H7 H 0.65220 0.95350 0.12720
H8 H 0.23620 0.04970 0.09170
C1 C 0.13630 0.99610 0.72890
C2 C 0.16470 0.71770 0.52600
C3 C 0.55140 0.63710 0.46630
C4 C 0.06550 0.99870 0.86970
C5 C 0.34020 0.60540 0.51320
C6 C 0.29010 0.46740 0.54630
C7 C 0.20630 0.02770 0.92440
C8 C 0.86000 0.97070 0.94530
C9 C 0.86370 0.00390 0.27110
C10 C 0.83530 0.28230 0.47400
C11 C 0.44860 0.36290 0.53370
C12 C 0.93450 0.00130 0.13030
C13 C 0.65980 0.39460 0.48680
C14 C 0.70990 0.53260 0.45370
C15 C 0.79370 0.97230 0.07560
C16 C 0.14000 0.02930 0.05470
O1 O 0.32920 0.01250 0.66980
O2 O 0.21300 0.83240 0.52070
O3 O 0.99770 0.97800 0.68410
O4 O 0.98110 0.69190 0.54050
O5 O 0.67080 0.98750 0.33020
O6 O 0.78700 0.16760 0.47930
O7 O 0.00230 0.02200 0.31590
O8 O 0.01890 0.30810 0.45950"""
LATTICE = cellpar_to_cell(CELL)
INVERSE = np.linalg.inv(LATTICE)


def base() -> list[list]:
    return [[label, el, np.array([float(x), float(y), float(z)])] for label, el, x, y, z in
            (line.split() for line in ATOMS.splitlines())]  # fmt: skip


def min_distance(frac: np.ndarray, atoms: list[list]) -> float:
    delta = np.array([a[2] for a in atoms]) - frac
    delta -= np.round(delta)
    return float(np.linalg.norm(delta @ LATTICE, axis=1).min())


def channel_centre(atoms: list[list]) -> np.ndarray:
    """The grid point farthest from every atom (the middle of the channel)."""
    grid = (np.stack(np.meshgrid(*[np.arange(24) / 24] * 3, indexing="ij"), -1)).reshape(-1, 3)
    frac = np.array([a[2] for a in atoms])
    delta = grid[:, None, :] - frac[None]
    delta -= np.round(delta)
    nearest = np.linalg.norm(delta @ LATTICE, axis=2).min(axis=1)
    return grid[int(np.argmax(nearest))]


def place(atoms: list[list], centre: np.ndarray, guest: list[tuple[str, np.ndarray]]) -> list:
    """``guest`` (element, Cartesian offset) rotated to keep farthest from the framework."""
    rng = np.random.default_rng(0)
    best, best_gap = None, -1.0
    for _ in range(400):
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        placed = [(el, centre + (offset @ q) @ INVERSE) for el, offset in guest]
        gap = min(min_distance(f, atoms) for _, f in placed)
        if gap > best_gap:
            best, best_gap = placed, gap
    assert best is not None
    print(f"  guest {''.join(el for el, _ in guest)}: {best_gap:.2f} Å from the framework")
    return [[f"{el}{100 + i}", el, f % 1.0] for i, (el, f) in enumerate(best)]


def write(name: str, atoms: list[list], charges: list[float] | None = None,
          occupancy: dict[str, str] | None = None, extra: bytes = b"") -> None:  # fmt: skip
    lines = [f"data_{Path(name).stem}", "# from ZAZBUZ_clean, CoRE MOF 2019-ASR (CC BY 4.0); "
             "see make_check_cifs.py"]  # fmt: skip
    lines += [f"_cell_length_{k} {v:.4f}" for k, v in zip("abc", CELL[:3], strict=True)]
    lines += [f"_cell_angle_{k} {v:.4f}" for k, v in
              zip(("alpha", "beta", "gamma"), CELL[3:], strict=True)]  # fmt: skip
    lines += ["_symmetry_space_group_name_H-M 'P1'", "loop_", "_atom_site_label",
              "_atom_site_type_symbol", "_atom_site_fract_x", "_atom_site_fract_y",
              "_atom_site_fract_z", "_atom_site_occupancy"]  # fmt: skip
    if charges is not None:
        lines.append("_atom_site_charge")
    for i, (label, el, f) in enumerate(atoms):
        row = (
            f"{label} {el} {f[0]:.5f} {f[1]:.5f} {f[2]:.5f} {(occupancy or {}).get(label, '1.00')}"
        )
        if charges is not None:
            row += f" {charges[i]:.4f}"
        lines.append(row)
    text = "\n".join(lines).encode() + b"\n"
    (HERE / name).write_bytes(text.replace(b"_symmetry_space", extra + b"_symmetry_space", 1))
    print(name)


def framework_charges(atoms: list[list], total: float) -> list[float]:
    """Cu +1, O -0.6, H +0.1, C whatever makes the framework's sum ``total``."""
    fixed = {"Cu": 1.0, "O": -0.6, "H": 0.1}
    n_c = sum(a[1] == "C" for a in atoms)
    rest = sum(fixed.get(a[1], 0.0) for a in atoms)
    q_c = (total - rest) / n_c
    return [fixed.get(a[1], q_c) for a in atoms]


def ring_normal(atoms: list[list], label: str) -> tuple[np.ndarray, np.ndarray]:
    """A carbon's Cartesian position and the normal of the plane of its two C neighbours."""
    index = {a[0]: a for a in atoms}
    centre = index[label][2] @ LATTICE
    near = []
    for a in atoms:
        if a[1] == "C" and a[0] != label:
            d = (a[2] - index[label][2]) - np.round(a[2] - index[label][2])
            if np.linalg.norm(d @ LATTICE) < 1.6:
                near.append(d @ LATTICE)
    normal = np.cross(near[0], near[1])
    return centre, normal / np.linalg.norm(normal)


def main() -> None:
    atoms = base()
    write("clean.cif", atoms)
    centre = channel_centre(atoms)
    write("isolated_atom.cif", atoms + place(atoms, centre, [("H", np.zeros(3))]))
    water = [("O", np.zeros(3)), ("H", np.array([0.757, 0.586, 0])),
             ("H", np.array([-0.757, 0.586, 0]))]  # fmt: skip
    write("isolated_molecule.cif", atoms + place(atoms, centre, water))
    tetra = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]) / np.sqrt(3) * 1.01
    write("ammonium.cif", atoms + place(atoms, centre, [("N", np.zeros(3))] +
                                        [("H", v) for v in tetra]))  # fmt: skip
    angles = np.radians(np.arange(6) * 60.0)
    ring = np.stack([np.cos(angles), np.sin(angles), np.zeros(6)], 1)
    pyridinium = [("N" if i == 0 else "C", 1.39 * v) for i, v in enumerate(ring)]
    pyridinium += [("H", (1.39 + (1.01 if i == 0 else 1.08)) * v) for i, v in enumerate(ring)]
    guest = place(atoms, centre, pyridinium)
    write("pyridinium_charged.cif", atoms + guest,
          charges=framework_charges(atoms, -0.6) + [0.05] * 12)  # fmt: skip
    guest = place(atoms, centre, water)
    write("water_charged.cif", atoms + guest,
          charges=framework_charges(atoms, 0.0) + [-0.8, 0.4, 0.4])  # fmt: skip
    carbon, normal = ring_normal(atoms, "C6")  # the aromatic C bonded to H2
    extra = [[f"H{90 + i}", "H", ((carbon + s * 1.09 * normal) @ INVERSE) % 1.0]
             for i, s in enumerate((1, -1))]  # fmt: skip
    write("coordination.cif", atoms + extra)
    split = [a for a in atoms if a[0] != "C6"]
    split += [[f"C6{s}", "C", ((carbon + d * 0.4 * normal) @ INVERSE) % 1.0]
              for s, d in (("A", 1), ("B", -1))]  # fmt: skip
    write("partial_occupancy.cif", split, occupancy={"C6A": "0.50", "C6B": "0.50"})
    write("latin1.cif", atoms, extra="_journal_name_full 'Z. Kristallogr. \u2013 f\xfcr'\n"
          .encode("latin-1", errors="replace"))  # fmt: skip


if __name__ == "__main__":
    main()
