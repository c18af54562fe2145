from __future__ import annotations

import csv
import json
import logging
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from mofsieve import forcefield, gcmc
from mofsieve.cli import main
from mofsieve.structures import parse_cif


def cif(a: float, charges: list[float] | None, gamma: float = 90.0, extra: str = "") -> str:
    charge_col = "_atom_site_charge\n" if charges else ""
    q = [f" {c}" for c in charges] if charges else ["", ""]
    return (
        f"data_t\n_cell_length_a {a}\n_cell_length_b {a}\n_cell_length_c 30\n"
        f"_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma {gamma}\n"
        "loop_\n_atom_site_label\n_atom_site_type_symbol\n_atom_site_fract_x\n"
        f"_atom_site_fract_y\n_atom_site_fract_z\n{charge_col}"
        f"Zn1 Zn 0.1 0.2 0.3{q[0]}\nO1 O 0.6 0.7 0.8{q[1]}\n{extra}"
    )


def flagged_csv(tmp_path: Path, cifs: dict[str, str]) -> Path:
    rows = []
    for mof_id, text in cifs.items():
        path = tmp_path / "cifs" / f"{mof_id}.cif"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        rows.append(f"{len(rows) + 1},{mof_id},1.0,0.1,yes,2,{path}\n")
    out = tmp_path / "flagged.csv"
    out.write_text(
        "rank,mof_id,prediction_mol_per_kg,uncertainty_mol_per_kg,flagged,n_atoms,source\n"
        + "".join(rows)
    )
    return out


def test_uff_parameters_are_the_published_lennard_jones_values() -> None:
    eps, sigma = forcefield.uff_lennard_jones("C")  # x = 3.851 Å, D = 0.105 kcal/mol
    assert sigma == pytest.approx(3.43085, abs=1e-4)
    assert eps == pytest.approx(52.838, abs=1e-2)
    eps, sigma = forcefield.uff_lennard_jones("Zn")  # x = 2.763 Å, D = 0.124 kcal/mol
    assert sigma == pytest.approx(2.46155, abs=1e-4)
    assert eps == pytest.approx(62.40, abs=1e-2)
    assert len(forcefield.UFF_X_D) == 103


def test_unknown_element_is_refused() -> None:
    with pytest.raises(forcefield.ForceFieldError, match="no UFF parameters for element 'Og'"):
        forcefield.uff_lennard_jones("Og")


def test_unit_cells_use_perpendicular_widths_not_lengths() -> None:
    cubic = np.diag([10.0, 10.0, 30.0])
    assert forcefield.unit_cells(cubic, 12.0) == (3, 3, 1)
    assert forcefield.unit_cells(np.diag([24.0, 24.0, 24.0]), 12.0) == (1, 1, 1)
    # hexagonal a = b = 13 Å: lengths say 2 copies, but the width is 13 sin 60° = 11.26 Å
    hexagonal = np.array([[13.0, 0, 0], [-6.5, 13.0 * np.sqrt(3) / 2, 0], [0, 0, 30.0]])
    assert forcefield.perpendicular_widths(hexagonal)[0] == pytest.approx(11.258, abs=1e-3)
    assert forcefield.unit_cells(hexagonal, 12.0) == (3, 3, 1)


def test_folder_per_flagged_mof_with_charged_p1_cif_and_raspa_inputs(tmp_path: Path) -> None:
    flagged = flagged_csv(tmp_path, {"HEX": cif(13.0, [0.8, -0.8], gamma=120.0)})
    out = tmp_path / "gcmc"
    assert main(["gcmc", "--flagged", str(flagged), "--out", str(out), "--pressure", "16",
                 "--temperature", "298", "--cycles", "500", "--init-cycles", "100"]) == 0  # fmt: skip
    folder = out / "HEX"
    sim = (folder / "simulation.input").read_text()
    assert "UseChargesFromCIFFile         yes" in sim
    assert "ExternalPressure              1.6e+06" in sim
    assert "ExternalTemperature           298.0" in sim
    assert "UnitCells                     3 3 1" in sim
    assert "NumberOfCycles                500" in sim
    assert "FrameworkName                 HEX" in sim
    assert "WARNING" not in sim

    original = parse_cif(cif(13.0, [0.8, -0.8], gamma=120.0))
    written = parse_cif((folder / "HEX.cif").read_text())
    np.testing.assert_allclose(written.lattice, original.lattice, atol=1e-5)
    np.testing.assert_allclose(written.frac_coords, original.frac_coords, atol=1e-7)
    np.testing.assert_allclose(written.charge, [0.8, -0.8])

    mixing = (folder / "force_field_mixing_rules.def").read_text()
    assert "Lorentz-Berthelot" in mixing
    lines = mixing.splitlines()
    n_interactions = int(lines[lines.index("# number of defined interactions") + 1])
    typed = [ln.split()[0] for ln in lines if "lennard-jones" in ln]
    assert typed == ["O", "Zn", "C_co2", "O_co2"] and n_interactions == 4
    pseudo = (folder / "pseudo_atoms.def").read_text().splitlines()
    assert int(pseudo[1]) == 4 and len(pseudo) == 3 + 4
    co2 = (folder / "CO2.def").read_text()
    assert "O_co2 0.0 0.0 1.1600" in co2 and "rigid" in co2
    assert (out / "mofs.txt").read_text() == "HEX\n"


