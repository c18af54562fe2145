"""`mofsieve validate`: the picks of a run, and its predictions against a real seeded GCMC of
them (validation.csv / validation.json), failures listed and not dropped."""

from __future__ import annotations

import csv
import json
import logging
import math
import re
import tarfile
from pathlib import Path

import pytest

from mofsieve import validate
from mofsieve.cli import main
from mofsieve.validate import SimulatedRow, Target

XEXLOD = "XEXLOD_clean"  # 144 atoms, Zn, CIF charges: a cheap real GCMC
TOY = "TOY"  # tests/data/good/toy_framework_charged.cif: net +0.6 e, refused by simulate
# 30 + 70 cycles at both pressures: seconds at 0.15 bar, ~15 s at 16 bar
QUICK = ["--cycles", "70", "--init-cycles", "30", "--seed", "3", "--charges", "cif"]
RANKED_HEADER = (
    "rank,mof_id,prediction_mol_per_kg,uncertainty_mol_per_kg,flagged,checks,n_atoms,source"
)


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def write_ranked(run: Path, lines: list[str], extra_flagged_columns: str = "") -> None:
    """ranked.csv and flagged.csv (the flagged rows, charge columns added) as rank writes them."""
    (run / "ranked.csv").write_text(RANKED_HEADER + "\n" + "".join(f"{x}\n" for x in lines))
    flagged = [x for x in lines if x.split(",")[4] == "yes"]
    header = f"{RANKED_HEADER},charge_status,net_charge_e{extra_flagged_columns}"
    (run / "flagged.csv").write_text(header + "\n" + "".join(f"{x},ok,0.000000\n" for x in flagged))


