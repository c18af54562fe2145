"""Structure checks: each fires on the CIF made for it and on real structures that have the
fault, stays quiet on clean MOFs and charge-balancing ions; partial occupancy both ways."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest

from mofsieve import checks
from mofsieve.cli import main
from mofsieve.featurize import Limits, featurize_cif
from mofsieve.manifest import iter_archive, package_archive
from mofsieve.store import FeaturizationParams
from mofsieve.structures import StructureError, parse_cif
from mofsieve.warning_records import (
    WarningFileError,
    WarningRecord,
    checks_by_mof,
    merge_warnings,
    read_warnings,
    write_warnings,
)

CHECK_CIFS = Path(__file__).resolve().parent / "data" / "checks"
KEEP = Limits(partial_occupancy="keep")


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def found(data: bytes, limits: Limits = KEEP) -> dict[str, str]:
    """``{check: detail}`` of one CIF featurized as ``mofsieve featurize`` does."""
    out: list[tuple[str, str]] = []
    featurize_cif("x", "x", data, FeaturizationParams(), limits, checks=out)
    return dict(out)


def shifted(path: Path, by: np.ndarray) -> bytes:
    """The CIF with every fractional coordinate moved by ``by`` (and wrapped)."""
    lines = []
    for line in path.read_text().splitlines():
        words = line.split()
        if len(words) == 6 and words[1].isalpha() and words[0][0].isalpha():
            xyz = (np.array([float(w) for w in words[2:5]]) + by) % 1.0
            words[2:5] = [f"{v:.5f}" for v in xyz]
            line = " ".join(words)
        lines.append(line)
    return ("\n".join(lines) + "\n").encode()


def test_each_check_fires_on_its_cif_and_nowhere_else(tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = ["featurize", str(CHECK_CIFS), "--out", str(out), "--jobs", "1"]
    assert main([*argv, "--partial-occupancy", "keep"]) == 0
    warned = checks_by_mof(read_warnings(out / "warnings.csv"))
    assert warned == {
        "isolated_atom": ("isolated_atom",),
        "isolated_molecule": ("isolated_molecule",),
        "coordination": ("coordination",),
        "water_charged": ("isolated_molecule",),  # neutral solvent, though the CIF has charges
        "partial_occupancy": ("coordination", "occupancy"),  # both halves bond the ring's H
        "latin1": ("encoding",),
    }  # clean, ammonium (chemistry) and pyridinium (its +0.6 e) raise nothing
    rows = {(r["mof_id"], r["check"]): r for r in read_csv(out / "warnings.csv")}
    assert rows["isolated_molecule", "isolated_molecule"]["detail"] == "1 × H2O"
    assert rows["water_charged", "isolated_molecule"]["detail"] == "1 × H2O (+0.00 e)"
    assert rows["isolated_atom", "isolated_atom"]["source"].endswith("isolated_atom.cif")
    assert rows["coordination", "coordination"]["detail"] == (
        "1 C bonded to more than 4 non-metal atoms (up to 5)"
    )
    assert (out / "warnings-00000.csv").read_bytes() == (out / "warnings.csv").read_bytes()


def test_partial_occupancy_is_rejected_by_default_naming_the_sites(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["featurize", str(CHECK_CIFS), "--out", str(out), "--jobs", "1"]) == 0
    failures = read_csv(out / "failures.csv")
    assert [(f["mof_id"], f["stage"]) for f in failures] == [("partial_occupancy", "parse")]
    assert failures[0]["reason"].startswith("partial occupancy at 2 sites (C6A 0.50, C6B 0.50)")
    assert "ingest.partial_occupancy: keep" in failures[0]["reason"]
    assert "partial_occupancy" not in checks_by_mof(read_warnings(out / "warnings.csv"))
    with pytest.raises(StructureError, match=r"partial occupancy at 2 sites \(C6A 0\.50"):
        featurize_cif("x", "x", (CHECK_CIFS / "partial_occupancy.cif").read_bytes(),
                      FeaturizationParams())  # fmt: skip


def occupancy_cif(values: tuple[str, str]) -> str:
    return (
        "data_t\n_cell_length_a 10\n_cell_length_b 10\n_cell_length_c 10\n_cell_angle_alpha 90\n"
        "_cell_angle_beta 90\n_cell_angle_gamma 90\nloop_\n_atom_site_label\n"
        "_atom_site_type_symbol\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n"
        f"_atom_site_occupancy\nCu1 Cu 0 0 0 {values[0]}\nO1 O 0.5 0.5 0.5 {values[1]}\n"
    )


@pytest.mark.parametrize(
    ("value", "full"),
    [
        ("1.00", True), ("1", True), ("?", True), (".", True), ("0.99", True), ("0.999(1)", True),
        ("0.98(2)", True), ("1.00(3)", True), ("0.5", False), ("0.95", False),
        ("0.97(1)", False), ("0.9", False), ("0.9(1)", False), ("0", False),
    ],
)  # fmt: skip
def test_occupancy_counts_as_full_within_the_cifs_precision(value: str, full: bool) -> None:
    crystal = parse_cif(occupancy_cif(("1.0", value)))
    assert crystal.notes == (
        () if full else (("occupancy", f"1 site with partial occupancy read as full atoms: O1 "
                                       f"{value}"),)
    )  # fmt: skip
    if not full:
        with pytest.raises(
            StructureError, match=rf"partial occupancy at 1 site \(O1 {re.escape(value)}\)"
        ):
            parse_cif(occupancy_cif(("1.0", value)), partial_occupancy="reject")


def test_an_unknown_occupancy_policy_is_an_error() -> None:
    with pytest.raises(ValueError, match="partial_occupancy must be one of"):
        parse_cif(occupancy_cif(("1", "1")), partial_occupancy="drop")


def test_a_molecule_across_the_cell_boundary_is_still_a_molecule() -> None:
    """Bonds through periodic images that close on themselves are finite: the water of
    isolated_molecule.cif moved onto the cell's corner, its H atoms in other images of the
    cell, is still a stray molecule and the framework (moved alike) still one framework."""
    path = CHECK_CIFS / "isolated_molecule.cif"
    oxygen = next(
        np.array([float(w) for w in line.split()[2:5]])
        for line in path.read_text().splitlines()
        if line.startswith("O100 ")
    )
    for by in (-oxygen, -oxygen + 0.5, np.array([0.25, 0.5, 0.75])):
        assert found(shifted(path, by)) == {"isolated_molecule": "1 × H2O"}, by


def test_frameworks_extend_molecules_close_and_cages_fall_back_to_the_largest(
    test_data: Path,
) -> None:
    cu = parse_cif((test_data / "good" / "cu_fcc_p1.cif").read_bytes())
    from mofsieve.graphs import neighbour_graph

    graph = neighbour_graph(cu.frac_coords, cu.lattice)
    bonds = checks.find_bonds(cu.atomic_number, graph.src, graph.dst, graph.dist, graph.image)
    labels, periodic = checks.periodic_components(cu.n_atoms, bonds)
    assert len(set(labels)) == 1 and periodic.tolist() == [True]  # a metal is one net
    # a crystal of molecules only: one water in a big box, twice → both are "framework"
    water = ("data_w\n_cell_length_a 12\n_cell_length_b 12\n_cell_length_c 12\n"
             "_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma 90\nloop_\n"
             "_atom_site_type_symbol\n_atom_site_fract_x\n_atom_site_fract_y\n"
             "_atom_site_fract_z\nO 0.99 0.99 0.99\nH 0.05 0.04 0.99\nH 0.93 0.04 0.99\n"
             "O 0.5 0.5 0.5\nH 0.56 0.55 0.5\nH 0.44 0.55 0.5\nH 0.25 0.25 0.25\n")  # fmt: skip
    assert found(water.encode()) == {"isolated_atom": "1 × H"}  # the lone H, not the waters


# ----------------------------------------------------------------------------- real structures

# CoRE MOF 2019-ASR structures (core-mof package, no partial charges) and what a
# crystallographer sees in them; the detail where it names what the check found
REAL = {
    "ABAVIJ_clean": {},  # a cobalt MOF, nothing odd
    "ACOCOM_clean": {"coordination": "480 C bonded to more than 4 non-metal atoms (up to 5)"},
    # ^ two orientations of each ring overlaid: C–C 1.07 Å beside the 1.38 Å bonds
    "ADOGEH_clean": {"coordination": "96 H bonded to more than 1 non-metal atoms (up to 2)"},
    # ^ each such H 0.54 Å from an N and 0.93 Å from a C
    "BIWSEG_ion_b": {"isolated_atom": "24 × Cu"},  # bare Cu: nothing else within 4 Å
    "VETSOE_charged": {"isolated_atom": "2 × Mn"},  # a bare Mn 7.2 Å from any atom
    "MODMOH_charged": {"isolated_molecule": "2 × C12H8N2"},  # free phenanthroline (neutral)
    "NOSJIQ_charged": {"isolated_molecule": "2 × CH3"},  # a methyl cut off (C–C 1.95 Å)
    "EROCIZ_clean": {"isolated_molecule": "3 × C36H36N24O12, 1 × C36H34N24O12"},  # cucurbituril
    # charge-balancing ions, each recognised by one rule, raise nothing:
    "AFEJOK_ion_b": {},  # PF6- (oxo/fluoro anion)
    "WILGEE_charged": {},  # SiF6 2- (oxo/fluoro anion)
    "ALOLES_ion_b": {},  # NH4+ (ammonium)
    "AWEBIO_charged": {},  # dimethylammonium C2H8N (ammonium)
    "ALOLET_charged": {},  # dimethylammonium without its N–H, C2H6N (known formula)
    "FUYZAB_ion_b": {},  # ethylenediamine(ium), C–N 1.39 Å but no ring (amine)
    "QIBTAW_charged": {},  # tetraphenylborate (borate)
    "AGUVOO_charged": {},  # trifluoroacetate (carboxylate)
    "BAZDAJ_clean": {},  # [Fe(L)Cl2]+ (a metal complex, in a CIF without charges)
}


@pytest.fixture(scope="module")
def core_mof() -> dict[str, bytes]:
    pytest.importorskip("CoRE_MOF", reason="the core-mof package (pip install '.[demo]')")
    wanted, out = set(REAL), {}
    for name, data in iter_archive(package_archive("core-mof:2019-ASR")):
        if Path(name).stem in wanted:
            out[Path(name).stem] = data
            if len(out) == len(wanted):
                return out
    pytest.fail(f"core-mof lacks {sorted(wanted - set(out))}")


@pytest.mark.parametrize("mof_id", sorted(REAL))
def test_checks_on_real_core_mof_structures(core_mof: dict[str, bytes], mof_id: str) -> None:
    assert found(core_mof[mof_id], Limits()) == REAL[mof_id]


@pytest.mark.shared
def test_charged_complexes_in_the_shared_core_set_are_ions(shared_core: Path) -> None:
    """With partial charges, complex ions the chemistry rules cannot name are told apart
    from neutral molecules by their net charge: BAZDAJ's [Fe(L)Cl2]+ (+0.36 e against an
    anionic oxalate layer) and KUCXIP's [Co(CN)6] (-0.18 e) raise nothing, while the neutral
    Ag complex of WUTKUR (-0.09 e) is an isolated molecule."""
    wanted = {"BAZDAJ_clean": {}, "KUCXIP_clean": {}, "WUTKUR_clean": {"isolated_molecule"}}
    seen = {}
    for name, data in iter_archive(shared_core / "cifs.tar.xz"):
        if Path(name).stem in wanted:
            seen[Path(name).stem] = set(found(data, Limits()))
    assert seen == {k: set(v) for k, v in wanted.items()}


# ---------------------------------------------------------------------------- warning records


def test_warning_records_round_trip_merge_and_name_each_mofs_checks(tmp_path: Path) -> None:
    a = [WarningRecord("m1", "a.cif", "coordination", "1 C bonded to more than 4, x; y")]
    b = [WarningRecord("m2", "b,c.cif", "isolated_atom", "2 × H"),
         WarningRecord("m1", "a.cif", "encoding", "not UTF-8"),
         WarningRecord("m1", "a.cif", "coordination", "2 H bonded to more than 1")]  # fmt: skip
    write_warnings(a, tmp_path / "w-0.csv")
    write_warnings(b, tmp_path / "w-1.csv")
    merge_warnings([tmp_path / "w-0.csv", tmp_path / "w-1.csv"], tmp_path / "all.csv")
    assert read_warnings(tmp_path / "all.csv") == a + b
    # each check once per MOF, sorted by name: what ranked.csv's checks column holds
    assert checks_by_mof(b + a) == {"m1": ("coordination", "encoding"), "m2": ("isolated_atom",)}


def test_a_warning_file_without_its_columns_is_refused_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "warnings.csv"
    bad.write_text("mof_id,source,stage,reason\nm,a.cif,parse,x\n")
    with pytest.raises(WarningFileError, match=r"warnings.csv is not a mofsieve warning file"):
        read_warnings(bad)
