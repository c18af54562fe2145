"""EQeq partial charges of a crystal, computed by Open Babel in a child process.

EQeq (Wilmer et al., J. Phys. Chem. Lett. 2012) equilibrates charges over the periodic
crystal from ionisation energies and a charge centre per element. Open Babel 3.1
(``openbabel-wheel`` 3.1.1.23 on PyPI) implements it as the ``eqeq`` charge model: with an
``OBUnitCell`` on the molecule it sums the Coulomb and overlap terms over periodic images
(Ewald, real and reciprocal space); without one its non-periodic branch returns failure.

**Cell orientation.** Its image sum adds ``unitcell * (u, v, w)`` to each distance, with
``unitcell`` the cell matrix whose *rows* are the lattice vectors, so the translation it adds
is ``(a·uvw, b·uvw, c·uvw)`` instead of ``u a + v b + w c`` (and likewise in reciprocal
space). For an orthogonal cell the two agree; for a skewed one the "images" are not lattice
translations and the charges run away. Measured on CoRE MOF 2019 CIFs in Open Babel's own
orientation (the one its CIF reader gives): ALAMUW (angles 62°, 62°, 60°) Cu +4.2 e on
average, up to +10.9 e, r = 0.09 against the CIF's charges; EBAVUB (β 115°) r = 0.07; GAHWIX
(α 109°) r = 0.79; the nearly orthogonal DUWTAS r = 0.995. Here the crystal is rotated first
so that its cell matrix is symmetric (the symmetric factor of its polar decomposition): rows
and columns are then the same vectors and Open Babel's sums are the right ones. The same four
MOFs then agree with their CIF charges at r = 1.000 (the shared CoRE copy's charges are EQeq
charges). The rotation changes no distance.

**Guards.** Every argument is checked before Open Babel sees it: elements with EQeq data in
Open Babel's ``eqeqIonizations.txt`` (it indexes its tables by atomic number before checking
the range, and refuses e.g. Au, whose charge centre +3 has no third ionisation energy), an
atom limit (its dense N × N single-precision matrices), and the work of the image sums
(atom pairs × images; ~1.2e7 per second on one core here: 1,000 atoms, 125 images, 11 s).
It runs in a child process (``python -m mofsieve.eqeq``) with a timeout, so a crash or a
runaway computation costs the call, not the caller. The result's plausibility per element is
the caller's check (:func:`mofsieve.charge_sources.check_bounds`, applied to every EQeq
result that ``mofsieve simulate`` or ``mofsieve gcmc`` would use).
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # the child process imports numpy and Open Babel only
    from mofsieve.structures import Crystal

OPENBABEL_WHEEL = "openbabel-wheel==3.1.1.23"
EQEQ_NAME = "eqeq:openbabel-3.1"  # what records say computed the charges
DEFAULT_TIMEOUT_S = 600.0
MAX_ATOMS = 5000  # two float32 N × N matrices and a QR copy: ~0.3 GB at 5,000 atoms
MAX_PAIR_IMAGES = 4e9  # N² × images summed: ~6 min at the rate measured here
MIN_SUPERCELL_LENGTH_A = 150.0  # Open Babel's eqeq.h minCellLength: how far images reach


class EqeqError(ValueError):
    """No EQeq charges for this crystal, with the reason."""


# ---------------------------------------------------------------------------------------------
# what Open Babel can do, checked without loading it


def _openbabel_package() -> Path:
    spec = importlib.util.find_spec("openbabel")
    if spec is None or not spec.submodule_search_locations:
        raise EqeqError(f"Open Babel is not installed (pip install {OPENBABEL_WHEEL})")
    return Path(next(iter(spec.submodule_search_locations)))


@lru_cache(maxsize=1)
def supported_elements() -> frozenset[int]:
    """Atomic numbers Open Babel's EQeq has data for (its ``eqeqIonizations.txt``).

    An element qualifies as ``ComputeCharges`` checks it: a row for it, and the ionisation
    energies at its charge centre ``c`` and ``c + 1`` (column 0: electron affinity) not -1.
    """
    found = sorted(_openbabel_package().glob("share/openbabel/*/eqeqIonizations.txt"))
    if not found:
        raise EqeqError("Open Babel's eqeqIonizations.txt is missing from its installation")
    supported = set()
    for line in found[-1].read_text().splitlines():
        words = line.split()
        if not words or words[0].startswith("#") or len(words) != 12:
            continue
        z, centre = int(words[0]), int(words[2])
        energies = [float(w) for w in words[3:]]
        if z == 1:
            energies[0] = -2.0  # Open Babel replaces hydrogen's electron affinity (hi_0)
        if 1 <= z <= 84 and 0 <= centre < 8 and -1.0 not in energies[centre : centre + 2]:
            supported.add(z)
    return frozenset(supported)


def images_per_pair(lengths: np.ndarray) -> int:
    """The periodic images Open Babel sums for each atom pair (its ``numNeighbors``)."""
    reach = [max(0, math.ceil(MIN_SUPERCELL_LENGTH_A / (2.0 * x)) - 1) for x in lengths]
    return int(np.prod([2 * n + 1 for n in reach]))


def symmetric_lattice(lattice: np.ndarray) -> np.ndarray:
    """The cell rotated so that its row matrix is symmetric (see the module docstring)."""
    u, _, vt = np.linalg.svd(lattice)
    return lattice @ (u @ vt).T


def check_input(
    crystal: Crystal, max_atoms: int = MAX_ATOMS, max_pair_images: float = MAX_PAIR_IMAGES
) -> None:
    """Raise :class:`EqeqError` for a crystal that Open Babel's EQeq must not be given."""
    from ase.data import chemical_symbols

    n = crystal.n_atoms
    if n < 2:
        raise EqeqError(f"EQeq needs at least 2 atoms, the cell has {n}")
    if n > max_atoms:
        raise EqeqError(f"{n} atoms in the cell, more than the {max_atoms} EQeq is given")
    lattice = np.asarray(crystal.lattice, dtype=np.float64)
    if not np.isfinite(lattice).all() or abs(np.linalg.det(lattice)) < 1e-6:
        raise EqeqError("the cell is degenerate or not finite")
    if not np.isfinite(crystal.frac_coords).all():
        raise EqeqError("an atom has a non-finite coordinate")
    missing = sorted(set(int(z) for z in crystal.atomic_number) - supported_elements())
    if missing:
        names = ", ".join(chemical_symbols[z] for z in missing)
        raise EqeqError(f"Open Babel's EQeq has no ionisation data for {names}")
    images = images_per_pair(np.linalg.norm(lattice, axis=1))
    if float(n) ** 2 * images > max_pair_images:
        raise EqeqError(
            f"too much work for EQeq: {n} atoms × {n} × {images} periodic images "
            f"= {float(n) ** 2 * images:.2g} terms, more than {max_pair_images:.2g}"
        )