def test_sbatch_array_script_runs_each_task_in_its_folder(tmp_path: Path) -> None:
    flagged = flagged_csv(tmp_path, {"M1": cif(25.0, [1, -1]), "M2": cif(25.0, [1, -1])})
    out = tmp_path / "gcmc"
    assert main(["gcmc", "--flagged", str(flagged), "--out", str(out)]) == 0
    script = out / "run_raspa.sbatch"
    text = script.read_text()
    assert "#SBATCH --array=0-1" in text
    subprocess.run(["bash", "-n", str(script)], check=True)
    stub = tmp_path / "simulate"
    stub.write_text('#!/bin/sh\ntest -f simulation.input && basename "$PWD" > ran.txt\n')
    stub.chmod(0o755)
    for task in (0, 1):
        env = {
            **os.environ,
            "SLURM_ARRAY_TASK_ID": str(task),
            "SLURM_SUBMIT_DIR": str(out),
            "RASPA_SIMULATE": str(stub),
        }
        subprocess.run(["bash", str(script)], check=True, env=env, capture_output=True)
    assert (out / "M1" / "ran.txt").read_text() == "M1\n"
    assert (out / "M2" / "ran.txt").read_text() == "M2\n"


def test_missing_and_non_neutral_charges_warn_and_are_recorded(tmp_path: Path, caplog) -> None:
    flagged = flagged_csv(
        tmp_path, {"NOQ": cif(25.0, None), "NET": cif(25.0, [1.0, -0.7]), "OK": cif(25.0, [1, -1])}
    )
    out = tmp_path / "gcmc"
    with caplog.at_level(logging.WARNING):
        assert main(["gcmc", "--flagged", str(flagged), "--out", str(out)]) == 0
    with open(out / "charges.csv", newline="") as fh:
        status = {r["mof_id"]: r for r in csv.DictReader(fh)}
    assert status["NOQ"]["charge_status"] == "missing"
    assert status["NET"]["charge_status"] == "net_charge_nonzero"
    assert float(status["NET"]["net_charge_e"]) == pytest.approx(0.3)
    assert status["OK"]["charge_status"] == "ok"
    assert "NOQ: the CIF has no partial charges" in caplog.text
    assert "NET: framework net charge is +0.3000 e" in caplog.text
    assert (
        "WARNING: the source CIF has no partial charges"
        in (out / "NOQ" / "simulation.input").read_text()
    )
    assert "_atom_site_charge" not in (out / "NOQ" / "NOQ.cif").read_text()


def test_unreadable_flagged_cif_is_skipped_not_fatal(tmp_path: Path, caplog) -> None:
    flagged = flagged_csv(tmp_path, {"BAD": "data_x\n", "OK": cif(25.0, [1, -1])})
    out = tmp_path / "gcmc"
    with caplog.at_level(logging.WARNING):
        assert main(["gcmc", "--flagged", str(flagged), "--out", str(out)]) == 0
    assert (out / "mofs.txt").read_text() == "OK\n"
    assert not (out / "BAD").exists()
    assert "BAD: no GCMC input written" in caplog.text