@pytest.fixture(scope="module")
def simulated_run(
    shared_core: Path, test_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A run folder as the workflow leaves it: ranked.csv, flagged.csv, the picks (XEXLOD and
    the charged toy framework) and one real seeded simulate folder per pick, at 0.15 and 16
    bar; the toy framework is refused for its net charge."""
    from mofsieve.manifest import iter_archive

    run = tmp_path_factory.mktemp("run")
    member = f"core2019_charged/{XEXLOD}.cif"
    found = dict(iter_archive(shared_core / "cifs.tar.xz", {member}))
    if member not in found:
        pytest.skip(f"{member} not in the shared archive")
    (run / "cifs").mkdir()
    (run / "cifs" / f"{XEXLOD}.cif").write_bytes(found[member])
    (run / "cifs" / f"{TOY}.cif").write_bytes(
        (test_data / "good" / "toy_framework_charged.cif").read_bytes()
    )
    write_ranked(
        run,
        [
            f"1,{TOY},2.000000,0.300000,yes,,10,{run / 'cifs' / f'{TOY}.cif'}",
            f"2,{XEXLOD},0.600000,0.100000,yes,,144,{run / 'cifs' / f'{XEXLOD}.cif'}",
            "3,LOW,0.200000,0.050000,no,,50,elsewhere.cif",
        ],
    )
    picks = run / "simulate" / "picks"
    assert main(["validate", "pick", "--flagged", str(run / "flagged.csv"), "--top", "5",
                 "--out", str(picks)]) == 0  # fmt: skip
    for mof_id in (TOY, XEXLOD):
        out = run / "simulate" / "mofs" / mof_id
        assert main(["simulate", str(picks / f"{mof_id}.cif"), "--pressure-bar", "0.15", "16",
                     *QUICK, "--out", str(out)]) == 0  # fmt: skip
    return run


def gather(run: Path, *pressure: str, picks: bool = True) -> int:
    folders = [str(p) for p in sorted((run / "simulate" / "mofs").iterdir())]
    picked = ["--picks", str(run / "simulate" / "picks")] if picks else []
    return main(["validate", "gather", "--ranked", str(run / "ranked.csv"), *picked,
                 "--simulated", *folders, "--pressure-bar", *pressure, "--out-dir", str(run)])  # fmt: skip


# ---------------------------------------------------------------------- against a real GCMC


@pytest.mark.shared
def test_predictions_are_compared_with_a_real_gcmc_and_the_refused_mof_is_listed(
    simulated_run: Path,
) -> None:
    run = simulated_run
    assert gather(run, "0.15") == 0
    results = rows(run / "simulate" / "mofs" / XEXLOD / "results.csv")
    (at_015,) = [r for r in results if r["pressure_bar"] == "0.15"]
    table = rows(run / "validation.csv")
    assert list(table[0]) == list(validate.VALIDATION_COLUMNS)
    toy, xexlod = table  # best predicted first, the refused MOF kept
    assert xexlod["mof_id"] == XEXLOD and xexlod["status"] == "ok" and xexlod["reason"] == ""
    assert float(xexlod["simulated"]) == pytest.approx(float(at_015["uptake_mol_per_kg"]), abs=1e-6)
    assert float(xexlod["simulated_error"]) == pytest.approx(
        float(at_015["uptake_error_mol_per_kg"]), abs=1e-6
    )
    assert (xexlod["predicted"], xexlod["uncertainty"], xexlod["rank"]) == (
        "0.600000",
        "0.100000",
        "2",
    )
    assert (
        xexlod["charge_method"] == "cif"
        and xexlod["predicted_rank"] == xexlod["simulated_rank"] == "1"
    )
    # the flag threshold is the lowest flagged prediction, 0.6 mol/kg
    assert xexlod["hit"] == ("yes" if float(xexlod["simulated"]) >= 0.6 else "no")
    assert toy["mof_id"] == TOY and toy["status"] == "failed" and toy["simulated"] == ""
    assert toy["reason"].startswith("charges: framework net charge +0.6000 e per cell (cif)")
    assert toy["hit"] == toy["predicted_rank"] == ""

    summary = json.loads((run / "validation.json").read_text())
    uptake = float(xexlod["simulated"])
    assert summary["n_picked"] == 2 and summary["n_simulated"] == 1 and summary["n_failed"] == 1
    assert summary["mae"] == pytest.approx(abs(0.6 - uptake), abs=1e-6)
    assert summary["mean_error"] == pytest.approx(0.6 - uptake, abs=1e-6)
    assert summary["spearman"] is None  # one MOF ranks nothing
    assert summary["flag_threshold"] == 0.6 and summary["hit_rate"] == float(uptake >= 0.6)
    assert summary["charge_methods"] == {"cif": 1}
    assert summary["protocols"] == [
        {"temperature_K": 298, "cycles": 70, "init_cycles": 30, "seed": 3}
    ]
    assert [f["mof_id"] for f in summary["failures"]] == [TOY]
    assert summary["failures"][0]["reason"] == toy["reason"]


@pytest.mark.shared
def test_working_capacity_is_the_difference_of_the_two_simulated_uptakes(
    simulated_run: Path, tmp_path: Path
) -> None:
    run = simulated_run
    out = tmp_path / "wc"
    folders = [str(p) for p in sorted((run / "simulate" / "mofs").iterdir())]
    assert main(["validate", "gather", "--ranked", str(run / "ranked.csv"), "--simulated", *folders,
                 "--pressure-bar", "16", "--minus-pressure-bar", "0.15", "--out-dir", str(out)]) == 0  # fmt: skip
    by_pressure = {
        r["pressure_bar"]: r for r in rows(run / "simulate" / "mofs" / XEXLOD / "results.csv")
    }
    high, low = by_pressure["16"], by_pressure["0.15"]
    (xexlod,) = [r for r in rows(out / "validation.csv") if r["status"] == "ok"]
    capacity = float(high["uptake_mol_per_kg"]) - float(low["uptake_mol_per_kg"])
    assert capacity > 1.0  # CO2 at 16 bar fills far more of XEXLOD than at 0.15 bar
    assert float(xexlod["simulated"]) == pytest.approx(capacity, abs=2e-6)
    error = math.hypot(
        float(high["uptake_error_mol_per_kg"]), float(low["uptake_error_mol_per_kg"])
    )
    assert float(xexlod["simulated_error"]) == pytest.approx(error, abs=2e-6)
    summary = json.loads((out / "validation.json").read_text())
    assert summary["quantity"] == "working capacity 16 − 0.15 bar"
    assert summary["pressure_bar"] == 16 and summary["minus_pressure_bar"] == 0.15


@pytest.mark.shared
def test_a_pick_without_a_result_at_the_pressure_asked_is_listed_missing(
    simulated_run: Path, tmp_path: Path
) -> None:
    run = simulated_run
    out = tmp_path / "other"
    folders = [str(p) for p in sorted((run / "simulate" / "mofs").iterdir())]
    assert main(["validate", "gather", "--ranked", str(run / "ranked.csv"), "--simulated", *folders,
                 "--picks", str(run / "simulate" / "picks"), "--pressure-bar", "1",
                 "--out-dir", str(out)]) == 0  # fmt: skip
    by_id = {r["mof_id"]: r for r in rows(out / "validation.csv")}
    assert by_id[XEXLOD]["status"] == "missing"
    assert by_id[XEXLOD]["reason"] == "no simulated uptake at 1 bar"
    assert by_id[TOY]["status"] == "failed"  # its failure still says why
    summary = json.loads((out / "validation.json").read_text())
    assert summary["n_simulated"] == 0 and summary["mae"] is None and summary["hit_rate"] is None


@pytest.mark.shared
def test_a_pick_whose_simulate_output_is_absent_is_listed_missing(
    simulated_run: Path, tmp_path: Path
) -> None:
    """A pick's job never ran (only XEXLOD's folder is given): the pick is not dropped."""
    run = simulated_run
    out = tmp_path / "one"
    assert main(["validate", "gather", "--ranked", str(run / "ranked.csv"),
                 "--simulated", str(run / "simulate" / "mofs" / XEXLOD),
                 "--picks", str(run / "simulate" / "picks"), "--pressure-bar", "0.15",
                 "--out-dir", str(out)]) == 0  # fmt: skip
    by_id = {r["mof_id"]: r for r in rows(out / "validation.csv")}
    assert by_id[TOY]["status"] == "missing"
    assert by_id[TOY]["reason"] == "no result and no failure in the simulate outputs"
    assert by_id[XEXLOD]["status"] == "ok"
    summary = json.loads((out / "validation.json").read_text())
    assert summary["failures"] == [
        {"mof_id": TOY, "status": "missing", "reason": by_id[TOY]["reason"]}
    ]


# ------------------------------------------------------------------------------- picking


def test_pick_takes_the_best_flagged_passes_over_duplicates_and_copies_cifs(
    test_data: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "set.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(test_data / "good" / "toy_crlf_type_charges.cif", arcname="set/B.cif")
    a = test_data / "good" / "toy_framework_charged.cif"
    write_ranked(
        tmp_path,
        [
            f"1,A,3.0,0.1,yes,,10,{a}",
            f"2,A2,2.9,0.1,yes,,10,{a}",  # a duplicate of A: A's GCMC stands for both
            f"3,GONE,2.8,0.1,yes,,10,{tmp_path / 'gone.cif'}",
            f"4,B,2.7,0.1,yes,,5,{archive}::set/B.cif",
            f"5,C,2.6,0.1,yes,,4,{test_data / 'good' / 'cu_fcc_p1.cif'}",
        ],
        extra_flagged_columns=",duplicate_of",
    )
    lines = (tmp_path / "flagged.csv").read_text().splitlines()
    duplicate_of = {"A2": "A"}
    (tmp_path / "flagged.csv").write_text(
        "\n".join([lines[0]] + [f"{x},{duplicate_of.get(x.split(',')[1], '')}" for x in lines[1:]])
        + "\n"
    )
    out = tmp_path / "picks"
    out.mkdir()
    (out / "STALE.cif").write_text("from an earlier run")
    assert main(["validate", "pick", "--flagged", str(tmp_path / "flagged.csv"), "--top", "3",
                 "--out", str(out)]) == 0  # fmt: skip
    assert [(r["mof_id"], r["rank"]) for r in rows(out / "picks.csv")] == [("A", "1"), ("B", "4")]
    assert (out / "A.cif").read_bytes() == a.read_bytes()
    assert (out / "B.cif").read_bytes() == (
        test_data / "good" / "toy_crlf_type_charges.cif"
    ).read_bytes()
    assert sorted(p.name for p in out.iterdir()) == ["A.cif", "B.cif", "failures.csv", "picks.csv"]
    (failure,) = rows(out / "failures.csv")
    assert failure["mof_id"] == "GONE" and failure["stage"] == "pick"
    assert failure["reason"].startswith("cannot read the CIF:")
    assert not list(tmp_path.glob(".picks*"))  # nothing left beside it


def test_top_zero_picks_nothing_and_a_file_that_is_not_flagged_csv_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_ranked(tmp_path, ["1,A,3.0,0.1,yes,,10,a.cif"])
    out = tmp_path / "picks"
    assert main(["validate", "pick", "--flagged", str(tmp_path / "flagged.csv"), "--top", "0",
                 "--out", str(out)]) == 0  # fmt: skip
    assert rows(out / "picks.csv") == [] and rows(out / "failures.csv") == []
    (tmp_path / "bad.csv").write_text("mof_id,score\nA,1\n")
    with caplog.at_level(logging.ERROR):
        assert main(["validate", "pick", "--flagged", str(tmp_path / "bad.csv"), "--top", "2",
                     "--out", str(tmp_path / "p2")]) == 1  # fmt: skip
    assert "bad.csv is not a flagged.csv (missing columns ['rank', 'source'])" in caplog.text
    assert not (tmp_path / "p2").exists()


# ------------------------------------------------------------------- metrics, failure paths


def _row(mof_id: str, value: float, method: str = "model") -> dict[str, list[SimulatedRow]]:
    """One MOF's simulate results at 0.15 bar, as :func:`validate.read_simulated` gives them."""
    return {mof_id: [SimulatedRow(mof_id, 0.15, value, 0.1, method, (("seed", "0"),))]}


