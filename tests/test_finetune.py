"""`mofsieve train --init-from`: fine-tuning a model on new labels, on real CoRE MOF 2019
structures (the `core-mof` package). Labels are made up from each cell's atom density (the
test checks the machinery, not chemistry); the "new" labels are simulated uptakes in the
format of a run's `validation.csv`, for MOFs the source model never saw."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mofsieve.cli import main
from mofsieve.modeldir import read_model
from mofsieve.store import FeaturizationParams, write_shard

TARGET = "co2_uptake_mol_per_kg_298K_0.15bar"
N_OLD, N_NEW = 26, 4
SHIFT = 1.0  # new labels = the source's prediction + SHIFT (mol/kg): far from where it is
# The old MOFs' MAE may grow by at most this much (mol/kg) after fine-tuning: a fifth of the
# made-up labels' spread (0.27 mol/kg), where a forgetful (e.g. randomly restarted) model
# loses several times more.
OLD_MAE_TOLERANCE = 0.05


def _label(graph) -> float:
    return float(graph.n_atoms / abs(np.linalg.det(graph.lattice)) * 20)


def _predict(model: Path, graphs: Path, out: Path) -> dict[str, float]:
    assert main(["predict", "--model", str(model), "--graphs", str(graphs), "--out", str(out),
                 "--threads", "1"]) == 0  # fmt: skip
    with open(out, newline="") as fh:
        return {r["mof_id"]: float(r["prediction"]) for r in csv.DictReader(fh)}


def _train_args(graphs: Path, labels: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--graphs", str(graphs), "--labels", str(labels), "--out", str(out),
            "--batch-atoms", "400", "--threads", "1", *extra]  # fmt: skip


@pytest.fixture(scope="module")
def source(core_mof_graphs, tmp_path_factory) -> dict:
    """A small model trained on N_OLD real MOFs, and N_NEW more MOFs it has no label for."""
    root = tmp_path_factory.mktemp("finetune")
    graphs = core_mof_graphs(N_OLD + N_NEW, lambda g: g.n_atoms <= 100)
    (root / "graphs").mkdir()
    write_shard(root / "graphs" / "shard-00000.h5", graphs, FeaturizationParams())
    old, new = graphs[:N_OLD], graphs[N_OLD:]
    labels = root / "labels.csv"
    with open(labels, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["mof_id", TARGET])
        w.writerows([g.mof_id, f"{_label(g):.4f}"] for g in old)
    model = root / "source"
    assert main(_train_args(root / "graphs", labels, model, "--target", TARGET, "--variant",
                            "atten3", "--ensemble", "2", "--epochs", "6")) == 0  # fmt: skip
    return {
        "root": root,
        "graphs": root / "graphs",
        "labels": labels,
        "model": model,
        "old": {g.mof_id: _label(g) for g in old},
        "new_ids": [g.mof_id for g in new],
        "cifs": [g.source for g in graphs[:3]],
    }


def test_finetuning_on_new_labels_moves_them_and_keeps_the_old(source, tmp_path):
    before = _predict(source["model"], source["graphs"], tmp_path / "before.csv")
    # a run's validation.csv: the GCMC uptakes of MOFs it flagged
    simulated = {m: before[m] + SHIFT for m in source["new_ids"]}
    validation = tmp_path / "validation.csv"
    with open(validation, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["mof_id", "predicted", "uncertainty", "simulated", "simulated_error"])
        w.writerows([m, before[m], 0.1, f"{v:.6f}", 0.02] for m, v in simulated.items())
    tuned = tmp_path / "tuned"
    args = _train_args(source["graphs"], source["labels"], tuned, "--init-from",
                       str(source["model"]), "--simulated-labels", str(validation))  # fmt: skip
    assert main(args) == 0
    after = _predict(tuned, source["graphs"], tmp_path / "after.csv")

    # the new MOFs: every prediction closer to its new label, by a good share of the gap
    moved = [(after[m] - before[m]) / SHIFT for m in source["new_ids"]]
    assert all(abs(after[m] - simulated[m]) < SHIFT for m in source["new_ids"]), moved
    assert np.mean(moved) > 0.15, moved
    # the other MOFs: no more than the stated tolerance lost
    old = source["old"]
    mae_before = np.mean([abs(before[m] - y) for m, y in old.items()])
    mae_after = np.mean([abs(after[m] - y) for m, y in old.items()])
    assert mae_after <= mae_before + OLD_MAE_TOLERANCE, (mae_before, mae_after)

    # what model.json records: where it came from, the defaults, the inherited split
    spec, src = read_model(tuned), read_model(source["model"])
    training = spec.metadata["training"]
    init = training["init_from"]
    assert init["path"] == str(source["model"])
    assert (
        init["model_json_sha1"]
        == hashlib.sha1((source["model"] / "model.json").read_bytes()).hexdigest()
    )
    assert init["n_new_train"] == len(source["new_ids"])
    assert training["epochs"] == 10 and training["optimizer"]["lr"] == 1e-4  # fine-tune defaults
    assert spec.init == src.init and spec.featurization == src.featurization
    assert (spec.normalisation_mean, spec.normalisation_std) == (
        src.normalisation_mean,
        src.normalisation_std,
    )
    assert training["label_sources"]["simulated"]["n_added"] == len(source["new_ids"])
    with open(source["model"] / "split.csv", newline="") as fh:
        old_split = {r["mof_id"]: r["split"] for r in csv.DictReader(fh)}
    with open(tuned / "split.csv", newline="") as fh:
        new_split = {r["mof_id"]: r["split"] for r in csv.DictReader(fh)}
    assert {m: new_split[m] for m in old_split} == old_split  # val and test stay held out
    assert all(new_split[m] == "train" for m in source["new_ids"])
    # the same test split and labels: the source's metrics, recomputed, are its own
    before_tune = spec.metadata["metrics"]["test_before_finetune"]
    assert before_tune["mae"] == pytest.approx(src.metadata["metrics"]["test"]["mae"], rel=1e-6)
    with open(tuned / "labels.csv", newline="") as fh:
        merged = {r["mof_id"]: (float(r[TARGET]), r["label_source"]) for r in csv.DictReader(fh)}
    assert merged[source["new_ids"][0]] == pytest.approx(
        (simulated[source["new_ids"][0]], "simulated")
    )
    assert len(merged) == N_OLD + N_NEW
    card = (tuned / "MODEL_CARD.md").read_text()
    assert "Fine-tuned (warm start) from" in card and "the model it was fine-tuned from" in card


@pytest.fixture
def other_featurization(source, tmp_path) -> Path:
    """Three of the same CIFs featurized with 8 neighbours instead of the model's 12."""
    from mofsieve.featurize import featurize_cif
    from mofsieve.manifest import iter_archive, package_archive

    params = FeaturizationParams(max_neighbors=8)
    wanted = set(source["cifs"])
    graphs = [
        featurize_cif(Path(name).stem, name, data, params)
        for name, data in iter_archive(package_archive("core-mof:2019-ASR"))
        if name in wanted
    ]
    assert len(graphs) == len(wanted)
    (tmp_path / "graphs8").mkdir()
    write_shard(tmp_path / "graphs8" / "shard-00000.h5", graphs, params)
    return tmp_path / "graphs8"


