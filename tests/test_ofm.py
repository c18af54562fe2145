"""Orbital field matrices from periodic Voronoi cells (mofsieve.ofm): by hand on fcc Cu and
rock salt, 4π per atom on real MOFs, matminer's numbers, and the convex-hull fallback."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from mofsieve import ofm
from mofsieve.structures import parse_cif

REFERENCE = Path(__file__).parent / "data" / "ofm" / "matminer_reference.npz"
MOFS = ("ADAXEK_clean", "AGESIP_clean", "AHOKIR01_clean")

BOHR = 0.529177  # Å
FCC = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]], dtype=float)


def _reference(name: str) -> dict[str, np.ndarray]:
    with np.load(REFERENCE) as ref:
        return {k.split("/")[1]: ref[k] for k in ref.files if k.startswith(name + "/")}


def _slot(shell: str, electrons: int) -> int:
    return {"s": 0, "p": 2, "d": 8, "f": 18}[shell] + electrons - 1


def test_valence_onehot_marks_the_valence_subshells():
    o = ofm.valence_onehot(np.array([1, 8, 29, 30, 82]))
    set_slots = [sorted(np.nonzero(row)[0].tolist()) for row in o]
    assert set_slots[0] == [_slot("s", 1)]  # H 1s1
    assert set_slots[1] == [_slot("s", 2), _slot("p", 4)]  # O 2s2 2p4
    assert set_slots[2] == [_slot("s", 1), _slot("d", 10)]  # Cu 3d10 4s1
    assert set_slots[3] == [_slot("s", 2), _slot("d", 10)]  # Zn 3d10 4s2, no core p6
    assert set_slots[4] == [_slot("s", 2), _slot("p", 2), _slot("d", 10), _slot("f", 14)]  # Pb
    with pytest.raises(ValueError, match="outside 1–103"):
        ofm.valence_onehot(np.array([0]))


def test_fcc_copper_by_hand(test_data):
    """fcc: 12 nearest neighbours at a/√2, each behind a face of 4π/12 (a rhombic
    dodecahedron), so s(Cu) = 12 / r_Bohr · o(Cu) and X = o(Cu) ⊗ s(Cu)."""
    crystal = parse_cif((test_data / "good" / "cu_fcc_p1.cif").read_bytes())
    a = float(np.linalg.norm(crystal.lattice[0]))
    faces = ofm.voronoi_faces(crystal.frac_coords, crystal.lattice)
    assert np.bincount(faces.centre).tolist() == [12] * 4
    np.testing.assert_allclose(faces.solid_angle, 4 * math.pi / 12, rtol=1e-6)
    np.testing.assert_allclose(faces.dist, a / math.sqrt(2), rtol=1e-6)
    s = ofm.orbital_neighbour_sum(crystal.atomic_number, crystal.frac_coords, crystal.lattice)
    o_cu = ofm.valence_onehot(np.array([29]))[0]
    want = 12 / (a / math.sqrt(2) / BOHR) * o_cu  # every w_k = 1 / r_Bohr
    np.testing.assert_allclose(s, np.tile(want, (4, 1)), rtol=2e-5)  # ("Angstrom star")
    x = ofm.orbital_field_matrix(crystal.atomic_number, s)
    np.testing.assert_allclose(x[0], np.outer(o_cu, want), rtol=2e-5)
    assert x[0][_slot("d", 10), _slot("s", 1)] == pytest.approx(want[_slot("s", 1)], rel=2e-5)


def test_rock_salt_by_hand():
    """NaCl: each ion sees 6 counter-ions at a/2 through the faces of a cube, 2π/3 each."""
    a = 5.64
    frac = np.vstack([FCC, FCC + [0.5, 0, 0]])
    z = np.array([11] * 4 + [17] * 4)
    faces = ofm.voronoi_faces(frac, np.eye(3) * a)
    np.testing.assert_allclose(faces.solid_angle, 2 * math.pi / 3, rtol=1e-6)
    assert (z[faces.centre] != z[faces.neighbour]).all()  # only counter-ions share faces
    s = ofm.orbital_neighbour_sum(z, frac, np.eye(3) * a)
    o = ofm.valence_onehot(z)
    weight = 6 / (a / 2 / BOHR)
    np.testing.assert_allclose(s[:4], weight * o[4:], rtol=2e-5)  # Na sees Cl
    np.testing.assert_allclose(s[4:], weight * o[:4], rtol=2e-5)  # Cl sees Na


def test_primitive_fcc_cell_sees_only_its_own_images():
    """One atom per cell (60° rhombohedral cell): all 12 faces are shared with the atom's own
    periodic images, the case matminer's minimum-image distance cannot handle (r = 0)."""
    a = 3.61 / math.sqrt(2)
    lattice = a * np.array([[1, 0, 0], [0.5, math.sqrt(3) / 2, 0], [0.5, math.sqrt(3) / 6,
                                                                       math.sqrt(2 / 3)]])  # fmt: skip
    faces = ofm.voronoi_faces(np.zeros((1, 3)), lattice)
    assert len(faces.centre) == 12 and (faces.neighbour == 0).all()
    np.testing.assert_allclose(faces.solid_angle, 4 * math.pi / 12, rtol=1e-6)
    np.testing.assert_allclose(faces.dist, a, rtol=1e-6)


