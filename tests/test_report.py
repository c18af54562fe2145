from __future__ import annotations

import base64
import html
import json
import logging
import re
import shutil
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest

from mofsieve.attention import AttentionWriter
from mofsieve.cli import main
from mofsieve.featurize import featurize_cif
from mofsieve.store import CrystalGraph, FeaturizationParams, write_shard

UNIT_COLUMNS = "prediction_mol_per_kg,uncertainty_mol_per_kg"
GOOD = Path(__file__).resolve().parent / "data" / "good"
# ranked MOF id → the CIF of tests/data/good it is featurized from
CIFS = {"TOP1": "toy_framework_charged", "TOP2": "toy_crlf_type_charges", "LOW": "cu_fcc_p1"}


def real_graphs() -> list[CrystalGraph]:
    """Graphs of real CIFs, featurized the way `mofsieve featurize` does."""
    return [
        featurize_cif(mof_id, f"{name}.cif", (GOOD / f"{name}.cif").read_bytes(), FeaturizationParams())
        for mof_id, name in CIFS.items()
    ]  # fmt: skip


def peaked_weights(graphs: list[CrystalGraph]) -> np.ndarray:
    """Per-atom weights summing to 1 per graph, most of each on its first atom."""
    parts = []
    for g in graphs:
        w = np.full(g.n_atoms, 0.5 / max(g.n_atoms - 1, 1))
        w[0] = 0.5 if g.n_atoms > 1 else 1.0
        parts.append(w)
    return np.concatenate(parts)