def test_finetuning_on_graphs_featurized_otherwise_is_refused(
    source, other_featurization, tmp_path, caplog
):
    out = tmp_path / "tuned"
    args = _train_args(other_featurization, source["labels"], out, "--init-from",
                       str(source["model"]))  # fmt: skip
    assert main(args) == 3
    assert "max_neighbors=8 but the model expects max_neighbors=12" in caplog.text
    assert not (out / "model.json").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--variant", "cgcnn"], "--variant: a fine-tuned model keeps the architecture"),
        (
            ["--target", "co2_uptake_mol_per_kg_298K_16bar"],
            "fine-tune on labels of the same target",
        ),
        (["--ensemble", "3"], "has 2 members"),
    ],
)
def test_finetuning_refuses_what_would_change_the_model(source, tmp_path, caplog, extra, message):
    out = tmp_path / "tuned"
    args = _train_args(source["graphs"], source["labels"], out, "--init-from",
                       str(source["model"]), *extra)  # fmt: skip
    assert main(args) == 2
    assert message in caplog.text
    assert not out.exists() or not (out / "model.json").exists()


def test_finetuning_into_the_source_folder_is_refused(source, caplog):
    before = (source["model"] / "member-0.pt").read_bytes()
    args = _train_args(source["graphs"], source["labels"], source["model"], "--init-from",
                       str(source["model"]))  # fmt: skip
    assert main(args) == 2
    assert "write the fine-tuned model to a new directory" in caplog.text
    assert (source["model"] / "member-0.pt").read_bytes() == before
    assert (
        json.loads((source["model"] / "model.json").read_text())["training"].get("init_from")
        is None
    )


