"""Make ``matminer_reference.npz``: matminer's per-site orbital field matrices (dev time).

matminer pulls scikit-learn, pandas 2 and more, so it is not a test dependency; its numbers
are stored here instead. Run in an environment with matminer (and this checkout's table)::

    python -m venv /tmp/jv && /tmp/jv/bin/pip install matminer==0.10.1 pymatgen==2026.10.24
    /tmp/jv/bin/python tests/data/ofm/make_matminer_reference.py \
        .venv/lib/python3.11/site-packages/CoRE_MOF/data/2019-ASR.tar.xz tests/data/ofm/matminer_reference.npz

For each structure — fcc Cu (tests/data/good/cu_fcc_p1.cif), rock salt NaCl, and three CoRE
MOF 2019-ASR structures of the core-mof package — it stores every site's fractional
coordinates, atomic number and matminer's ``OrbitalFieldMatrix.get_atom_ofms`` matrix
(pymatgen ``VoronoiNN(allow_pathological=True)`` solid angles over the largest, distances in
Bohr), sparse (row, column, value) since only the rows and columns of set orbitals are
non-zero. matminer's one-hot table is replaced by mofsieve's (``elements.npz``, valence
shell from the largest principal number): with pymatgen ≥ 2024 matminer's own table gives
Zn s2 p6 d10 (core electrons), which would compare the tables, not the geometry.
matminer's matrix is neighbour-orbital × centre-orbital, the transpose of mofsieve's X^c.
"""

from __future__ import annotations

import sys
import tarfile
from pathlib import Path

import numpy as np
from matminer.featurizers.structure import OrbitalFieldMatrix
from pymatgen.core import Lattice, Structure

HERE = Path(__file__).resolve().parent
MOFS = ("AGESIP_clean", "ADAXEK_clean", "AHOKIR01_clean")


def structures(archive: str) -> dict[str, Structure]:
    out = {
        "cu_fcc": Structure.from_file(HERE.parent / "good" / "cu_fcc_p1.cif"),
        "nacl_rocksalt": Structure(
            Lattice.cubic(5.64),
            ["Na"] * 4 + ["Cl"] * 4,
            [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5],
             [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5], [0.5, 0.5, 0.5]],
        ),
    }  # fmt: skip
    with tarfile.open(archive) as tar:
        for member in tar:
            stem = Path(member.name).stem
            if stem in MOFS:
                text = tar.extractfile(member).read().decode()
                out[stem] = Structure.from_str(text, fmt="cif")
    missing = set(MOFS) - set(out)
    if missing:
        raise SystemExit(f"not in {archive}: {sorted(missing)}")
    return out


def main(archive: str, out: str) -> None:
    valence = np.load(HERE.parents[2] / "src" / "mofsieve" / "data" / "elements.npz")["valence"]
    featurizer = OrbitalFieldMatrix(period_tag=False)
    for z in range(1, valence.shape[0]):
        onehot = np.zeros(32, dtype=np.int32)
        for l, offset in enumerate((0, 2, 8, 18)):  # noqa: E741
            if valence[z, l]:
                onehot[offset + valence[z, l] - 1] = 1
        featurizer.ohvs[z] = np.matrix(onehot)
    arrays: dict[str, np.ndarray] = {}
    for name, structure in structures(archive).items():
        ofms = np.array([np.asarray(m) for m in featurizer.get_atom_ofms(structure)])
        site, row, col = np.nonzero(ofms)
        arrays[f"{name}/frac_coords"] = structure.frac_coords
        arrays[f"{name}/lattice"] = structure.lattice.matrix
        arrays[f"{name}/atomic_number"] = np.array([s.specie.Z for s in structure])
        arrays[f"{name}/entries"] = np.stack([site, row, col]).astype(np.int32)
        arrays[f"{name}/values"] = ofms[site, row, col]
        print(name, len(structure), "sites")
    np.savez_compressed(out, **arrays)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