def write_attention(path: Path, graphs: list[CrystalGraph], readout: str) -> Path:
    """An attention file written by the writer `mofsieve predict --attention` uses."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = AttentionWriter(path, readout)
    if readout == "attention":
        weights = peaked_weights(graphs)
    else:  # what predict writes for pooling without learned weights: uniform
        weights = np.concatenate([np.full(g.n_atoms, 1.0 / g.n_atoms) for g in graphs])
    writer.add(graphs, weights)
    writer.close()
    return path


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    graphs = real_graphs()
    (tmp_path / "graphs").mkdir()
    write_shard(tmp_path / "graphs" / "shard-00000.h5", graphs, FeaturizationParams())
    (tmp_path / "manifest.csv").write_text(
        "mof_id,source,sha1,n_bytes,shard\nTOP1,a,x,1,0\nTOP2,b,x,1,0\nLOW,c,x,1,0\nBAD,d,x,1,0\n"
        "WORSE,e,x,1,0\n"
    )
    (tmp_path / "ranked.csv").write_text(
        f"rank,mof_id,{UNIT_COLUMNS},flagged,n_atoms,source\n"
        "1,TOP1,3.500000,0.200000,yes,10,a\n2,TOP2,2.250000,0.100000,no,5,b\n"
        "3,LOW,0.500000,0.300000,no,4,c\n"
    )
    (tmp_path / "failures.csv").write_text(
        "mof_id,source,stage,reason\nBAD,d,parse,CIF syntax error: line 3\n"
        "WORSE,e,parse,CIF syntax error: line 9\n"
        "OV1,f,graph,overlapping atoms 3 and 7 only 0.36 Å apart (limit 0.5 Å)\n"
        "OV2,g,graph,overlapping atoms 10 and 12 only 0.1 Å apart (limit 0.5 Å)\n"
    )
    write_attention(tmp_path / "attention" / "attention-00000.h5", graphs, "attention")
    return tmp_path


def report(run_dir: Path, *extra: str) -> str:
    out = run_dir / "report.html"
    assert main(["report", "--ranked", str(run_dir / "ranked.csv"),
                 "--failures", str(run_dir / "failures.csv"), "--out", str(out),
                 "--manifest", str(run_dir / "manifest.csv"),
                 "--graphs", str(run_dir / "graphs"), *extra]) == 0  # fmt: skip
    return out.read_text()


def report_fails(run_dir: Path, caplog: pytest.LogCaptureFixture, *extra: str) -> str:
    """Run the report expecting it to fail; returns what it logged."""
    out = run_dir / "report.html"
    with caplog.at_level(logging.ERROR):
        code = main(["report", "--ranked", str(run_dir / "ranked.csv"),
                     "--failures", str(run_dir / "failures.csv"), "--out", str(out),
                     "--manifest", str(run_dir / "manifest.csv"),
                     "--graphs", str(run_dir / "graphs"), *extra])  # fmt: skip
    assert code != 0
    assert not out.exists()
    return caplog.text


def images(text: str) -> list[bytes]:
    return [
        base64.b64decode(m) for m in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", text)
    ]


def colours(text: str) -> list[str]:
    """The data-colour marker of every structure picture, in page order."""
    return re.findall(r"<img data-colour=\"([a-z]+)\"", text)


def test_report_is_self_contained_with_distribution_table_pictures_failures(run_dir: Path) -> None:
    text = report(run_dir, "--attention", str(run_dir / "attention"), "--pictures", "2")
    pngs = images(text)
    assert len(pngs) == 1 + 2 + 1  # the distribution, two candidates, attention by element
    assert all(p.startswith(b"\x89PNG\r\n\x1a\n") for p in pngs)
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", text)
    assert "<script" not in text
    assert "flag threshold" in text and "3.5 mol/kg" in text
    assert "TOP1" in text and "TOP2" in text
    assert colours(text) == ["attention", "attention"]
    assert "coloured by element" not in text
    # both CIF syntax errors grouped under one reason, counted twice
    assert re.search(r"<td>parse</td><td>CIF syntax error</td><td class=\"num\">2</td>", text)
    assert re.search(
        r"<td>graph</td><td>overlapping atoms # and # only # Å apart \(limit # Å\)</td>"
        r"<td class=\"num\">2</td><td>OV1, OV2</td>",
        text,
    )


def test_report_without_attention_colours_by_element_and_says_so(run_dir: Path) -> None:
    text = report(run_dir, "--pictures", "1")
    assert len(images(text)) == 2
    assert colours(text) == ["element"]
    assert "no attention file given; coloured by element" in text


def test_attention_pictures_are_coloured_by_the_weights(run_dir: Path) -> None:
    attention = report(run_dir, "--attention", str(run_dir / "attention"), "--pictures", "1")
    element = report(run_dir, "--pictures", "1")
    assert colours(attention) == ["attention"] and colours(element) == ["element"]
    assert images(attention)[1] != images(element)[1]


def test_mean_readout_colours_by_element_with_a_caption(run_dir: Path) -> None:
    write_attention(run_dir / "mean" / "attention-00000.h5", real_graphs(), "mean")
    text = report(run_dir, "--attention", str(run_dir / "mean"), "--pictures", "3")
    assert colours(text) == ["element"] * 3
    assert text.count("mean pooling: every atom weighs the same; coloured by element") == 3


def test_attention_file_without_format_attribute_fails_the_report(run_dir, caplog) -> None:
    path = run_dir / "attention" / "attention-00000.h5"
    with h5py.File(path, "w") as h5:  # the old guessable layout: no format, no readout
        h5["ids"] = np.array(list(CIFS), dtype=h5py.string_dtype())
        h5["node_ptr"] = np.array([0, 10, 15, 19])
        h5["weights"] = np.concatenate([np.full(10, 0.1), np.full(5, 0.2), np.full(4, 0.25)])
    log = report_fails(run_dir, caplog, "--attention", str(run_dir / "attention"))
    assert f"{path} is not a mofsieve-attention file (format=None)" in log


def test_attention_file_of_another_version_fails_the_report(run_dir, caplog) -> None:
    path = run_dir / "attention" / "attention-00000.h5"
    with h5py.File(path, "a") as h5:
        h5.attrs["format_version"] = 1
    log = report_fails(run_dir, caplog, "--attention", str(run_dir / "attention"))
    assert f"{path} has mofsieve-attention format version 1" in log


def test_attention_of_other_graphs_fails_the_report(run_dir, caplog) -> None:
    """Weights written for other structures than the graph shard's: as many weights as
    atoms is checked MOF by MOF, not papered over by element colouring."""
    top1, top2, low = real_graphs()  # 10, 5, 4 atoms: TOP1 and TOP2 under each other's ids
    swapped = [replace(top2, mof_id="TOP1"), replace(top1, mof_id="TOP2"), low]
    path = write_attention(run_dir / "other" / "attention-00000.h5", swapped, "attention")
    log = report_fails(run_dir, caplog, "--attention", str(run_dir / "other"))
    assert f"{path}: TOP1 has 5 weights but its graph has 10 atoms" in log


def test_missing_attention_file_fails_the_report(run_dir, caplog) -> None:
    log = report_fails(run_dir, caplog, "--attention", str(run_dir / "nowhere"))
    assert str(run_dir / "nowhere" / "attention-00000.h5") in log


def test_report_rejects_a_file_that_is_not_ranked_csv(run_dir: Path) -> None:
    (run_dir / "ranked.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a ranked.csv"):
        report(run_dir)


def test_structure_checks_are_listed_by_count_with_what_flagging_passed_over(
    run_dir: Path,
) -> None:
    assert "ranked.csv has no checks column" in report(run_dir)  # a ranking of before checks
    (run_dir / "ranked.csv").write_text(
        f"rank,mof_id,{UNIT_COLUMNS},flagged,checks,n_atoms,source\n"
        "1,TOP1,3.500000,0.200000,yes,,10,a\n"
        "2,TOP2,2.250000,0.100000,no,coordination;isolated_atom,5,b\n"
        "3,LOW,0.500000,0.300000,yes,isolated_molecule;coordination,4,c\n"
        "4,EXTRA,0.100000,0.100000,no,coordination,3,d\n"  # below the threshold: not passed over
    )
    text = report(run_dir)
    assert "3 of 4 ranked MOFs raised a check" in text
    rows = re.findall(
        r"<tr><td>([a-z_]+)</td><td>[^<]*</td><td class=\"num\">(\d+)</td>"
        r"<td class=\"num\">(\d+)</td><td class=\"num\">(\d+)</td><td>([^<]*)</td></tr>",
        text,
    )
    assert rows == [
        ("coordination", "3", "1", "1", "EXTRA, LOW, TOP2"),
        ("isolated_atom", "1", "0", "1", "TOP2"),
        ("isolated_molecule", "1", "1", "0", "LOW"),
    ]
    assert "a carbon bonded to more than 4" in text  # each check says what it means


def test_graphs_and_attention_in_a_folder_per_workflow_job_are_found_shard_by_shard(
    run_dir: Path,
) -> None:
    """The workflow's featurize and predict jobs each write their shards into a folder of
    their own: every shard is looked up in the folder that holds it."""
    top1, top2, low = real_graphs()
    (run_dir / "manifest.csv").write_text(
        "mof_id,source,sha1,n_bytes,shard\nTOP1,a,x,1,0\nTOP2,b,x,1,0\nLOW,c,x,1,1\n"
    )
    jobs = run_dir / "jobs"
    for name in ("g0", "g1"):
        (jobs / name).mkdir(parents=True)
    write_shard(jobs / "g0" / "shard-00000.h5", [top1, top2], FeaturizationParams())
    write_shard(jobs / "g1" / "shard-00001.h5", [low], FeaturizationParams())
    write_attention(jobs / "a0" / "attention-00000.h5", [top1, top2], "attention")
    write_attention(jobs / "a1" / "attention-00001.h5", [low], "attention")
    text = report(run_dir, "--graphs", str(jobs / "g0"), str(jobs / "g1"),
                  "--attention", str(jobs / "a0"), str(jobs / "a1"), "--pictures", "3")  # fmt: skip
    assert colours(text) == ["attention"] * 3


# ------------------------------------------------------------- validation, attention by element


def flag(run_dir: Path, *mof_ids: str) -> None:
    """Mark ``mof_ids`` flagged in the run's ranked.csv (TOP1 and TOP2 keep their order)."""
    lines = (run_dir / "ranked.csv").read_text().splitlines()
    cells = [line.split(",") for line in lines]
    for row in cells[1:]:
        row[4] = "yes" if row[1] in mof_ids else "no"
    (run_dir / "ranked.csv").write_text("\n".join(",".join(c) for c in cells) + "\n")