@pytest.mark.parametrize("name", MOFS)
def test_solid_angles_add_up_to_4pi_for_every_atom_of_real_mofs(name):
    ref = _reference(name)
    faces = ofm.voronoi_faces(ref["frac_coords"], ref["lattice"])
    total = np.bincount(
        faces.centre, weights=faces.solid_angle, minlength=len(ref["atomic_number"])
    )
    np.testing.assert_allclose(total, 4 * math.pi, atol=1e-4)


def _minimum_image_distances(frac: np.ndarray, lattice: np.ndarray, faces) -> np.ndarray:
    delta = frac[faces.neighbour] - frac[faces.centre]
    delta -= np.rint(delta)
    shifts = np.stack(np.meshgrid(*[[-1, 0, 1]] * 3), -1).reshape(-1, 3)
    return np.linalg.norm((delta[:, None, :] + shifts) @ lattice, axis=-1).min(axis=1)


@pytest.mark.parametrize("name", ["cu_fcc", "nacl_rocksalt", *MOFS])
def test_agrees_with_matminers_per_site_ofm(name):
    """Against matminer's per-site OFM (stored; see tests/data/ofm/make_matminer_reference.py).

    matminer divides by the minimum-image distance to the neighbour atom, not by the
    distance to the image that owns the face; with its distances our solid angles and
    one-hots give its matrices to 1e-5. Sites with a face to their own image (r = 0 in
    matminer: inf/NaN) are exactly those it cannot give."""
    ref = _reference(name)
    z, frac, lattice = ref["atomic_number"], ref["frac_coords"], ref["lattice"]
    want = np.zeros((len(z), 32, 32))
    want[tuple(ref["entries"])] = ref["values"]
    faces = ofm.voronoi_faces(frac, lattice)
    r_min = _minimum_image_distances(frac, lattice, faces)
    theta_max = np.zeros(len(z))
    np.maximum.at(theta_max, faces.centre, faces.solid_angle)
    s = np.zeros((len(z), 32))
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = faces.solid_angle / theta_max[faces.centre] / (r_min * ofm.ANG_TO_BOHR)
        np.add.at(s, faces.centre, weight[:, None] * ofm.valence_onehot(z)[faces.neighbour])
        got = ofm.orbital_field_matrix(z, s).transpose(0, 2, 1)  # matminer: neighbour × centre
    self_face = np.zeros(len(z), dtype=bool)
    self_face[faces.centre[r_min < 1e-9]] = True
    assert (~np.isfinite(want).all(axis=(1, 2)) == self_face).all()
    ok = ~self_face
    scale = np.abs(want[ok]).max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(got[ok] / scale, want[ok] / scale, atol=1e-5)
    if name in ("cu_fcc", "nacl_rocksalt"):  # no face beyond the minimum image: directly
        direct = ofm.orbital_neighbour_sum(z, frac, lattice)
        np.testing.assert_allclose(ofm.orbital_field_matrix(z, direct).transpose(0, 2, 1),
                                   want, rtol=1e-6)  # fmt: skip


@pytest.mark.parametrize("name", MOFS)
def test_convex_hull_route_gives_freuds_faces(name, monkeypatch):
    """Every atom through the fallback for faces voro++ dropped: the same s(c)."""
    ref = _reference(name)
    args = (ref["atomic_number"], ref["frac_coords"], ref["lattice"])
    direct = ofm.orbital_neighbour_sum(*args)
    monkeypatch.setattr(ofm, "_FULL_SPHERE_TOL", -1.0)  # every atom "falls short"
    recovered = ofm.orbital_neighbour_sum(*args)
    np.testing.assert_allclose(recovered, direct, rtol=1e-5, atol=1e-6)


def test_permuting_atoms_permutes_the_neighbour_sums():
    ref = _reference("AGESIP_clean")
    z, frac, lattice = ref["atomic_number"], ref["frac_coords"], ref["lattice"]
    perm = np.random.default_rng(3).permutation(len(z))
    s = ofm.orbital_neighbour_sum(z, frac, lattice)
    s_perm = ofm.orbital_neighbour_sum(z[perm], frac[perm], lattice)
    np.testing.assert_allclose(s_perm, s[perm], rtol=1e-5, atol=1e-6)
