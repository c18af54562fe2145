"""EQeq charges through Open Babel (mofsieve.eqeq): the skewed-cell runaway that Open Babel
gives on its own, refused by the bounds; the same MOF sane after the orientation fix; the
guards in front of Open Babel and the child process that isolates it."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import numpy as np
import pytest

from mofsieve import eqeq
from mofsieve.charge_sources import ChargeSourceError, assign_charges, check_bounds
from mofsieve.eqeq import EqeqError, eqeq_charges
from mofsieve.structures import Crystal, parse_cif

pytest.importorskip("openbabel", reason=f"Open Babel ({eqeq.OPENBABEL_WHEEL})")

# ALAMUW: Cu paddlewheel MOF, 150 atoms, cell angles 61.9°, 61.9°, 60° (CoRE MOF 2019)
ALAMUW = "ALAMUW_clean"


def core_mof_cif(name: str) -> bytes:
    """A real CoRE MOF 2019-ASR CIF (no partial charges) from the core-mof package."""
    pytest.importorskip("CoRE_MOF", reason="the core-mof package (pip install '.[demo]')")
    from mofsieve.manifest import iter_archive, package_archive

    member = f"{name}.cif"
    found = dict(iter_archive(package_archive("core-mof:2019-ASR"), {member}))
    return found[member]


@pytest.fixture(scope="module")
def alamuw() -> Crystal:
    return parse_cif(core_mof_cif(ALAMUW))


def shared_charges(shared_core: Path, name: str) -> Crystal:
    """The shared CoRE copy's CIF of ``name``, with its (EQeq) charges."""
    from mofsieve.manifest import iter_archive

    member = f"core2019_charged/{name}.cif"
    found = dict(iter_archive(shared_core / "cifs.tar.xz", {member}))
    if member not in found:
        pytest.skip(f"{member} not in the shared archive")
    return parse_cif(found[member])


