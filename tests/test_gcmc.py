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
from mofsieve.charge_model import DEFAULT_CHARGE_MODEL_DIR, MANIFEST_NAME
from mofsieve.cli import main
from mofsieve.structures import parse_cif

REPO = Path(__file__).resolve().parents[1]
TEST_DATA = REPO / "tests" / "data"
SHIPPED_CHARGE_MODEL = DEFAULT_CHARGE_MODEL_DIR / MANIFEST_NAME


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


def uncharged_toy_cif() -> str:
    """The charged toy framework of tests/data with its charge column taken out."""
    lines = (TEST_DATA / "good" / "toy_framework_charged.cif").read_text().splitlines()
    i = lines.index("_atom_site_charge")
    bare = lines[:i] + [" ".join(ln.split()[:5]) for ln in lines[i + 1 :]]
    return "\n".join(bare) + "\n"


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


def test_no_charges_or_a_charged_cell_are_recorded_and_no_neutral_deck_is_written(
    tmp_path: Path, caplog
) -> None:
    flagged = flagged_csv(
        tmp_path, {"NOQ": cif(25.0, None), "NET": cif(25.0, [1.0, -0.7]), "OK": cif(25.0, [1, -1])}
    )
    out = tmp_path / "gcmc"
    with caplog.at_level(logging.WARNING):
        assert main(["gcmc", "--flagged", str(flagged), "--out", str(out), "--charges", "cif"]) == 0
    with open(out / "charges.csv", newline="") as fh:
        status = {r["mof_id"]: r for r in csv.DictReader(fh)}
    assert status["NOQ"]["charge_status"] == "no_charges"
    assert status["NOQ"]["note"] == "cif: the CIF has no partial charge for 2 of its 2 atoms"
    assert status["NOQ"]["charge_method"] == "" and status["NOQ"]["net_charge_e"] == ""
    assert status["NET"]["charge_status"] == "net_charge_nonzero"
    assert float(status["NET"]["net_charge_e"]) == pytest.approx(0.3)
    assert status["OK"]["charge_status"] == "ok" and status["OK"]["charge_method"] == "cif"
    assert (
        "NOQ: no GCMC input written: no usable partial charges (cif: the CIF has no partial "
        "charge for 2 of its 2 atoms)" in caplog.text
    )
    assert "NET: framework net charge is +0.3000 e" in caplog.text
    assert not (out / "NOQ").exists()  # never a deck with neutral atoms unless asked
    assert (out / "mofs.txt").read_text() == "NET\nOK\n"
    net_input = (out / "NET" / "simulation.input").read_text()
    assert "# WARNING: framework net charge +0.3000 e is not ~0" in net_input
    assert "# framework charges (in NET.cif): cif, net +0.300000 e per cell" in net_input


def test_charges_none_writes_neutral_decks_only_when_asked(tmp_path: Path) -> None:
    flagged = flagged_csv(tmp_path, {"NOQ": cif(25.0, None)})
    out = tmp_path / "gcmc"
    assert main(["gcmc", "--flagged", str(flagged), "--out", str(out), "--charges", "none"]) == 0
    sim = (out / "NOQ" / "simulation.input").read_text()
    assert "# WARNING: charge method none (asked): every framework atom is neutral" in sim
    assert "UseChargesFromCIFFile         yes" in sim
    np.testing.assert_array_equal(parse_cif((out / "NOQ" / "NOQ.cif").read_text()).charge, [0, 0])
    assert {s["UseChargesFrom"] for s in json.loads((out / "NOQ" / "simulation.json")
                                                    .read_text())["Systems"]} == {"CIF_File"}  # fmt: skip
    with open(out / "charges.csv", newline="") as fh:
        (row,) = csv.DictReader(fh)
    assert (row["charge_status"], row["charge_method"], row["net_charge_e"]) == (
        "ok", "none", "0.000000",
    )  # fmt: skip


