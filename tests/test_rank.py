from __future__ import annotations

import csv
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from mofsieve import rank
from mofsieve.cli import main

MANIFEST_HEADER = "mof_id,source,sha1,n_bytes,shard\n"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def cif(charges: list[float] | None) -> str:
    """A 2-atom cubic P1 cell (Zn, O), with _atom_site_charge when charges are given."""
    charge_col = "_atom_site_charge\n" if charges else ""
    q = charges or [None, None]
    rows = [
        f"Zn1 Zn 0.0 0.0 0.0{'' if q[0] is None else f' {q[0]}'}",
        f"O1 O 0.5 0.5 0.5{'' if q[1] is None else f' {q[1]}'}",
    ]
    return (
        "data_test\n_cell_length_a 10\n_cell_length_b 10\n_cell_length_c 10\n"
        "_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma 90\n"
        "_symmetry_space_group_name_H-M 'P 1'\n"
        "loop_\n_atom_site_label\n_atom_site_type_symbol\n_atom_site_fract_x\n"
        f"_atom_site_fract_y\n_atom_site_fract_z\n{charge_col}" + "\n".join(rows) + "\n"
    )


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """Two shards: shard 0 = A, B, C; shard 1 = D, E (E failed featurization)."""
    cifs = tmp_path / "cifs"
    for name, charges in {
        "A": [1.0, -1.0],
        "B": [1.0, -0.5],
        "C": None,
        "D": [0.5, -0.5],
        "E": [0.0, 0.0],
    }.items():
        write(cifs / f"{name}.cif", cif(charges))
    write(
        tmp_path / "manifest.csv",
        MANIFEST_HEADER
        + "".join(
            f"{m},{cifs / f'{m}.cif'},x,1,{s}\n"
            for m, s in [("A", 0), ("B", 0), ("C", 0), ("D", 1), ("E", 1)]
        ),
    )
    pred = "mof_id,prediction,uncertainty,n_atoms\n"
    # B and C tie at 2.0 (after rounding to 6 decimals): C must not beat B
    write(
        tmp_path / "p16" / "shard-00000.csv", pred + "C,2.0000001,0.3,2\nA,1.0,0.1,2\nB,2.0,0.4,2\n"
    )
    write(tmp_path / "p16" / "shard-00001.csv", pred + "D,5.0,0.0,2\n")
    write(tmp_path / "p015" / "shard-00000.csv", pred + "A,0.5,0.1,2\nB,0.5,0.3,2\nC,1.5,0.4,2\n")
    write(tmp_path / "p015" / "shard-00001.csv", pred + "D,1.0,0.0,2\n")
    fail = "mof_id,source,stage,reason\n"
    write(tmp_path / "graphs" / "failures-00000.csv", fail)
    write(tmp_path / "graphs" / "failures-00001.csv", fail + "E,e.cif,parse,CIF syntax error: x\n")
    return tmp_path


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def rank_cli(run_dir: Path, *extra: str) -> int:
    return main(
        [
            "rank",
            "--manifest", str(run_dir / "manifest.csv"),
            "--predictions", str(run_dir / "p16"),
            "--failures", str(run_dir / "graphs"),
            "--unit", "mol/kg",
            "--out-dir", str(run_dir / "out"),
            *extra,
        ]
    )  # fmt: skip


def test_ranked_best_first_ties_by_id_units_in_columns(run_dir: Path) -> None:
    assert rank_cli(run_dir, "--top-count", "2") == 0
    ranked = read_rows(run_dir / "out" / "ranked.csv")
    assert list(ranked[0]) == [
        "rank", "mof_id", "prediction_mol_per_kg", "uncertainty_mol_per_kg", "flagged",
        "checks", "duplicate_of", "n_atoms", "source",
    ]  # fmt: skip
    assert [r["mof_id"] for r in ranked] == ["D", "B", "C", "A"]
    assert [r["rank"] for r in ranked] == ["1", "2", "3", "4"]
    assert [r["flagged"] for r in ranked] == ["yes", "yes", "no", "no"]
    assert [r["duplicate_of"] for r in ranked] == ["", "", "", ""]  # no --frameworks: no groups
    assert ranked[1]["prediction_mol_per_kg"] == ranked[2]["prediction_mol_per_kg"] == "2.000000"
    assert ranked[0]["source"].endswith("D.cif")


