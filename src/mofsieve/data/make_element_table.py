"""Make ``elements.npz``, the per-element table OCrystalNet's atom input reads (dev time only).

Run once, in an environment that has jarvis-tools and pymatgen (not needed at run time)::

    python -m venv /tmp/jv && /tmp/jv/bin/pip install jarvis-tools==2026.6.12 pymatgen==2026.10.24
    /tmp/jv/bin/python src/mofsieve/data/make_element_table.py src/mofsieve/data/elements.npz

It writes, for atomic numbers 0…103 (row 0 and elements without data are NaN / zero):

``cfid`` (104×438 float32)
    The 438 JARVIS CFID element properties (jarvis-tools, ``jarvis/core/Elements.json``,
    MIT licence, © NIST/Choudhary et al.). Columns follow the key order of hydrogen's entry
    and are aligned *by key name*: 21 elements (Eu, Np, Pu, Xe, …) store their keys in
    another order, so ``Specie(el).get_descrp_arr`` (which follows each element's own order)
    would scramble them. The JSON's missing-value marker −9999 becomes NaN.
``cfid_names`` (438 str)
    The property names.
``valence`` (104×4 int8)
    Electrons in the valence s, p, d, f subshells as the orbital field matrix (Pham et al.
    2017; matminer's ``OrbitalFieldMatrix.get_ohv``) defines the valence shell: every
    subshell of the outermost principal number n, d and f subshells of n−1, f of n−2. n is
    the *largest* principal number of the configuration: pymatgen ≥ 2024 lists subshells in
    Madelung order, and taking n from the last entry (as matminer does) turns Zn's 3d¹⁰4s²
    into s² p⁶ d¹⁰ instead of s² d¹⁰.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

N_ROWS = 104
MISSING = -9999.0


def cfid_table() -> tuple[np.ndarray, list[str]]:
    import jarvis.core.specie as specie
    from pymatgen.core import Element

    data = json.loads((Path(specie.__file__).parent / "Elements.json").read_text())
    names = list(data["H"])
    table = np.full((N_ROWS, len(names)), np.nan, dtype=np.float64)
    for symbol, props in data.items():
        if set(props) != set(names):
            raise SystemExit(f"{symbol} has other CFID keys than H")
        row = np.array([float(props[n]) for n in names])
        row[row == MISSING] = np.nan
        table[Element(symbol).Z] = row
    return table.astype(np.float32), names


def valence_table() -> np.ndarray:
    from pymatgen.core import Element

    valence = np.zeros((N_ROWS, 4), dtype=np.int8)
    for z in range(1, N_ROWS):
        config = Element.from_Z(z).full_electronic_structure
        n_max = max(n for n, _, _ in config)
        for n, orbital, count in config:
            l = "spdf".index(orbital)  # noqa: E741
            if n == n_max or (n == n_max - 1 and l >= 2) or (n == n_max - 2 and l == 3):
                valence[z, l] = count
    return valence


def main(out: str) -> None:
    cfid, names = cfid_table()
    np.savez_compressed(out, cfid=cfid, cfid_names=np.array(names), valence=valence_table())
    print(f"wrote {out}: {Path(out).stat().st_size} bytes")


if __name__ == "__main__":
    main(sys.argv[1])