# ---------------------------------------------------------------------------------------------
# `snakemake retrain`: the plan (a dry run; the steps themselves are tested above)

REPO = Path(__file__).resolve().parents[1]


def _snakemake_dry_run(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    snakemake = Path(sys.executable).with_name("snakemake")
    env = {**os.environ, "PATH": f"{snakemake.parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        [str(snakemake), "--snakefile", str(REPO / "Snakefile"), "-n", "-p", *args],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.fixture
def screened_run(tmp_path, write_model_dir) -> Path:
    """A run folder after a screen: models, manifest (2 shards) and the GCMC validation.csv."""
    for name, pressure in (("low", 0.15), ("high", 16.0)):
        write_model_dir(tmp_path / "models" / name, pressure_bar=pressure)
    config = {
        "inputs": ["cifs"], "run": "r", "output_dir": "results", "shard_size": 50,
        "target": {"pressure": 0.15}, "models": {"0.15": "models/low", "16": "models/high"},
    }  # fmt: skip
    (tmp_path / "config.yaml").write_text(json.dumps(config))  # JSON is YAML
    run = tmp_path / "results" / "r"
    run.mkdir(parents=True)
    sha = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
    (run / "manifest.csv").write_text(
        "mof_id,source,sha1,n_bytes,shard\n"
        + "".join(f"MOF{i:03d},cifs/MOF{i:03d}.cif,{sha},1000,{i // 50}\n" for i in range(100))
    )
    (run / "validation.csv").write_text(
        "mof_id,predicted,uncertainty,simulated,simulated_error\nMOF001,1.0,0.2,1.5,0.05\n"
    )
    (tmp_path / "labels.csv").write_text(f"mof_id,{TARGET}\nOLD1,1.0\n")
    (tmp_path / "old graphs").mkdir()
    return tmp_path


def test_retrain_fine_tunes_the_ranking_model_on_the_runs_gcmc_and_ranks_again(screened_run):
    result = _snakemake_dry_run(
        screened_run, "retrain", "--config", "train={labels: labels.csv, graphs: [old graphs]}"
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    commands = {}
    for line in result.stdout.splitlines():
        if line.startswith(("rule ", "localrule ")):
            rule = line.split()[1].rstrip(":")
        elif line.startswith("Shell command: "):
            commands[rule] = shlex.split(line.removeprefix("Shell command: "))
    # (with the screen's own rules before it wherever its outputs are missing)
    assert {"featurize", "retrain_model", "predict_retrained", "retrain"} <= set(commands)
    train = commands["retrain_model"]
    assert train[:4] == ["mofsieve", "train", "--init-from", "models/low"]
    for option, value in (
        ("--labels", "labels.csv"), ("--simulated-labels", "results/r/validation.csv"),
        ("--out", "results/r/retrained/model"), ("--epochs", "10"), ("--lr", "0.0001"),
    ):  # fmt: skip
        assert train[train.index(option) + 1] == value, option
    # the original labels' graphs and this run's
    assert train[train.index("--graphs") + 1 : train.index("--graphs") + 3] == [
        "old graphs", "results/r/graphs/shards-00000-00001",
    ]  # fmt: skip
    predict = commands["predict_retrained"]
    assert predict[predict.index("--model") + 1] == "results/r/retrained/model"
    rank = commands["retrain"]
    assert rank[rank.index("--ranked") + 1] == "results/r/retrained/ranked.csv"
    assert (
        rank[rank.index("--predictions") + 1]
        == "results/r/retrained/predictions/shards-00000-00001"
    )


def test_retrain_of_a_working_capacity_run_is_refused(screened_run):
    result = _snakemake_dry_run(
        screened_run, "retrain", "--config", "train={labels: labels.csv}",
        "target={pressure: working_capacity}",
    )  # fmt: skip
    assert result.returncode != 0
    assert "does not retrain for a working capacity target" in result.stdout + result.stderr