def test_open_babel_on_its_own_runs_away_on_a_skewed_cell_and_the_bounds_refuse_it(
    alamuw: Crystal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What Open Babel does unaided (its CIF reader, its cell orientation, its EQeq): Cu up
    to ~+11 e, C to ~-16 e on a Cu paddlewheel MOF; the bounds refuse it with the atom."""
    from openbabel import openbabel as ob

    conversion = ob.OBConversion()
    conversion.SetInFormat("cif")
    mol = ob.OBMol()
    assert conversion.ReadString(mol, core_mof_cif(ALAMUW).decode())
    assert ob.OBChargeModel.FindType("eqeq").ComputeCharges(mol)
    atoms = list(ob.OBMolAtomIter(mol))
    assert [a.GetAtomicNum() for a in atoms] == alamuw.atomic_number.tolist()  # same order
    runaway = np.array([a.GetPartialCharge() for a in atoms])
    assert abs(runaway.sum()) < 1e-3  # neutral, finite: only the bounds can tell
    assert runaway[alamuw.atomic_number == 29].max() > 5.0
    with pytest.raises(
        ChargeSourceError,
        match=r"^implausible charge -\d+\.\d+ e on C\d+, outside C's \[-1\.60, \+1\.60\] e "
        r"\(\d+ of 150 atoms outside their bounds\)$",
    ):
        check_bounds(alamuw, runaway)
    # the eqeq source applies them: such a result is refused, and the next source is asked
    monkeypatch.setattr(eqeq, "eqeq_charges", lambda crystal: runaway)
    with pytest.raises(
        ChargeSourceError,
        match=r"^eqeq: implausible charge -\d+\.\d+ e on C\d+, .*\); cif: the CIF has no partial",
    ):
        assign_charges(alamuw, ["eqeq", "cif"])


def test_eqeq_of_the_same_mof_in_a_symmetric_cell_is_sane_and_neutral(alamuw: Crystal) -> None:
    charges = eqeq_charges(alamuw)
    assert charges.shape == (150,) and np.isfinite(charges).all()
    assert abs(charges.sum()) < 1e-3
    check_bounds(alamuw, charges)
    cu = charges[alamuw.atomic_number == 29]
    # six symmetry-equivalent Cu(II) of paddlewheels: one charge, near the published +0.90 e
    assert cu.size == 6 and np.ptp(cu) < 0.01 and 0.8 < cu.mean() < 1.0
    assert (charges[alamuw.atomic_number == 8] < 0).all()


def test_eqeq_sums_periodic_images_a_supercell_gives_each_copy_the_same_charges(
    alamuw: Crystal,
) -> None:
    """A 2×1×1 supercell is the same crystal: both copies get the primitive cell's charges
    (to the truncation of Open Babel's image sums, ~0.01 e). Without periodic images, or
    with the images Open Babel takes in its own orientation of a skewed cell, they differ."""
    n = alamuw.n_atoms
    double = dataclasses.replace(
        alamuw,
        atomic_number=np.tile(alamuw.atomic_number, 2),
        frac_coords=np.vstack([alamuw.frac_coords, alamuw.frac_coords + [1, 0, 0]]) / [2, 1, 1],
        lattice=alamuw.lattice * np.array([[2.0], [1.0], [1.0]]),
        charge=np.tile(alamuw.charge, 2),
    )
    primitive = eqeq_charges(alamuw)
    both = eqeq_charges(double)
    np.testing.assert_allclose(both[:n], primitive, atol=0.02)
    np.testing.assert_allclose(both[n:], primitive, atol=0.02)


@pytest.mark.shared
@pytest.mark.parametrize("name", [ALAMUW, "DUWTAS_clean"])
def test_eqeq_reproduces_the_reference_charges_of_the_shared_set(
    shared_core: Path, name: str
) -> None:
    """The shared CoRE copy's charges are EQeq charges: the fixed orientation gives them
    back (Open Babel alone: r = 0.09 on ALAMUW, 0.995 on the nearly orthogonal DUWTAS)."""
    crystal = shared_charges(shared_core, name)
    charges = eqeq_charges(crystal)
    assert np.corrcoef(charges, crystal.charge)[0, 1] > 0.999
    assert np.abs(charges - crystal.charge).max() < 0.03


def test_the_eqeq_source_records_its_method_and_program(alamuw: Crystal) -> None:
    got = assign_charges(alamuw, ["cif", "eqeq"])
    assert got.method == "eqeq" and got.detail == eqeq.EQEQ_NAME
    assert abs(got.net_charge) < 1e-3


# ------------------------------------------------------------------------------------- guards


def toy(test_data: Path, symbol: str = "Zn") -> Crystal:
    text = (test_data / "good" / "toy_framework_charged.cif").read_text()
    return parse_cif(text.replace("Zn1 Zn2+", f"{symbol}1 {symbol}"))


@pytest.fixture
def no_child(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a child process is started: the guard must come first."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("Open Babel was started")

    monkeypatch.setattr(eqeq.subprocess, "run", refuse)


@pytest.mark.parametrize(
    ("symbol", "reason"),
    [
        ("Au", "Open Babel's EQeq has no ionisation data for Au"),  # charge centre +3, no I3
        ("U", "Open Babel's EQeq has no ionisation data for U"),  # beyond its table (Z ≤ 84)
    ],
)
def test_an_element_without_eqeq_data_is_refused_before_open_babel_runs(
    test_data: Path, no_child: None, symbol: str, reason: str
) -> None:
    with pytest.raises(EqeqError, match=f"^{reason}$"):
        eqeq_charges(toy(test_data, symbol))


def test_too_many_atoms_or_too_much_work_is_refused_before_open_babel_runs(
    test_data: Path, no_child: None
) -> None:
    crystal = toy(test_data)  # 10 atoms, cell ~8 Å: 19 × 19 × 17 images per pair
    assert eqeq.images_per_pair(np.linalg.norm(crystal.lattice, axis=1)) == 19 * 19 * 17
    with pytest.raises(EqeqError, match="^10 atoms in the cell, more than the 9 EQeq is given$"):
        eqeq_charges(crystal, max_atoms=9)
    with pytest.raises(EqeqError, match=r"too much work for EQeq: 10 atoms × 10 × 6137 periodic"):
        eqeq_charges(crystal, max_pair_images=1e5)


def test_supported_elements_are_those_open_babel_computes(no_child: None) -> None:
    """The guard's reading of eqeqIonizations.txt agrees with Open Babel, element by element
    (a pair with O in a 10 Å cube; in this process: every input here is valid)."""
    disagree = []
    for z in range(1, 85):
        try:
            q = eqeq.openbabel_eqeq(np.array([z, 8]), np.array([[0, 0, 0], [2.0, 0, 0]]),
                                    np.eye(3) * 10.0)  # fmt: skip
            computed = bool(np.isfinite(q).all())
        except EqeqError:
            computed = False
        if computed != (z in eqeq.supported_elements()):
            disagree.append(z)
    assert disagree == []
    assert 79 not in eqeq.supported_elements() and 29 in eqeq.supported_elements()


def fake_python(tmp_path: Path, body: str) -> str:
    script = tmp_path / "python"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return str(script)


def test_a_crashing_or_hanging_eqeq_process_costs_the_call_only(
    test_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    crystal = toy(test_data)
    monkeypatch.setattr(eqeq.sys, "executable", fake_python(tmp_path, "kill -SEGV $$"))
    with pytest.raises(EqeqError, match=r"^the EQeq process died \(signal 11 \(SIGSEGV\)\)$"):
        eqeq_charges(crystal)
    monkeypatch.setattr(eqeq.sys, "executable", fake_python(tmp_path, "exec sleep 30"))
    with pytest.raises(EqeqError, match=r"^EQeq did not finish within 0\.5 s$"):
        eqeq_charges(crystal, timeout_s=0.5)
    monkeypatch.setattr(eqeq.sys, "executable", fake_python(tmp_path, "echo '{\"charges\": [1]}'"))
    with pytest.raises(EqeqError, match=r"^EQeq gave \(1,\) values, not one finite charge"):
        eqeq_charges(crystal)


def test_the_child_process_reports_open_babels_own_refusal() -> None:
    """Open Babel's failure text comes back through the child's JSON (input no guard would
    pass: the child is called directly)."""
    import json
    import os
    import sys

    job = {"atomic_numbers": [79, 8], "frac_coords": [[0, 0, 0], [0.2, 0, 0]],
           "lattice": (np.eye(3) * 10).tolist()}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "mofsieve.eqeq", str(os.getpid())],
        input=json.dumps(job), capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert json.loads(done.stdout) == {
        "error": "Open Babel's EQeq failed: Insufficient ionization data for atoms in the given "
        "molecule. Update `data/eqeqIonizations.txt` with missing information and re-run this "
        "function."
    }