def test_a_missing_charge_model_leaves_a_chargeless_mof_without_a_deck(
    tmp_path: Path, caplog, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mofsieve import charge_sources

    monkeypatch.setattr(charge_sources, "_charge_models", {})
    empty = tmp_path / "no-model"
    empty.mkdir()
    flagged = flagged_csv(tmp_path, {"NOQ": cif(25.0, None), "OK": cif(25.0, [1, -1])})
    out = tmp_path / "gcmc"
    with caplog.at_level(logging.WARNING):
        assert main(["gcmc", "--flagged", str(flagged), "--out", str(out),
                     "--charge-model", str(empty)]) == 0  # fmt: skip
    with open(out / "charges.csv", newline="") as fh:
        status = {r["mof_id"]: r for r in csv.DictReader(fh)}
    assert status["NOQ"]["charge_status"] == "no_charges"
    assert status["NOQ"]["note"] == (
        "cif: the CIF has no partial charge for 2 of its 2 atoms; model: no charge model in "
        f"{empty} (charge_model.json missing)"
    )
    assert status["OK"]["charge_method"] == "cif"  # the CIF's own charges need no model
    assert (out / "mofs.txt").read_text() == "OK\n" and not (out / "NOQ").exists()
    assert "NOQ: no GCMC input written: no usable partial charges" in caplog.text


@pytest.mark.skipif(
    not SHIPPED_CHARGE_MODEL.is_file(),
    reason=f"the shipped charge model ({SHIPPED_CHARGE_MODEL}) is absent",
)
def test_a_cif_without_charges_gets_the_models_in_its_deck(tmp_path: Path) -> None:
    flagged = flagged_csv(tmp_path, {"NOQ": uncharged_toy_cif()})
    out = tmp_path / "gcmc"
    assert main(["gcmc", "--flagged", str(flagged), "--out", str(out)]) == 0  # cif_or_model
    charges = parse_cif((out / "NOQ" / "NOQ.cif").read_text()).charge
    assert charges.shape == (10,) and np.isfinite(charges).all()
    assert abs(float(charges.astype(np.float64).sum())) < 1e-4  # 6 decimals per atom
    with open(out / "charges.csv", newline="") as fh:
        (row,) = csv.DictReader(fh)
    assert row["charge_status"] == "ok" and row["charge_method"] == "model"
    assert row["charge_detail"].startswith("model:")
    sim = (out / "NOQ" / "simulation.input").read_text()
    assert f"# framework charges (in NOQ.cif): model ({row['charge_detail']}), net" in sim


@pytest.mark.skipif(
    not SHIPPED_CHARGE_MODEL.is_file(),
    reason=f"the shipped charge model ({SHIPPED_CHARGE_MODEL}) is absent",
)
def test_a_gcmc_job_charging_cifs_never_runs_the_parts_of_torch_and_pyg_it_does_not_use(
    tmp_path: Path, fresh_job
) -> None:
    """torch._dynamo and PyG's datasets stay unrun through a gcmc job that loads the charge
    model (a fresh process, as a job is), and its deck is that of a process that ran them."""
    import torch._dynamo  # noqa: F401  # this process has both: the reference
    import torch_geometric.datasets  # noqa: F401

    flagged = flagged_csv(tmp_path, {"NOQ": uncharged_toy_cif()})
    argv = ["gcmc", "--flagged", str(flagged)]
    assert fresh_job([*argv, "--out", str(tmp_path / "job")]) == ["0", "True", "True"]
    assert main([*argv, "--out", str(tmp_path / "here")]) == 0
    deck = (tmp_path / "job" / "NOQ" / "NOQ.cif").read_text()
    assert deck == (tmp_path / "here" / "NOQ" / "NOQ.cif").read_text()
    assert np.isfinite(parse_cif(deck).charge).all()


def test_eqeq_charges_a_real_mof_for_its_deck(tmp_path: Path) -> None:
    """core-mof's ALAMUW (Cu paddlewheel, no charges in its CIF) with --charges eqeq."""
    pytest.importorskip("openbabel", reason="Open Babel (openbabel-wheel)")
    pytest.importorskip("CoRE_MOF", reason="the core-mof package (pip install '.[demo]')")
    from mofsieve.manifest import iter_archive, package_archive

    data = dict(iter_archive(package_archive("core-mof:2019-ASR"), {"ALAMUW_clean.cif"}))
    flagged = flagged_csv(tmp_path, {"ALAMUW": data["ALAMUW_clean.cif"].decode()})
    out = tmp_path / "gcmc"
    assert main(["gcmc", "--flagged", str(flagged), "--out", str(out), "--charges", "eqeq"]) == 0
    deck = parse_cif((out / "ALAMUW" / "ALAMUW.cif").read_text())
    cu = deck.charge[deck.atomic_number == 29]
    assert cu.size == 6 and 0.8 < cu.min() <= cu.max() < 1.0  # EQeq's Cu(II), +0.90 e
    with open(out / "charges.csv", newline="") as fh:
        (row,) = csv.DictReader(fh)
    assert (row["charge_status"], row["charge_method"], row["charge_detail"]) == (
        "ok", "eqeq", "eqeq:openbabel-3.1",
    )  # fmt: skip


def test_the_configs_charge_keys_reach_gcmc_and_simulate(tmp_path: Path) -> None:
    from mofsieve import config as mconfig

    schema = REPO / "workflow" / "schemas" / "config.schema.yaml"
    shipped = mconfig.load_config_file(REPO / "config.yaml", schema)
    words = ["--charges", "cif_or_model", "--charge-model", str(DEFAULT_CHARGE_MODEL_DIR)]
    assert mconfig.simulate_charge_arguments(shipped) == words
    gcmc_words = mconfig.gcmc_arguments(shipped)
    assert gcmc_words[gcmc_words.index("--charges") :][:4] == words
    flagged = flagged_csv(tmp_path, {"OK": cif(25.0, [1, -1])})
    out = tmp_path / "gcmc"
    assert main(["gcmc", "--flagged", str(flagged), "--out", str(out), *gcmc_words]) == 0
    eqeq = mconfig.validate_config({**shipped, "gcmc": {"charges": "eqeq"}}, schema)
    assert mconfig.simulate_charge_arguments(eqeq)[:2] == ["--charges", "eqeq"]
    assert eqeq["gcmc"]["charge_model"] == ""  # the schema's default: the shipped model
    mine = mconfig.validate_config({**shipped, "gcmc": {"charge_model": "my/charges"}}, schema)
    assert mconfig.simulate_charge_arguments(mine)[2:] == ["--charge-model", "my/charges"]
    with pytest.raises(mconfig.ConfigError, match="gcmc.charges: 'ddec' is not one of"):
        mconfig.validate_config({**shipped, "gcmc": {"charges": "ddec"}}, schema)


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
        "mof_id,charge_status,charge_method,charge_detail,net_charge_e,unit_cells,note\n",
        "A,ok,cif,,0.000000,1x1x1,\n",
    ]
    assert len(lines) == 3 and lines[2].startswith("B,unreadable,,,,,no atom sites")


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
    flagged = flagged_csv(tmp_path, {"HEX": cif(13.0, [0.8, -0.8], gamma=120.0)})
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