def test_flagged_cifs_are_read_from_tar_archives(tmp_path: Path) -> None:
    import tarfile

    member = tmp_path / "X.cif"
    member.write_text(cif(25.0, [1, -1]))
    archive = tmp_path / "cifs.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(member, arcname="set/X.cif")
    flagged = flagged_csv(tmp_path, {})
    header = flagged.read_text()
    flagged.write_text(header + f"1,X,1.0,0.1,yes,2,{archive}::set/X.cif\n")
    out = tmp_path / "gcmc"
    assert main(["gcmc", "--flagged", str(flagged), "--out", str(out)]) == 0
    assert (out / "mofs.txt").read_text() == "X\n"
    np.testing.assert_allclose(parse_cif((out / "X" / "X.cif").read_text()).charge, [1, -1])

    flagged.write_text(header + f"1,Y,1.0,0.1,yes,2,{archive}::set/Y.cif\n")
    with pytest.raises(
        FileNotFoundError, match=re.escape(f"no CIF member 'set/Y.cif' in {archive}")
    ):
        main(["gcmc", "--flagged", str(flagged), "--out", str(tmp_path / "gcmc2")])
    assert not (tmp_path / "gcmc2" / "mofs.txt").exists()


def test_charges_csv_has_one_row_per_flagged_mof(tmp_path: Path) -> None:
    flagged = flagged_csv(tmp_path, {"A": cif(25.0, [1, -1]), "B": "data_x\n"})
    out = tmp_path / "gcmc"
    assert main(["gcmc", "--flagged", str(flagged), "--out", str(out)]) == 0
    lines = (out / "charges.csv").read_text().splitlines(keepends=True)
    assert lines[:2] == [
        "mof_id,charge_status,net_charge_e,unit_cells,note\n",
        "A,ok,0.000000,1x1x1,\n",
    ]
    assert len(lines) == 3 and lines[2].startswith("B,unreadable,,,no atom sites")


# Keys RASPA3 3.1.0's readers accept (src/raspakit/input_reader.cpp generalOptions,
# systemOptions, componentOptions; forcefield.cpp ForceField::options), the subset a CO2 deck
# can use; any other key makes RASPA3 3.1.0 stop with "Unknown input".
RASPA3_GENERAL = {"SimulationType", "Units", "ForceField", "RandomSeed", "NumberOfCycles",
                  "NumberOfInitializationCycles", "NumberOfEquilibrationCycles", "PrintEvery",
                  "Components", "Systems"}  # fmt: skip
RASPA3_SYSTEM = {"ForceField", "CutOff", "CutOffVDW", "CutOffCoulomb", "ChargeMethod", "Type",
                 "ExternalTemperature", "ExternalPressure", "UseChargesFrom", "Name",
                 "NumberOfUnitCells", "HeliumVoidFraction"}  # fmt: skip
RASPA3_COMPONENT = {"Name", "Type", "TranslationProbability", "RotationProbability",
                    "ReinsertionProbability", "SwapProbability", "WidomProbability",
                    "CreateNumberOfMolecules", "FugacityCoefficient"}  # fmt: skip
RASPA3_FORCE_FIELD = {"MixingRule", "TruncationMethod", "TailCorrections", "CutOffVDW",
                      "CutOffCoulomb", "ChargeMethod", "PseudoAtoms", "SelfInteractions",
                      "BinaryInteractions", "EwaldPrecision"}  # fmt: skip