# ---------------------------------------------------------------------------------------------
# Open Babel itself (only ever called in the child, or by a caller that accepts the risk)


def openbabel_eqeq(
    atomic_numbers: np.ndarray, cart_coords: np.ndarray, lattice_rows: np.ndarray
) -> np.ndarray:
    """Open Babel's EQeq charges of atoms at ``cart_coords`` in the cell ``lattice_rows``
    (rows a, b, c in the same Cartesian frame), in this process. No guard: use
    :func:`eqeq_charges` unless the input is known to be good."""
    from openbabel import openbabel as ob

    ob.obErrorLog.SetOutputLevel(ob.obError)
    ob.obErrorLog.ClearLog()
    mol = ob.OBMol()
    mol.BeginModify()
    for z, (x, y, w) in zip(atomic_numbers, cart_coords, strict=True):
        atom = mol.NewAtom()
        atom.SetAtomicNum(int(z))
        atom.SetVector(float(x), float(y), float(w))
    mol.EndModify()
    cell = ob.OBUnitCell()
    cell.SetData(*(ob.vector3(*map(float, row)) for row in lattice_rows))
    mol.CloneData(cell)
    held = ob.toUnitCell(mol.GetData(ob.UnitCell)).GetCellMatrix()
    got = np.array([[held.Get(i, j) for j in range(3)] for i in range(3)])
    if not np.allclose(got, lattice_rows, atol=1e-6):  # the orientation fix relies on this
        raise EqeqError(f"Open Babel changed the cell matrix: {got.tolist()}")
    if not ob.OBChargeModel.FindType("eqeq").ComputeCharges(mol):
        raise EqeqError(f"Open Babel's EQeq failed: {_open_babel_errors(ob)}")
    return np.array([mol.GetAtom(i + 1).GetPartialCharge() for i in range(mol.NumAtoms())])