def table_rows(text: str, first_cell: str) -> list[list[str]]:
    """The cells of every table row whose first cell is ``first_cell``."""
    found = []
    for row in re.findall(r"<tr>(.*?)</tr>", text):
        cells = [html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
        if cells and cells[0] == first_cell:
            found.append(cells)
    return found


def validated(run_dir: Path) -> list[str]:
    """validation.csv/.json of `mofsieve validate gather` over simulate results written by
    hand in simulate's format: TOP1 (CIF charges) and TOP2 (charge model) simulated, LOW
    refused; returns the report options that name them."""
    from mofsieve.simulation import RESULT_COLUMNS

    sim = run_dir / "sim"
    sim.mkdir()
    (sim / "results.csv").write_text(
        ",".join(RESULT_COLUMNS) + "\n"
        "TOP1,0.15,298,3.100000,0.150000,250,150,0,cif,2x2x2,10.0,0.000000\n"
        "TOP2,0.15,298,2.650000,0.050000,250,150,0,model,3x3x3,12.0,0.000000\n"
    )
    (sim / "failures.csv").write_text(
        "mof_id,source,stage,reason\nLOW,c,charges,no usable partial charges (model: Cu +3.2 e)\n"
    )
    assert main(["validate", "gather", "--ranked", str(run_dir / "ranked.csv"), "--simulated",
                 str(sim), "--pressure-bar", "0.15", "--out-dir", str(run_dir)]) == 0  # fmt: skip
    return ["--validation-csv", str(run_dir / "validation.csv"),
            "--validation-json", str(run_dir / "validation.json")]  # fmt: skip


def test_validation_section_has_metrics_parity_plot_and_each_mofs_charge_method(
    run_dir: Path,
) -> None:
    flag(run_dir, "TOP1", "TOP2")  # flag threshold 2.25 mol/kg
    text = report(run_dir, *validated(run_dir), "--pictures", "1")
    section = text.split("<h2>Validation: GCMC of the top picks</h2>", 1)[1].split("<h2>", 1)[0]
    # |3.5 − 3.1| and |2.25 − 2.65|: MAE 0.4, mean error 0; predicted and simulated agree in order
    assert table_rows(section, "MAE (mol/kg)") == [["MAE (mol/kg)", "0.4"]]
    assert table_rows(section, "Spearman (predicted vs simulated)")[0][1] == "1"
    assert table_rows(section, "hit rate (simulated ≥ flag threshold)")[0][1] == (
        "2 of 2 (100 %) at or above 2.25 mol/kg"
    )
    assert table_rows(section, "GCMC protocol (initialization + production)")[0][1] == (
        "150 + 250 cycles, seed 0, 298 K"
    )
    assert table_rows(section, "charge methods")[0][1] == "cif 1, model 1"
    top1, top2, low = (table_rows(section, str(k))[0] for k in (1, 2, 3))
    assert top1[1:4] == ["TOP1", "3.500 ± 0.200", "3.100 ± 0.150"] and top1[7] == "cif"
    assert top2[1:4] == ["TOP2", "2.250 ± 0.100", "2.650 ± 0.050"] and top2[7] == "model"
    assert low[1] == "LOW" and low[3] == "—"
    assert low[8] == "failed: charges: no usable partial charges (model: Cu +3.2 e)"
    assert len(images(section)) == 1  # the parity plot
    assert images(section)[0].startswith(b"\x89PNG\r\n\x1a\n")


def test_report_says_when_validation_is_off_and_refuses_a_broken_validation_file(
    run_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = report(run_dir)
    assert "GCMC validation is off (<code>gcmc.simulate.top: 0</code>)" in text
    (run_dir / "report.html").unlink()
    options = validated(run_dir)
    (run_dir / "validation.json").write_text('{"format": "something else"}')
    log = report_fails(run_dir, caplog, *options)
    assert "validation.json is not a mofsieve-validation file" in log


def test_attention_by_element_is_weight_times_atom_count_averaged_over_flagged_mofs(
    run_dir: Path,
) -> None:
    """Peaked weights: a MOF's first atom (Zn) has half its attention, the other atoms share
    the rest. TOP1 (10 atoms): Zn 0.5 × 10 = 5, each other atom 0.5 / 9 × 10; TOP2 (5 atoms):
    Zn 2.5, the others 0.5 / 4 × 5 = 0.625."""
    flag(run_dir, "TOP1", "TOP2")
    text = report(run_dir, "--attention", str(run_dir / "attention"), "--pictures", "0")
    section = text.split("<h2>Attention by element</h2>", 1)[1].split("<h2>", 1)[0]
    assert "Over the 2 best flagged MOFs" in section
    assert table_rows(section, "Zn") == [["Zn", "2", "2", "3.750", "1.250"]]
    others = f"{(5 / 9 + 0.625) / 2:.3f}"
    assert table_rows(section, "O") == [["O", "2", "5", others, f"{(0.625 - 5 / 9) / 2:.3f}"]]
    assert table_rows(section, "N") == [["N", "1", "1", f"{5 / 9:.3f}", "0.000"]]
    assert "Cu" not in [
        r[0] for r in re.findall(r"<tr><td>(\w+)</td>", section)
    ]  # LOW: not flagged
    assert len(images(section)) == 1

    write_attention(run_dir / "mean" / "attention-00000.h5", real_graphs(), "mean")
    text = report(run_dir, "--attention", str(run_dir / "mean"), "--pictures", "0")
    assert (
        "No learned attention weights (mean pooling: every atom weighs the same): no statistics"
        " by element" in text
    )


def test_calibrated_models_give_90_percent_intervals_and_uncalibrated_ones_say_so(
    run_dir: Path, write_model_dir
) -> None:
    from mofsieve.modeldir import Calibration, set_calibration

    model = run_dir / "model"
    write_model_dir(model)
    text = report(run_dir, "--attention", str(run_dir / "attention"), "--models", str(model))
    assert "uncalibrated" in text
    assert "90 % interval" not in text

    calibration = Calibration(method="scale", scale=2.0, coverage_90_test=0.9)
    set_calibration(model, calibration)
    text = report(run_dir, "--attention", str(run_dir / "attention"), "--models", str(model))
    assert "calibrated standard deviation" in text and "90.0%" in text
    # TOP1: 3.5 ± 1.645 × 0.2
    assert "<td>3.17 – 3.83</td>" in text


def test_a_model_with_trees_says_the_attention_is_its_graph_networks_only(
    run_dir: Path, tmp_path: Path
) -> None:
    blended = Path(__file__).resolve().parents[1] / "models" / "co2_298K_16bar"
    plain = tmp_path / "graph-network-only"  # the same model without its trees
    shutil.copytree(blended, plain)
    meta = json.loads((plain / "model.json").read_text())
    graph_weight = 1.0 - meta["booster"]["weight"]
    del meta["booster"]
    (plain / "model.json").write_text(json.dumps(meta))
    text = report(run_dir, "--attention", str(run_dir / "attention"), "--models", str(plain))
    assert "gradient-boosted trees" not in text
    text = report(run_dir, "--attention", str(run_dir / "attention"), "--models", str(blended))
    assert (
        f"blends its graph network (weight {graph_weight:.2f}) with gradient-boosted trees" in text
    )


def test_duplicates_are_shown_with_the_framework_they_repeat(run_dir: Path) -> None:
    ranked = run_dir / "ranked.csv"
    header, best, *rest = ranked.read_text().splitlines()
    lines = [f"{header},duplicate_of", f"{best},", *(f"{line},TOP1" for line in rest)]
    ranked.write_text("\n".join(lines) + "\n")
    text = report(run_dir, "--attention", str(run_dir / "attention"))
    assert "<th>duplicate_of</th>" in text
    assert text.count("<td>TOP1</td>") >= 3  # TOP1 itself and the two rows repeating it
