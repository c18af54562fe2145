"""`mofsieve simulate`: RASPA3 GCMC in-process, one atomic result per MOF, failures recorded,
and every argument checked before raspalib sees it."""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mofsieve import charge_sources, simulate, simulation
from mofsieve.charge_model import DEFAULT_CHARGE_MODEL_DIR, MANIFEST_NAME
from mofsieve.cli import main
from mofsieve.manifest import InputError
from mofsieve.raspa3_engine import (
    RASPALIB_VERSION,
    FrameworkInput,
    GcmcResult,
    Protocol,
)

REPO = Path(__file__).resolve().parents[1]
XEXLOD = "XEXLOD_clean"  # 144 atoms, Zn, CIF charges; published 0.516 mol/kg at 0.15 bar, 298 K
XEXLOD_LABEL = 0.5161785043
SHORT = ["--pressure-bar", "0.15", "--cycles", "200", "--init-cycles", "100", "--seed", "7"]
SHIPPED_CHARGE_MODEL = DEFAULT_CHARGE_MODEL_DIR / MANIFEST_NAME


@pytest.fixture(scope="module")
def xexlod(shared_core: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """XEXLOD_clean.cif from the shared CoRE MOF 2019 copy, with its partial charges."""
    from mofsieve.manifest import iter_archive

    member = f"core2019_charged/{XEXLOD}.cif"
    found = dict(iter_archive(shared_core / "cifs.tar.xz", {member}))
    if member not in found:
        pytest.skip(f"{member} not in the shared archive")
    path = tmp_path_factory.mktemp("cifs") / f"{XEXLOD}.cif"
    path.write_bytes(found[member])
    return path


@pytest.fixture(scope="module")
def short_run(xexlod: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One short seeded GCMC of XEXLOD (100 + 200 cycles); its output folder."""
    out = tmp_path_factory.mktemp("run") / "sim"
    assert main(["simulate", str(xexlod), *SHORT, "--out", str(out)]) == 0
    return out


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def without_charges(text: str) -> str:
    """The same CIF without its ``_atom_site_charge`` column."""
    lines = text.splitlines()
    i = lines.index("_atom_site_charge")
    out = lines[:i] + [" ".join(ln.split()[:5]) if ln.strip() else ln for ln in lines[i + 1 :]]
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------ a real, seeded GCMC


@pytest.mark.shared
def test_seeded_gcmc_of_a_real_mof_is_near_its_label_and_repeats(
    short_run: Path, xexlod: Path, tmp_path: Path
) -> None:
    record = json.loads((short_run / XEXLOD / "result.json").read_text())
    (result,) = record["results"]
    uptake = result["uptake_mol_per_kg"]
    assert math.isfinite(uptake) and abs(uptake - XEXLOD_LABEL) <= 0.4 * XEXLOD_LABEL
    assert 0 < result["uptake_error_mol_per_kg"] < uptake
    assert record["charge_method"] == "cif" and abs(record["net_charge_e"]) < 1e-4
    assert record["unit_cells"] == [5, 2, 1] and record["n_atoms"] == 144
    assert record["engine"] == f"RASPA3 in-process (raspalib {RASPALIB_VERSION})"

    (row,) = rows(short_run / "results.csv")
    assert list(row) == list(simulate.RESULT_COLUMNS)
    assert row["mof_id"] == XEXLOD and row["pressure_bar"] == "0.15"
    assert row["temperature_K"] == "298" and row["cycles"] == "200" and row["seed"] == "7"
    assert row["init_cycles"] == "100" and row["unit_cells"] == "5x2x1"
    assert float(row["uptake_mol_per_kg"]) == pytest.approx(uptake, abs=1e-6)
    assert rows(short_run / "failures.csv") == []

    again = tmp_path / "again"
    assert main(["simulate", str(xexlod), *SHORT, "--out", str(again)]) == 0
    (repeat,) = json.loads((again / XEXLOD / "result.json").read_text())["results"]
    assert repeat["uptake_mol_per_kg"] == uptake  # same seed, same number
    assert repeat["uptake_error_mol_per_kg"] == result["uptake_error_mol_per_kg"]


@pytest.mark.shared
def test_rerun_skips_finished_mofs_and_redoes_a_changed_protocol(
    xexlod: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "sim"
    assert main(["simulate", str(xexlod), *SHORT, "--out", str(out)]) == 0
    result = out / XEXLOD / "result.json"
    before = result.stat().st_mtime_ns
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mofsieve"):
        assert main(["simulate", str(xexlod), *SHORT, "--out", str(out)]) == 0
    assert result.stat().st_mtime_ns == before
    assert "1 of 1 MOFs already simulated" in caplog.text
    assert len(rows(out / "results.csv")) == 1

    assert main(["simulate", str(xexlod), *SHORT[:-1], "8", "--out", str(out)]) == 0
    assert json.loads(result.read_text())["protocol"]["seed"] == 8
    assert rows(out / "results.csv")[0]["seed"] == "8"


@pytest.mark.shared
def test_a_killed_simulate_leaves_no_result_json(xexlod: Path, tmp_path: Path) -> None:
    out = tmp_path / "sim"
    command = [sys.executable, "-m", "mofsieve.cli", "simulate", str(xexlod), "--pressure-bar",
               "0.15", "--cycles", "1000000", "--init-cycles", "10", "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        for line in proc.stderr:  # type: ignore[union-attr]
            if "GCMC at 0.15 bar" in line or time.monotonic() > deadline:
                break
        time.sleep(2.0)  # well inside the GCMC
        assert proc.poll() is None
        os.kill(proc.pid, signal.SIGKILL)  # the parent only: its GCMC child must die with it
        proc.wait()
        for _ in range(100):
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the GCMC child outlived its killed parent")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not (out / XEXLOD / "result.json").exists()
    assert not (out / "results.csv").exists()

    assert main(["simulate", str(xexlod), *SHORT, "--out", str(out)]) == 0  # a rerun finishes it
    assert (out / XEXLOD / "result.json").is_file()


@pytest.mark.shared
def test_bad_cifs_go_to_failures_while_the_others_finish(
    xexlod: Path, test_data: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "cifs"
    folder.mkdir()
    (folder / f"{XEXLOD}.cif").write_bytes(xexlod.read_bytes())
    (folder / "syntax_error.cif").write_bytes(
        (test_data / "broken" / "syntax_error.cif").read_bytes()
    )
    (folder / "NOQ.cif").write_text(without_charges(xexlod.read_text()))
    out = tmp_path / "sim"
    assert main(["simulate", str(folder), *SHORT, "--charges", "cif", "--out", str(out)]) == 0
    assert [r["mof_id"] for r in rows(out / "results.csv")] == [XEXLOD]
    failures = {f["mof_id"]: f for f in rows(out / "failures.csv")}
    assert sorted(failures) == ["NOQ", "syntax_error"]
    assert failures["syntax_error"]["stage"] == "parse"
    assert failures["NOQ"]["stage"] == "charges"
    assert failures["NOQ"]["reason"] == (
        "no usable partial charges (cif: the CIF has no partial charge for 144 of its 144 "
        "atoms); --allow-no-charges simulates it neutral"
    )
    assert failures["NOQ"]["source"] == str(folder / "NOQ.cif")
    assert not (out / "NOQ").exists() and not (out / "syntax_error").exists()

    # asked explicitly, the MOF without charges runs neutral and says so
    neutral = ["--charges", "cif", "--allow-no-charges"]
    assert main(["simulate", str(folder), *SHORT, *neutral, "--out", str(out)]) == 0
    by_id = {r["mof_id"]: r for r in rows(out / "results.csv")}
    assert by_id["NOQ"]["charge_method"] == "none" and by_id[XEXLOD]["charge_method"] == "cif"
    # no framework electrostatics: far below the charged framework's uptake
    assert float(by_id["NOQ"]["uptake_mol_per_kg"]) < float(by_id[XEXLOD]["uptake_mol_per_kg"])
    assert [f["mof_id"] for f in rows(out / "failures.csv")] == ["syntax_error"]


@pytest.mark.shared
def test_a_gcmc_folder_is_an_input(xexlod: Path, tmp_path: Path) -> None:
    flagged = tmp_path / "flagged.csv"
    flagged.write_text(
        "rank,mof_id,prediction_mol_per_kg,uncertainty_mol_per_kg,flagged,n_atoms,source\n"
        f"1,{XEXLOD},1.0,0.1,yes,144,{xexlod}\n"
    )
    gcmc_dir = tmp_path / "gcmc"
    assert main(["gcmc", "--flagged", str(flagged), "--out", str(gcmc_dir)]) == 0
    (gcmc_dir / "old").mkdir()  # a CIF mofs.txt does not list is not simulated
    (gcmc_dir / "old" / "STRAY.cif").write_bytes(xexlod.read_bytes())
    out = tmp_path / "sim"
    quick = ["--pressure-bar", "0.15", "--cycles", "20", "--init-cycles", "10"]
    assert main(["simulate", str(gcmc_dir), *quick, "--out", str(out)]) == 0
    assert [r["mof_id"] for r in rows(out / "results.csv")] == [XEXLOD]
    record = json.loads((out / XEXLOD / "result.json").read_text())
    assert record["source"] == str(gcmc_dir / XEXLOD / f"{XEXLOD}.cif")
    assert record["charge_method"] == "cif"  # the deck's P1 CIF kept the charges


# ------------------------------------------------------------------- failures mid-MOF, crashes


def _stub_engine(calls: list[float], fail_at: tuple[str, float], error: Exception):
    def run(framework: FrameworkInput, protocol: Protocol) -> GcmcResult:
        calls.append(protocol.pressure_bar)
        if (framework.name, protocol.pressure_bar) == fail_at:
            raise error
        return GcmcResult(1.0, 0.1, 10.0, 1000.0, 0.5, 0.001)

    return run


def _tasks(test_data: Path) -> list[simulate.Task]:
    """Two MOFs from a small charged CIF (net +0.6 e: these tests allow it)."""
    cif = (test_data / "good" / "toy_framework_charged.cif").read_bytes()
    return [simulate.Task("A", "a.cif", cif), simulate.Task("B", "b.cif", cif)]


def test_an_engine_error_mid_mof_leaves_no_result_and_the_others_finish(
    test_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mofsieve.raspa3_engine import EngineError

    calls: list[float] = []
    error = EngineError("A: raspalib returned no usable loading (nan)")
    monkeypatch.setattr(simulation, "run_gcmc", _stub_engine(calls, ("A", 16.0), error))
    settings = simulate.SimulateSettings(
        pressures_bar=(0.15, 16.0), cycles=10, init_cycles=0, net_charge_tolerance=1.0
    )
    records, failures = simulate.run_simulations(
        _tasks(test_data), settings, tmp_path, isolate=False
    )
    assert calls == [0.15, 16.0, 0.15, 16.0]  # A failed after its first pressure was done
    assert not (tmp_path / "A" / "result.json").exists()
    assert (tmp_path / "B" / "result.json").is_file()
    assert [r["mof_id"] for r in records] == ["B"]
    assert [(f.mof_id, f.stage, f.reason) for f in failures] == [
        ("A", "engine input", "A: raspalib returned no usable loading (nan)")
    ]
    assert [r["mof_id"] for r in rows(tmp_path / "failures.csv")] == ["A"]
    assert [(r["mof_id"], r["pressure_bar"]) for r in rows(tmp_path / "results.csv")] == [
        ("B", "0.15"), ("B", "16"),
    ]  # fmt: skip


def test_an_exception_injected_mid_mof_writes_no_result(
    test_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    error = RuntimeError("injected after the first pressure")
    monkeypatch.setattr(simulation, "run_gcmc", _stub_engine([], ("A", 16.0), error))
    settings = simulate.SimulateSettings(
        pressures_bar=(0.15, 16.0), cycles=10, init_cycles=0, net_charge_tolerance=1.0
    )
    with pytest.raises(RuntimeError, match="injected after the first pressure"):
        simulate.run_simulations(_tasks(test_data), settings, tmp_path, isolate=False)
    assert not (tmp_path / "A" / "result.json").exists()
    assert not list(tmp_path.rglob("*.tmp-*"))


def abort_for_a(conn, task: simulate.Task, settings: simulate.SimulateSettings) -> None:
    """A GCMC child that aborts (as raspalib does on a corrupted heap) for MOF A."""
    if task.mof_id == "A":
        os.abort()
    conn.send(("ok", {"mof_id": task.mof_id}))
    conn.close()


def test_an_engine_process_that_aborts_costs_that_mof_only(test_data: Path) -> None:
    settings = simulate.SimulateSettings(pressures_bar=(0.15,))
    done = list(simulate._run_isolated(_tasks(test_data), settings, jobs=2, target=abort_for_a))
    messages = {task.mof_id: message for task, message in done}
    assert messages["A"] == ("failed", "engine crash", "the GCMC process died: signal 6 (SIGABRT)")
    assert messages["B"] == ("ok", {"mof_id": "B"})


def test_cli_refuses_a_bad_protocol_before_any_gcmc(
    test_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cif = test_data / "good" / "toy_framework_charged.cif"
    out = tmp_path / "sim"
    assert main(["simulate", str(cif), "--pressure-bar", "-1", "--out", str(out)]) == 2
    assert "pressure must be a finite number > 0, got -1.0" in caplog.text
    assert not out.exists()


def test_a_degenerate_cell_or_unknown_element_fails_that_mof_with_its_reason(
    test_data: Path, tmp_path: Path
) -> None:
    flat = (test_data / "good" / "toy_framework_charged.cif").read_text()
    og = flat.replace("Zn1 Zn2+", "Og1 Og")
    tasks = [simulate.Task("OG", "og.cif", og.encode())]
    settings = simulate.SimulateSettings(
        pressures_bar=(0.15,), cycles=10, init_cycles=0, net_charge_tolerance=1.0
    )
    records, failures = simulate.run_simulations(tasks, settings, tmp_path, isolate=False)
    assert records == []
    assert [(f.stage, f.reason) for f in failures] == [
        ("engine input", "OG: no UFF parameters for element 'Og'")
    ]
    assert not (tmp_path / "OG").exists()


# ---------------------------------------------------------------------------- charge sources


def _stubbed_run(
    tasks: list[simulate.Task],
    settings: simulate.SimulateSettings,
    out: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[list[dict], list]:
    """run_simulations in this process with an engine that returns at once."""
    monkeypatch.setattr(simulation, "run_gcmc", _stub_engine([], ("", 0.0), RuntimeError()))
    return simulate.run_simulations(tasks, settings, out, isolate=False)


def _chargeless(test_data: Path) -> simulate.Task:
    """A small framework whose CIF has no charges (the toy framework without its column)."""
    text = (test_data / "good" / "toy_framework_charged.cif").read_text()
    return simulate.Task("NOQ", "noq.cif", without_charges(text).encode())


def test_charge_options_name_the_sources_asked_in_order() -> None:
    import argparse

    from mofsieve.charge_model import DEFAULT_CHARGE_MODEL_DIR

    parser = argparse.ArgumentParser()
    simulate.add_arguments(parser)
    base = ["X.cif", "--out", "o", "--pressure-bar", "0.15"]
    default = simulate.settings_from_args(parser.parse_args(base))
    assert default.charges == ("cif", "model")
    assert default.charge_model == str(DEFAULT_CHARGE_MODEL_DIR)
    eqeq = parser.parse_args([*base, "--charges", "eqeq", "--allow-no-charges"])
    assert simulate.settings_from_args(eqeq).charges == ("eqeq", "none")
    with pytest.raises(SystemExit, match="2"):
        parser.parse_args([*base, "--charges", "ddec"])


def test_a_mof_without_sane_charges_is_refused_with_every_reason(
    test_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(charge_sources, "_charge_models", {})
    empty = tmp_path / "no-model"
    empty.mkdir()
    settings = simulate.SimulateSettings(
        pressures_bar=(0.15,), cycles=10, init_cycles=0, charge_model=str(empty)
    )
    records, failures = _stubbed_run([_chargeless(test_data)], settings, tmp_path / "sim",
                                     monkeypatch)  # fmt: skip
    assert records == [] and not (tmp_path / "sim" / "NOQ").exists()
    assert [(f.stage, f.reason) for f in failures] == [
        ("charges", "no usable partial charges (cif: the CIF has no partial charge for 10 of its "
         f"10 atoms; model: no charge model in {empty} (charge_model.json missing)); "
         "--allow-no-charges simulates it neutral"),
    ]  # fmt: skip
    assert rows(tmp_path / "sim" / "failures.csv")[0]["stage"] == "charges"


@pytest.mark.skipif(
    not SHIPPED_CHARGE_MODEL.is_file(),
    reason=f"the shipped charge model ({SHIPPED_CHARGE_MODEL}) is absent",
)
def test_a_cif_without_charges_gets_the_models_and_the_result_says_so(
    test_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = simulate.SimulateSettings(pressures_bar=(0.15,), cycles=10, init_cycles=0)
    assert settings.charges == ("cif", "model")  # cif_or_model, the default
    records, failures = _stubbed_run([_chargeless(test_data)], settings, tmp_path, monkeypatch)
    assert failures == []
    (record,) = records
    assert record["charge_method"] == "model" and record["charge_detail"].startswith("model:")
    assert abs(record["net_charge_e"]) < 1e-6
    (row,) = rows(tmp_path / "results.csv")
    assert row["charge_method"] == "model" and abs(float(row["net_charge_e"])) < 1e-6
    # a result charged by another model (retrained in place) is not reused
    path = tmp_path / "NOQ" / "result.json"
    path.write_text(json.dumps({**record, "charge_detail": "model:charges-00000000"}))
    assert simulate._finished(tmp_path, _chargeless(test_data), settings) is None


def test_eqeq_charges_a_real_mof_in_the_engines_child_process(tmp_path: Path) -> None:
    """The whole path: a charge-less CoRE MOF (core-mof's ALAMUW, Cu paddlewheel), EQeq in its
    own process started from the GCMC child, then a short real GCMC."""
    pytest.importorskip("openbabel", reason="Open Babel (openbabel-wheel)")
    pytest.importorskip("CoRE_MOF", reason="the core-mof package (pip install '.[demo]')")
    from mofsieve.manifest import iter_archive, package_archive

    data = dict(iter_archive(package_archive("core-mof:2019-ASR"), {"ALAMUW_clean.cif"}))
    cif = tmp_path / "ALAMUW_clean.cif"
    cif.write_bytes(data["ALAMUW_clean.cif"])
    out = tmp_path / "sim"
    quick = ["--pressure-bar", "0.15", "--cycles", "20", "--init-cycles", "10"]
    assert main(["simulate", str(cif), *quick, "--charges", "eqeq", "--out", str(out)]) == 0
    assert rows(out / "failures.csv") == []
    record = json.loads((out / "ALAMUW_clean" / "result.json").read_text())
    assert record["charge_method"] == "eqeq" and record["charge_detail"] == "eqeq:openbabel-3.1"
    assert abs(record["net_charge_e"]) < 1e-3
    assert record["protocol"]["charges"] == ["eqeq"] and record["protocol"]["charge_model"] is None
    assert math.isfinite(record["results"][0]["uptake_mol_per_kg"])


def test_raspalib_is_pinned_exactly_and_alike_in_pyproject_and_the_rule_environment() -> None:
    import tomllib

    import yaml

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((REPO / "envs" / "mofsieve.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    pin = f"raspalib=={RASPALIB_VERSION}"
    assert [d for d in project["dependencies"] if d.startswith("raspalib")] == [pin]
    assert [d for d in pip if d.startswith("raspalib")] == [pin]


def test_a_result_from_other_moves_or_protocol_is_not_reused(tmp_path: Path) -> None:
    from mofsieve.raspa3_engine import MOVES

    settings = simulate.SimulateSettings(pressures_bar=(0.15,))
    task = simulate.Task("M", "m.cif", b"")
    record = {"format": "mofsieve-simulate-result", "engine": simulation.ENGINE, "moves": MOVES,
              "protocol": settings.as_record()}  # fmt: skip
    (tmp_path / "M").mkdir()
    path = tmp_path / "M" / "result.json"
    path.write_text(json.dumps(record))
    assert simulate._finished(tmp_path, task, settings) == record
    assert MOVES["swap_cbmc_probability"] == 1.0 and "swap_probability" not in MOVES
    plain = {**record, "moves": {**MOVES, "swap_cbmc_probability": 0.0, "swap_probability": 1.0}}
    path.write_text(json.dumps(plain))
    assert simulate._finished(tmp_path, task, settings) is None
    path.write_text(json.dumps({**record, "protocol": {**record["protocol"], "seed": 1}}))
    assert simulate._finished(tmp_path, task, settings) is None


def test_a_charged_cell_is_refused_with_its_net_charge(test_data: Path, tmp_path: Path) -> None:
    tasks = _tasks(test_data)[:1]  # net +0.6 e per cell
    settings = simulate.SimulateSettings(pressures_bar=(0.15,), cycles=10, init_cycles=0)
    records, failures = simulate.run_simulations(tasks, settings, tmp_path, isolate=False)
    assert records == []
    assert [(f.stage, f.reason) for f in failures] == [
        ("charges", "framework net charge +0.6000 e per cell (cif) is beyond ±0.01 e; "
         "Ewald needs a neutral cell"),
    ]  # fmt: skip


def test_cifs_are_read_from_tar_archives_and_duplicates_refused(
    test_data: Path, tmp_path: Path
) -> None:
    import tarfile

    archive = tmp_path / "set.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(test_data / "good" / "toy_framework_charged.cif", arcname="set/TOY.cif")
        tar.add(test_data / "broken" / "empty.cif", arcname="set/EMPTY.cif")
    tasks = simulate.collect_tasks([str(archive)])
    assert [(t.mof_id, t.source) for t in tasks] == [
        ("TOY", f"{archive}::set/TOY.cif"), ("EMPTY", f"{archive}::set/EMPTY.cif"),
    ]  # fmt: skip
    settings = simulate.SimulateSettings(pressures_bar=(0.15,), cycles=10, init_cycles=0)
    _, failures = simulate.run_simulations(tasks, settings, tmp_path / "sim", isolate=False)
    assert [(f.mof_id, f.source, f.stage) for f in failures] == [
        ("TOY", f"{archive}::set/TOY.cif", "charges"),
        ("EMPTY", f"{archive}::set/EMPTY.cif", "parse"),
    ]
    copy = tmp_path / "TOY.cif"
    copy.write_bytes((test_data / "good" / "toy_framework_charged.cif").read_bytes())
    with pytest.raises(InputError, match=re.escape(f"duplicate mof_id 'TOY': {copy} and")):
        simulate.collect_tasks([str(copy), str(archive)])