def test_ranks_spearman_and_hit_rate_follow_the_simulated_values(tmp_path: Path) -> None:
    write_ranked(
        tmp_path,
        ["1,A,3.0,0.3,yes,,1,a", "2,B,2.0,0.2,yes,,1,b", "3,C,1.0,0.1,yes,,1,c",
         "4,D,0.5,0.1,no,,1,d"],
    )  # fmt: skip
    ranked = validate.read_ranked(tmp_path / "ranked.csv")
    assert validate.flag_threshold(ranked) == 1.0
    results = {**_row("A", 0.5), **_row("B", 1.5), **_row("C", 2.5, method="cif")}
    table = validate.compare(ranked, ["C", "A", "B"], results, {}, Target(0.15))
    assert [r.mof_id for r in table] == ["A", "B", "C"]
    assert [(r.predicted_rank, r.simulated_rank) for r in table] == [(1, 3), (2, 2), (3, 1)]
    assert [r.hit for r in table] == [False, True, True]
    summary = validate.metrics(table, 1.0, Target(0.15))
    assert summary["spearman"] == pytest.approx(-1.0)
    assert summary["mae"] == pytest.approx((2.5 + 0.5 + 1.5) / 3)
    assert summary["mean_error"] == pytest.approx((2.5 + 0.5 - 1.5) / 3)
    assert summary["hits"] == 2 and summary["hit_rate"] == pytest.approx(2 / 3)
    assert summary["charge_methods"] == {"cif": 1, "model": 2}