def test_raspa3_json_decks_parse_and_carry_the_same_simulation(tmp_path: Path) -> None:
    flagged = flagged_csv(
        tmp_path, {"HEX": cif(13.0, [0.8, -0.8], gamma=120.0), "NOQ": cif(25.0, None)}
    )
    out = tmp_path / "gcmc"
    assert main(["gcmc", "--flagged", str(flagged), "--out", str(out), "--pressure", "0.15",
                 "16", "--cycles", "500", "--init-cycles", "100"]) == 0  # fmt: skip
    raw = (out / "HEX" / "simulation.json").read_text()
    sim = json.loads(raw)
    assert set(sim) <= RASPA3_GENERAL
    assert sim["SimulationType"] == "MonteCarlo"
    assert sim["NumberOfCycles"] == 500 and sim["NumberOfInitializationCycles"] == 100
    systems = sim["Systems"]
    assert [s["ExternalPressure"] for s in systems] == [1.5e4, 1.6e6]
    for system in systems:
        assert set(system) <= RASPA3_SYSTEM
        assert system["Type"] == "Framework" and system["Name"] == "HEX"
        assert system["NumberOfUnitCells"] == [3, 3, 1]
        assert system["UseChargesFrom"] == "CIF_File" and system["ChargeMethod"] == "Ewald"
        assert system["ExternalTemperature"] == 298.0
        # RASPA3 reads these only when they are JSON floats (is_number_float)
        assert isinstance(system["CutOffVDW"], float) and system["CutOffVDW"] == 12.0
    (component,) = sim["Components"]
    assert set(component) <= RASPA3_COMPONENT and component["Name"] == "CO2"
    assert all(isinstance(v, float) for k, v in component.items() if k.endswith("Probability"))
    assert component["SwapProbability"] == 1.0 and component["CreateNumberOfMolecules"] == 0

    field = json.loads((out / "HEX" / "force_field.json").read_text())
    assert set(field) <= RASPA3_FORCE_FIELD
    assert field["MixingRule"] == "Lorentz-Berthelot" and field["TruncationMethod"] == "shifted"
    assert field["TailCorrections"] is False and field["CutOffVDW"] == 12.0
    names = [a["name"] for a in field["PseudoAtoms"]]
    assert names == ["O", "Zn", "C_co2", "O_co2"]
    assert [a["framework"] for a in field["PseudoAtoms"]] == [True, True, False, False]
    assert [a["charge"] for a in field["PseudoAtoms"]] == [0.0, 0.0, 0.70, -0.35]
    lj = {s["name"]: s["parameters"] for s in field["SelfInteractions"]}
    assert lj["Zn"] == pytest.approx([62.40, 2.46155], abs=1e-2)  # UFF x 2.763 Å, D 0.124
    assert lj["C_co2"] == [27.0, 2.8] and lj["O_co2"] == [79.0, 3.05]  # TraPPE
    # RASPA3 maps a CIF label to the pseudo atom of that name, or of the name without digits
    labels = [ln.split()[0] for ln in (out / "HEX" / "HEX.cif").read_text().splitlines()
              if ln.startswith(("Zn", "O"))]  # fmt: skip
    assert {re.sub(r"\d", "", label) for label in labels} <= set(names)

    co2 = json.loads((out / "HEX" / "CO2.json").read_text())
    assert co2["CriticalTemperature"] == 304.1282 and co2["CriticalPressure"] == 7377300.0
    assert co2["AcentricFactor"] == 0.22394 and co2["Type"] == "rigid"
    assert co2["pseudoAtoms"] == [["O_co2", [0.0, 0.0, 1.16]], ["C_co2", [0.0, 0.0, 0.0]],
                                  ["O_co2", [0.0, 0.0, -1.16]]]  # fmt: skip

    # without CIF charges the framework atoms take their pseudo atoms' charge, 0
    noq = json.loads((out / "NOQ" / "simulation.json").read_text())
    assert {s["UseChargesFrom"] for s in noq["Systems"]} == {"PseudoAtoms"}


def test_raspa2_and_raspa3_decks_and_simulate_share_one_force_field(tmp_path: Path) -> None:
    """The RASPA2 mixing file, RASPA3's force_field.json and the engine's pseudo atoms all
    come from mofsieve.forcefield: the same numbers everywhere."""
    from mofsieve.raspa3_decks import force_field_json

    elements = ["Cu", "O", "C", "H"]
    raspa2 = {
        ln.split()[0]: [float(ln.split()[2]), float(ln.split()[3])]
        for ln in gcmc.mixing_rules_def(elements).splitlines()
        if "lennard-jones" in ln
    }
    raspa3 = {s["name"]: s["parameters"] for s in force_field_json(elements)["SelfInteractions"]}
    engine = {a.name: [a.epsilon_k, a.sigma] for a in
              forcefield.framework_pseudo_atoms(elements) + forcefield.co2_pseudo_atoms()}  # fmt: skip
    assert sorted(raspa2) == sorted(raspa3) == sorted(engine) == [
        "C", "C_co2", "Cu", "H", "O", "O_co2"
    ]  # fmt: skip
    for name in engine:
        assert raspa2[name] == pytest.approx(engine[name], abs=1e-5)
        assert raspa3[name] == pytest.approx(engine[name], abs=1e-6)
    masses = {ln.split()[0]: float(ln.split()[5]) for ln in
              gcmc.pseudo_atoms_def(elements).splitlines()[3:]}  # fmt: skip
    assert masses["Cu"] == pytest.approx(forcefield.element_mass("Cu"), abs=1e-5)
