from __future__ import annotations

import re

import numpy as np
import pytest

from mofsieve.structures import StructureError, parse_cif


def read(test_data, name: str) -> bytes:
    return (test_data / name).read_bytes()


def test_p1_symmetry_operators_and_space_group_name_give_the_same_cell(test_data):
    cells = [
        parse_cif(read(test_data, f"good/{name}.cif"))
        for name in ("cu_fcc_p1", "cu_fcc_symmetry", "cu_fcc_spacegroup_name")
    ]
    reference = {tuple(np.round(x, 6)) for x in cells[0].frac_coords}
    assert len(reference) == 4
    for cell in cells:
        assert cell.n_atoms == 4
        assert set(cell.atomic_number.tolist()) == {29}
        assert {tuple(np.round(x, 6)) for x in cell.frac_coords} == reference
        np.testing.assert_allclose(np.linalg.det(cell.lattice), 3.615**3, rtol=1e-9)


def test_site_charges_are_read_and_missing_charges_are_nan(test_data):
    charged = parse_cif(read(test_data, "good/toy_framework_charged.cif"))
    assert charged.charge.dtype == np.float32
    np.testing.assert_allclose(charged.charge[:3], [1.2, -0.6, -0.6], rtol=1e-6)
    assert charged.atomic_number[0] == 30  # 'Zn2+' type symbol is zinc
    uncharged = parse_cif(read(test_data, "good/cu_fcc_p1.cif"))
    assert np.isnan(uncharged.charge).all()


def test_crlf_uncertainties_and_per_type_charges(test_data):
    crystal = parse_cif(read(test_data, "good/toy_crlf_type_charges.cif"))
    assert crystal.n_atoms == 5
    a = np.linalg.norm(crystal.lattice[0])
    assert a == pytest.approx(7.512)  # '7.512(3)' loses its uncertainty, keeps its value
    np.testing.assert_allclose(crystal.charge, [1.2, -0.6, -0.6, 0.55, 0.10], rtol=1e-6)


def test_near_thirds_are_snapped_like_pymatgen(test_data):
    crystal = parse_cif(read(test_data, "good/toy_crlf_type_charges.cif"))
    assert crystal.frac_coords[0, 0] == 1 / 3  # 0.3333(1) is one third
    assert crystal.frac_coords[0, 1] == 2 / 3
    assert crystal.frac_coords[3, 0] == pytest.approx(0.62)  # ordinary values untouched


def test_cartesian_coordinates_are_converted(test_data):
    crystal = parse_cif(read(test_data, "good/cartesian_only.cif"))
    np.testing.assert_allclose(crystal.cart_coords[1] - crystal.cart_coords[0], [0, 0, 1.128])


def test_coordinates_are_wrapped_into_the_unit_cell():
    text = (
        "data_w\n_cell_length_a 5\n_cell_length_b 5\n_cell_length_c 5\n"
        "_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma 90\n"
        "loop_\n_atom_site_type_symbol\n_atom_site_fract_x\n_atom_site_fract_y\n"
        "_atom_site_fract_z\nC -0.25 1.5 0.0\n"
    )
    crystal = parse_cif(text)
    np.testing.assert_allclose(crystal.frac_coords[0], [0.75, 0.5, 0.0])


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("empty", "empty file"),
        ("syntax_error", "CIF syntax error"),
        ("binary_garbage", "CIF syntax error"),
        ("no_atoms", "no atom sites"),
        ("missing_cell", "missing _cell_length_c"),
        ("degenerate_cell", "degenerate cell"),
        ("unknown_element", "unknown element 'Xq'"),
        ("nonfinite_coordinate", "non-finite _atom_site_fract_x 'nan' at atom site 2"),
        ("missing_coordinate", "missing or non-finite _atom_site_fract_x '?'"),
        ("two_structures", "2 data blocks with atoms"),
        ("bad_symmetry_operator", "unreadable symmetry operator"),
    ],
)
def test_each_kind_of_broken_cif_is_rejected_with_its_reason(test_data, name, reason):
    with pytest.raises(StructureError, match=re.escape(reason)) as err:
        parse_cif(read(test_data, f"broken/{name}.cif"))
    assert reason in err.value.reason
    assert err.value.stage == "parse"


def test_atom_limit_is_configurable(test_data):
    text = read(test_data, "good/toy_framework_charged.cif")
    assert parse_cif(text, max_atoms=10).n_atoms == 10
    with pytest.raises(StructureError, match="10 atoms in the unit cell exceeds the limit of 9"):
        parse_cif(text, max_atoms=9)
