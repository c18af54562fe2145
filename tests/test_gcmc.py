from __future__ import annotations

import csv
import logging
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from mofsieve import gcmc
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
    eps, sigma = gcmc.uff_lennard_jones("C")  # x = 3.851 Å, D = 0.105 kcal/mol
    assert sigma == pytest.approx(3.43085, abs=1e-4)
    assert eps == pytest.approx(52.838, abs=1e-2)
    eps, sigma = gcmc.uff_lennard_jones("Zn")  # x = 2.763 Å, D = 0.124 kcal/mol
    assert sigma == pytest.approx(2.46155, abs=1e-4)
    assert eps == pytest.approx(62.40, abs=1e-2)
    assert len(gcmc.UFF_X_D) == 103


def test_unknown_element_is_refused() -> None:
    with pytest.raises(gcmc.GcmcError, match="Og"):
        gcmc.uff_lennard_jones("Og")


def test_unit_cells_use_perpendicular_widths_not_lengths() -> None:
    cubic = np.diag([10.0, 10.0, 30.0])
    assert gcmc.unit_cells(cubic, 12.0) == (3, 3, 1)
    assert gcmc.unit_cells(np.diag([24.0, 24.0, 24.0]), 12.0) == (1, 1, 1)
    # hexagonal a = b = 13 Å: lengths say 2 copies, but the width is 13 sin 60° = 11.26 Å
    hexagonal = np.array([[13.0, 0, 0], [-6.5, 13.0 * np.sqrt(3) / 2, 0], [0, 0, 30.0]])
    assert gcmc.perpendicular_widths(hexagonal)[0] == pytest.approx(11.258, abs=1e-3)
    assert gcmc.unit_cells(hexagonal, 12.0) == (3, 3, 1)


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