def _open_babel_errors(ob: Any) -> str:
    """Open Babel's logged error messages without their banner lines."""
    lines = [
        line.strip()
        for message in ob.obErrorLog.GetMessagesOfLevel(ob.obError)
        for line in message.splitlines()
        if line.strip() and not line.startswith(("===", "*** Open Babel"))
    ]
    return " ".join(" ".join(lines).split()) or "no reason given"


def _die_with_parent(parent: int) -> None:
    """Linux: SIGKILL when the parent dies, so an abandoned EQeq stops computing."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)


def _child_main() -> int:
    """``python -m mofsieve.eqeq PARENT_PID``: JSON in on stdin, JSON out on stdout."""
    _die_with_parent(int(sys.argv[1]))
    job = json.load(sys.stdin)
    lattice = np.asarray(job["lattice"], dtype=np.float64)
    frac = np.asarray(job["frac_coords"], dtype=np.float64)
    try:
        charges = openbabel_eqeq(np.asarray(job["atomic_numbers"]), frac @ lattice, lattice)
        answer: dict[str, object] = {"charges": charges.tolist()}
    except EqeqError as err:
        answer = {"error": str(err)}
    json.dump(answer, sys.stdout)
    return 0


# ---------------------------------------------------------------------------------------------
# the guarded call


def eqeq_charges(
    crystal: Crystal,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_atoms: int = MAX_ATOMS,
    max_pair_images: float = MAX_PAIR_IMAGES,
) -> np.ndarray:
    """EQeq charges (n_atoms,) float64 of ``crystal``: checked input, the symmetric cell
    orientation, a child process with ``timeout_s``; :class:`EqeqError` with the reason."""
    check_input(crystal, max_atoms, max_pair_images)
    # Open Babel centres its finite image sums on r_i - r_j as given: an atom moved by a
    # lattice vector changes charges by up to 0.2 e (ALAMUW). Wrapped coordinates keep every
    # window near-symmetric, as for the reference charges the module docstring cites.
    frac = np.mod(np.asarray(crystal.frac_coords, dtype=np.float64), 1.0)
    job = {
        "atomic_numbers": [int(z) for z in crystal.atomic_number],
        "frac_coords": frac.tolist(),
        "lattice": symmetric_lattice(np.asarray(crystal.lattice, dtype=np.float64)).tolist(),
    }
    command = [sys.executable, "-m", "mofsieve.eqeq", str(os.getpid())]
    try:
        done = subprocess.run(
            command, input=json.dumps(job), capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        raise EqeqError(f"EQeq did not finish within {timeout_s:g} s") from None
    if done.returncode != 0:
        code = done.returncode
        what = f"signal {-code} ({signal.Signals(-code).name})" if code < 0 else f"exit {code}"
        tail = " ".join(done.stderr.split()[-40:])
        raise EqeqError(f"the EQeq process died ({what}){': ' + tail if tail else ''}")
    try:
        answer = json.loads(done.stdout)
    except ValueError:
        raise EqeqError(f"the EQeq process answered no JSON: {done.stdout[-200:]!r}") from None
    if "error" in answer:
        raise EqeqError(str(answer["error"]))
    charges = np.asarray(answer["charges"], dtype=np.float64)
    if charges.shape != (crystal.n_atoms,) or not np.isfinite(charges).all():
        raise EqeqError(f"EQeq gave {charges.shape} values, not one finite charge per atom")
    return charges


if __name__ == "__main__":
    sys.exit(_child_main())