def test_predictions_in_another_unit_or_unranked_picks_are_refused_and_nothing_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sim = tmp_path / "sim"
    sim.mkdir()
    from mofsieve.simulation import RESULT_COLUMNS

    (sim / "results.csv").write_text(
        ",".join(RESULT_COLUMNS) + "\nZ,0.15,298,1.0,0.1,10,5,0,cif,1x1x1,1.0,0.0\n"
    )
    (tmp_path / "ranked.csv").write_text(
        "rank,mof_id,prediction_mmol_per_g,uncertainty_mmol_per_g,flagged\n1,A,1.0,0.1,yes\n"
    )
    command = ["validate", "gather", "--ranked", str(tmp_path / "ranked.csv"), "--simulated",
               str(sim), "--pressure-bar", "0.15", "--out-dir", str(tmp_path)]  # fmt: skip
    with caplog.at_level(logging.ERROR):
        assert main(command) == 1
    assert "its predictions are prediction_mmol_per_g, simulate gives mol/kg" in caplog.text
    write_ranked(tmp_path, ["1,A,1.0,0.1,yes,,1,a"])
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert main(command) == 1
    assert "not in ranked.csv: Z" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert main([*command[:5], str(tmp_path / "nowhere"), *command[6:]]) == 1
    assert re.search(r"nowhere holds no results.csv", caplog.text)
    assert not (tmp_path / "validation.csv").exists()
    assert not (tmp_path / "validation.json").exists()


def test_validation_files_are_read_back_and_others_refused(tmp_path: Path) -> None:
    write_ranked(tmp_path, ["1,A,3.0,0.3,yes,,1,a"])
    ranked = validate.read_ranked(tmp_path / "ranked.csv")
    table = validate.compare(ranked, ["A"], _row("A", 2.0), {}, Target(0.15))
    summary = validate.metrics(table, 3.0, Target(0.15))
    csv_path, json_path = tmp_path / "validation.csv", tmp_path / "validation.json"
    validate.write_validation(table, summary, csv_path, json_path)
    read_rows, read_summary = validate.read_validation(csv_path, json_path)
    assert read_summary == summary and read_rows[0]["simulated"] == "2.000000"
    json_path.write_text(json.dumps({**summary, "format_version": 0}))
    with pytest.raises(validate.ValidateError, match="format version 0; this mofsieve reads 1"):
        validate.read_validation(csv_path, json_path)
    with pytest.raises(validate.ValidateError, match="is not a validation.csv"):
        validate.read_validation(tmp_path / "ranked.csv", json_path)