def test_flagged_csv_carries_charge_checks(run_dir: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        assert rank_cli(run_dir, "--top-count", "4") == 0
    flagged = {r["mof_id"]: r for r in read_rows(run_dir / "out" / "flagged.csv")}
    assert set(flagged) == {"A", "B", "C", "D"}
    assert flagged["A"]["charge_status"] == "ok"
    assert flagged["B"]["charge_status"] == "net_charge_nonzero"
    assert float(flagged["B"]["net_charge_e"]) == pytest.approx(0.5)
    assert flagged["C"]["charge_status"] == "missing"
    assert "B: framework net charge" in caplog.text
    assert "C: the CIF has no partial charges" in caplog.text


def test_failures_gathered_sorted_and_unaccounted_mofs_reported(run_dir: Path) -> None:
    (run_dir / "p16" / "shard-00001.csv").write_text("mof_id,prediction,uncertainty,n_atoms\n")
    assert rank_cli(run_dir, "--top-fraction", "0.5") == 0
    failures = read_rows(run_dir / "out" / "failures.csv")
    assert [(f["mof_id"], f["stage"]) for f in failures] == [("D", "predict"), ("E", "parse")]
    assert "no prediction" in failures[0]["reason"]


def test_working_capacity_subtracts_and_adds_uncertainty_in_quadrature(run_dir: Path) -> None:
    assert rank_cli(run_dir, "--top-count", "1", "--minus-predictions", str(run_dir / "p015")) == 0
    ranked = {r["mof_id"]: r for r in read_rows(run_dir / "out" / "ranked.csv")}
    assert float(ranked["D"]["prediction_mol_per_kg"]) == pytest.approx(4.0)
    assert float(ranked["B"]["prediction_mol_per_kg"]) == pytest.approx(1.5)
    assert float(ranked["B"]["uncertainty_mol_per_kg"]) == pytest.approx(0.5)  # 0.3, 0.4
    assert float(ranked["C"]["prediction_mol_per_kg"]) == pytest.approx(0.5)
    assert ranked["D"]["rank"] == "1"


def test_missing_prediction_shard_is_an_error_naming_it(run_dir: Path, caplog) -> None:
    (run_dir / "p16" / "shard-00001.csv").unlink()
    assert rank_cli(run_dir, "--top-count", "1") == 1
    assert "shard-00001.csv" in caplog.text
    assert not (run_dir / "out" / "ranked.csv").exists()


def test_non_finite_prediction_goes_to_failures(run_dir: Path) -> None:
    with open(run_dir / "p16" / "shard-00001.csv", "a") as fh:
        fh.write("E,nan,0.1,2\n")
    assert rank_cli(run_dir, "--top-count", "1", "--no-charge-check") == 0
    failures = read_rows(run_dir / "out" / "failures.csv")
    assert ("E", "predict") in [(f["mof_id"], f["stage"]) for f in failures]
    assert "E" not in [r["mof_id"] for r in read_rows(run_dir / "out" / "ranked.csv")]


def test_output_is_byte_identical_whatever_the_row_order(run_dir: Path) -> None:
    assert rank_cli(run_dir, "--top-count", "2", "--no-charge-check") == 0
    first = (run_dir / "out" / "ranked.csv").read_bytes()
    shard0 = run_dir / "p16" / "shard-00000.csv"
    lines = shard0.read_text().splitlines()
    shard0.write_text("\n".join([lines[0], *reversed(lines[1:])]) + "\n")
    assert rank_cli(run_dir, "--top-count", "2", "--no-charge-check") == 0
    assert (run_dir / "out" / "ranked.csv").read_bytes() == first


@pytest.mark.parametrize(
    ("n", "fraction", "count", "expected"),
    [(200, 0.05, None, 10), (201, 0.05, None, 11), (3, 0.05, None, 1), (5, None, 9, 5)],
)
def test_n_to_flag(n: int, fraction: float | None, count: int | None, expected: int) -> None:
    assert rank.n_to_flag(n, fraction, count) == expected


def test_n_to_flag_rejects_bad_fraction() -> None:
    with pytest.raises(rank.RankError, match="top_fraction"):
        rank.n_to_flag(10, 1.5, None)


def test_unit_slug() -> None:
    assert rank.unit_slug("mol/kg") == "mol_per_kg"
    assert rank.unit_slug("cm3(STP)/g") == "cm3STP_per_g"


def test_a_failure_file_without_its_columns_is_an_error_naming_it(run_dir: Path, caplog) -> None:
    bad = write(run_dir / "graphs" / "failures-00001.csv", "mof_id,why\nE,parse\n")
    with caplog.at_level(logging.ERROR):
        assert rank_cli(run_dir, "--top-count", "1", "--no-charge-check") == 1
    assert (
        f"{bad} is not a mofsieve failure file (missing columns ['source', 'stage', 'reason'])"
        in caplog.text
    )
    assert not (run_dir / "out" / "ranked.csv").exists()


def test_a_manifest_without_its_columns_is_an_error_naming_it(run_dir: Path, caplog) -> None:
    manifest = write(run_dir / "manifest.csv", "mof_id,source\nA,a.cif\n")
    with caplog.at_level(logging.ERROR):
        assert rank_cli(run_dir, "--top-count", "1", "--no-charge-check") == 1
    assert f"{manifest} is not a mofsieve manifest" in caplog.text


def test_failures_csv_is_read_back_by_the_failure_reader(run_dir: Path) -> None:
    from mofsieve.failures import Failure, read_failures

    assert rank_cli(run_dir, "--top-count", "1", "--no-charge-check") == 0
    assert read_failures(run_dir / "out" / "failures.csv") == [
        Failure("E", "e.cif", "parse", "CIF syntax error: x")
    ]


def test_the_charge_check_does_not_import_the_gcmc_command(run_dir: Path) -> None:
    argv = [
        "rank", "--manifest", str(run_dir / "manifest.csv"), "--predictions", str(run_dir / "p16"),
        "--failures", str(run_dir / "graphs"), "--unit", "mol/kg", "--top-count", "4",
        "--out-dir", str(run_dir / "out"),
    ]  # fmt: skip
    code = (
        "import sys\nfrom mofsieve.cli import main\n"
        f"assert main({argv!r}) == 0\nprint(sorted(m for m in sys.modules if m.startswith('mofsieve.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = out.stdout.split("\n")[-2]
    assert "'mofsieve.charges'" in loaded  # the check ran
    assert "'mofsieve.gcmc'" not in loaded


def write_warnings_of_run(run_dir: Path) -> None:
    """B and D raised checks kept out of the flagged set by default; C one that is not."""
    head = "mof_id,source,check,detail\n"
    write(
        run_dir / "graphs" / "warnings-00000.csv",
        head + "C,c.cif,isolated_molecule,1 × H2O\nB,b.cif,coordination,1 C bonded to more\n",
    )
    write(
        run_dir / "graphs" / "warnings-00001.csv",
        head + "D,d.cif,isolated_atom,1 × H\nD,d.cif,coordination,2 H bonded to more\n",
    )


def test_checks_fill_their_column_and_skipped_mofs_give_their_flag_to_the_next(
    run_dir: Path,
) -> None:
    write_warnings_of_run(run_dir)
    warnings = ["--warnings", str(run_dir / "graphs"), "--no-charge-check"]
    assert rank_cli(run_dir, "--top-fraction", "0.5", *warnings) == 0
    ranked = read_rows(run_dir / "out" / "ranked.csv")
    assert [(r["mof_id"], r["checks"], r["flagged"]) for r in ranked] == [
        ("D", "coordination;isolated_atom", "no"),
        ("B", "coordination", "no"),
        ("C", "isolated_molecule", "yes"),  # not in the default skip_checks
        ("A", "", "yes"),
    ]
    flagged = read_rows(run_dir / "out" / "flagged.csv")
    assert [(r["mof_id"], r["checks"]) for r in flagged] == [("C", "isolated_molecule"), ("A", "")]
    gathered = read_rows(run_dir / "out" / "warnings.csv")
    assert [(w["mof_id"], w["check"]) for w in gathered] == [
        ("B", "coordination"), ("C", "isolated_molecule"), ("D", "coordination"),
        ("D", "isolated_atom"),
    ]  # fmt: skip
    assert rank_cli(run_dir, "--top-fraction", "0.5", "--skip-checks", "", *warnings) == 0
    flagged = read_rows(run_dir / "out" / "flagged.csv")
    assert [r["mof_id"] for r in flagged] == ["D", "B"]
    assert rank_cli(run_dir, "--top-count", "9", "--skip-checks", "coordination", *warnings) == 0
    flagged = read_rows(run_dir / "out" / "flagged.csv")
    assert [r["mof_id"] for r in flagged] == ["C", "A"]  # fewer than asked: no more clean ones


def test_a_missing_warning_shard_or_unknown_check_is_an_error_naming_it(
    run_dir: Path, caplog
) -> None:
    write_warnings_of_run(run_dir)
    warnings = ["--warnings", str(run_dir / "graphs"), "--no-charge-check"]
    with caplog.at_level(logging.ERROR):
        assert rank_cli(run_dir, "--top-count", "1", "--skip-checks", "coordinaton", *warnings) == 1
    assert "unknown check(s) coordinaton (known: isolated_atom, " in caplog.text
    (run_dir / "graphs" / "warnings-00001.csv").unlink()
    with caplog.at_level(logging.ERROR):
        assert rank_cli(run_dir, "--top-count", "1", *warnings) == 1
    assert "1 of 2 shard files missing in" in caplog.text and "warnings-00001.csv" in caplog.text
    assert not (run_dir / "out" / "ranked.csv").exists()
    with pytest.raises(rank.RankError, match=r"unknown check\(s\) nope \(known: isolated_atom"):
        rank.skip_checks_argument("isolated_atom, nope")


def test_shard_files_come_from_the_folder_of_the_job_that_holds_each(tmp_path: Path) -> None:
    """The workflow's jobs write a folder each (shards 0–1, shard 2): every shard is taken
    from the folder holding it, in shard order; a shard no folder holds is an error."""
    first, second = tmp_path / "shards-00000-00001", tmp_path / "shards-00002-00002"
    for folder, shards in ((first, (0, 1)), (second, (2,))):
        folder.mkdir()
        for k in shards:
            write(folder / f"shard-{k:05d}.csv", "mof_id,prediction,uncertainty,n_atoms\n")
    files = rank.shard_files([second, first], 3, "shard-{:05d}.csv")
    assert files == [
        first / "shard-00000.csv",
        first / "shard-00001.csv",
        second / "shard-00002.csv",
    ]
    with pytest.raises(
        rank.RankError, match=r"1 of 4 shard files missing in 2 folders \(.*\): shard-00003.csv"
    ):
        rank.shard_files([first, second], 4, "shard-{:05d}.csv")
