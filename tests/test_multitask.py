"""Multi-target models (`mofsieve train --target A --target B`): one graph trunk and hidden
layer, one output per target, trained on real CoRE MOF 2019 structures and their GCMC labels
(the shared `labels.csv`; skipped without it), some MOFs labelled at one pressure only."""

from __future__ import annotations

import csv
import json
import logging
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mofsieve import config as mconfig
from mofsieve.cli import main
from mofsieve.modeldir import ModelDirError, TargetSpec, read_model, set_calibration

LOW = "co2_uptake_mol_per_kg_298K_0.15bar"
HIGH = "co2_uptake_mol_per_kg_298K_16bar"
REPO = Path(__file__).resolve().parents[1]
SHIPPED_LOW = REPO / "models" / "co2_298K_0.15bar"
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
N_BOTH, N_LOW_ONLY, N_HIGH_ONLY = 30, 8, 6  # the last: both in labels.csv, 0.15 bar hidden
MAX_CIF_BYTES = 12000  # small cells: a tiny training stays seconds


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _float(text: str) -> float:
    return float(text) if text.strip() else math.nan


@pytest.fixture(scope="module")
def data(shared_core, tmp_path_factory) -> dict:
    """Real CIFs of the shared set featurized by `mofsieve featurize`, with their labels:
    N_BOTH MOFs labelled at both pressures, N_LOW_ONLY at 0.15 bar only (as labels.csv has
    them), N_HIGH_ONLY at 16 bar only (their 0.15 bar label left out here)."""
    from mofsieve.manifest import iter_archive

    root = tmp_path_factory.mktemp("multitask")
    labels = {r["mof_id"]: r for r in _read_csv(shared_core / "labels.csv")}
    both: list[str] = []
    low_only: list[str] = []
    (root / "cifs").mkdir()
    for name, raw in iter_archive(shared_core / "cifs.tar.xz"):
        mof_id = Path(name).stem
        if mof_id not in labels or len(raw) > MAX_CIF_BYTES:
            continue
        group = both if labels[mof_id][HIGH].strip() else low_only
        if len(group) < (N_BOTH + N_HIGH_ONLY if group is both else N_LOW_ONLY):
            group.append(mof_id)
            (root / "cifs" / f"{mof_id}.cif").write_bytes(raw)
        if len(both) == N_BOTH + N_HIGH_ONLY and len(low_only) == N_LOW_ONLY:
            break
    high_only = both[N_BOTH:]
    values = {
        m: (math.nan if m in high_only else float(labels[m][LOW]), _float(labels[m][HIGH]))
        for m in both + low_only
    }
    full = root / "labels-full.csv"  # both columns as labels.csv has them
    masked = root / "labels.csv"  # 0.15 bar left out for the high_only MOFs
    for path, hide in ((full, set()), (masked, set(high_only))):
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["mof_id", LOW, HIGH])
            for m in both + low_only:
                w.writerow([m, "" if m in hide else labels[m][LOW], labels[m][HIGH]])
    graphs = root / "graphs"
    assert main(["featurize", str(root / "cifs"), "--out", str(graphs), "--jobs", "1"]) == 0
    model = root / "model"
    assert main(_train_args(graphs, masked, model, "--target", LOW, "--target", HIGH)) == 0
    return {"root": root, "graphs": graphs, "labels": masked, "labels_full": full,
            "model": model, "values": values, "high_only": high_only,
            "low_only": low_only}  # fmt: skip


def _train_args(graphs: Path, labels: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--labels", str(labels), "--graphs", str(graphs), "--out", str(out),
            "--variant", "cg", "--ensemble", "2", "--epochs", "2", "--batch-atoms", "600",
            "--threads", "1", *extra]  # fmt: skip


def _direct(model_dir: Path, graphs: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """mof_id → every target's ensemble mean (clipped) and spread, from a forward pass of
    each member over each graph alone, outside `mofsieve predict`."""
    from mofsieve.batching import graph_to_data
    from mofsieve.model import load_model_dir
    from mofsieve.store import ShardReader, shard_paths

    members, spec = load_model_dir(model_dir)
    mean = np.array([m for m, _ in spec.normalisations])
    std = np.array([s for _, s in spec.normalisations])
    clip = np.array([-np.inf if t.clip_min is None else t.clip_min for t in spec.targets])
    out = {}
    for path in shard_paths([graphs]):
        reader = ShardReader(path, in_memory=True)
        names = reader.params.global_feature_names
        index = [names.index(n) for n in spec.featurization.global_feature_names]
        for i, mof_id in enumerate(reader.ids):
            data = graph_to_data(reader.graph(i), index)
            data.batch = torch.zeros(data.num_nodes, dtype=torch.long)
            data.num_graphs = 1
            with torch.no_grad():
                outs = [m(data).double().numpy().reshape(-1) * std + mean for m in members]
            out[mof_id] = (np.maximum(np.mean(outs, axis=0), clip), np.std(outs, axis=0))
    return out


def _direct_predictions(model_dir: Path, graphs: Path) -> dict[str, np.ndarray]:
    return {m: mean for m, (mean, _) in _direct(model_dir, graphs).items()}


def _direct_spreads(model_dir: Path, graphs: Path) -> dict[str, np.ndarray]:
    return {m: spread for m, (_, spread) in _direct(model_dir, graphs).items()}


def _predict(model: Path, graphs: Path, out: Path, *extra: str) -> int:
    return main(["predict", "--model", str(model), "--graphs", str(graphs), "--out", str(out),
                 "--threads", "1", *extra])  # fmt: skip


# ---------------------------------------------------------------------------------------------
# the model folder


def test_model_json_records_each_target_and_an_old_reader_refuses_it(data):
    spec = read_model(data["model"])
    meta = json.loads((data["model"] / "model.json").read_text())
    # a version-1 reader checks format_version == 1 first; and there is no "target" to misread
    assert meta["format_version"] == 2 and "target" not in meta and "normalisation" not in meta
    assert meta["init"]["n_targets"] == 2 and meta["unit"] == "mol/kg"
    assert spec.is_multi_target and spec.target_names == (LOW, HIGH)
    assert [t.pressure_bar for t in spec.targets] == [0.15, 16.0]
    assert all(t.clip_min == 0.0 and t.temperature_K == 298.0 for t in spec.targets)
    # each target standardised on its own training labels (split.csv says which MOFs train)
    split = {r["mof_id"]: r["split"] for r in _read_csv(data["model"] / "split.csv")}
    for t, (mean, std) in enumerate(spec.normalisations):
        train = [v[t] for m, v in data["values"].items() if split[m] == "train"]
        assert mean == pytest.approx(np.nanmean(train)) and std == pytest.approx(np.nanstd(train))
    with pytest.raises(ModelDirError, match="choose one with --target"):
        spec.select(None)
    with pytest.raises(ModelDirError, match=r"a target must be chosen"):
        _ = spec.target
    chosen = spec.select(HIGH)
    assert chosen.target.name == HIGH and chosen.normalisation_mean == spec.normalisations[1][0]
    # read back through the same writer: nothing lost
    again = read_model(data["model"])
    assert again.targets == spec.targets and again.normalisations == spec.normalisations


def test_a_multi_target_model_json_that_does_not_add_up_is_refused(data, tmp_path):
    meta = json.loads((data["model"] / "model.json").read_text())
    meta["init"]["n_targets"] = 3
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelDirError, match="init.n_targets is 3 but 2 targets are listed"):
        read_model(tmp_path)
    meta["init"]["n_targets"] = 2
    del meta["targets"][1]["normalisation"]
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelDirError, match=r"targets\[1\].normalisation is missing"):
        read_model(tmp_path)


def test_card_has_each_targets_metrics_on_its_labelled_test_mofs(data):
    card = (data["model"] / "MODEL_CARD.md").read_text()
    meta = read_model(data["model"]).metadata
    split = {r["mof_id"]: r["split"] for r in _read_csv(data["model"] / "split.csv")}
    for t, name in enumerate((LOW, HIGH)):
        labelled_test = [m for m, v in data["values"].items()
                         if split[m] == "test" and not math.isnan(v[t])]  # fmt: skip
        metrics = meta["metrics"][name]
        assert metrics["test"]["n"] == len(labelled_test)
        assert {"mae", "spearman", "top10_recall"} <= set(metrics["val"])
        section = card.split(f"### `{name}`", 1)[1].split("###", 1)[0]
        assert (
            f"| test, ensemble | {len(labelled_test)} | {metrics['test']['mae']:.3f} |" in section
        )
        assert (data["model"] / f"parity-{name}.png").is_file()
    rows = _read_csv(data["model"] / "test_predictions.csv")
    assert {r["target"] for r in rows} == {LOW, HIGH}
    assert not any(r["mof_id"] in data["high_only"] and r["target"] == LOW for r in rows)


# ---------------------------------------------------------------------------------------------
# training


def test_a_missing_label_sends_no_gradient_to_its_output(data):
    """A MOF labelled at 0.15 bar only: its loss reaches the 0.15 bar output and the shared
    layers, never the 16 bar output; and the loss does not depend on the missing value."""
    from mofsieve.batching import graph_to_data, iter_batches
    from mofsieve.fit import masked_loss
    from mofsieve.model import build_model, variant_config
    from mofsieve.store import ShardReader, shard_paths

    reader = ShardReader(shard_paths([data["graphs"]])[0], in_memory=True)
    datas = [graph_to_data(reader.graph(i), []) for i in range(4)]
    for d in datas:
        d.y_std = torch.tensor([[0.5, math.nan]])  # labelled at 0.15 bar only
    torch.manual_seed(0)
    model = build_model(variant_config("cg", n_targets=2)).train()
    (_, batch), *_ = iter_batches(datas, 10**6)
    loss = masked_loss(model(batch), batch.y_std)
    loss.backward()
    out = model.mlp_out
    assert torch.all(out.weight.grad[1] == 0) and out.bias.grad[1] == 0
    assert out.weight.grad[0].abs().sum() > 0 and model.mlp_in.weight.grad.abs().sum() > 0
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    # the loss is the one of the labelled column alone
    model.eval()
    with torch.no_grad():
        pred = model(batch)
    assert masked_loss(pred, batch.y_std).item() == pytest.approx(
        torch.mean((pred[:, 0] - 0.5) ** 2).item()
    )


def test_split_over_any_label_is_the_single_target_split_of_the_covering_target(shared_core):
    """On labels.csv every MOF with a 16 bar label has a 0.15 bar one, so the multi-target
    split (over MOFs with any label) is the 0.15 bar model's split, MOF for MOF; the 16 bar
    single-target split (over fewer MOFs) cannot be kept at the same time."""
    from mofsieve.training_data import make_split, read_label_columns, read_labels

    both = read_label_columns(shared_core / "labels.csv", [LOW, HIGH])
    low = read_labels(shared_core / "labels.csv", LOW)
    high = read_labels(shared_core / "labels.csv", HIGH)
    assert set(both) == set(low) > set(high)
    assert make_split(list(both), 0) == make_split(list(low), 0)
    differs = make_split(list(high), 0)
    assert any(differs[m] != make_split(list(both), 0)[m] for m in high)
    assert all(math.isnan(both[m][1]) == (m not in high) for m in both)


def test_multi_target_split_equals_single_target_training_split(data, tmp_path):
    """End to end on real graphs: `train --target LOW` writes the split the multi-target
    training data gets from the same labels (0.15 bar labels cover every MOF there)."""
    from mofsieve.store import ShardReader, shard_paths
    from mofsieve.training_data import load_training_set, read_label_columns

    single = tmp_path / "single"
    assert main(_train_args(data["graphs"], data["labels_full"], single, "--target", LOW,
                            "--epochs", "1", "--ensemble", "1")) == 0  # fmt: skip
    written = {r["mof_id"]: r["split"] for r in _read_csv(single / "split.csv")}
    readers = [ShardReader(p, in_memory=True) for p in shard_paths([data["graphs"]])]
    labels = read_label_columns(data["labels_full"], [LOW, HIGH])
    multi = load_training_set(labels, readers, (), seed=0)
    assert multi.split == written and len(written) == N_BOTH + N_HIGH_ONLY + N_LOW_ONLY


def test_several_targets_refuse_what_a_multi_target_model_cannot_take(data, tmp_path, caplog):
    args = _train_args(data["graphs"], data["labels"], tmp_path / "m", "--target", LOW,
                       "--target", HIGH)  # fmt: skip
    with caplog.at_level(logging.ERROR):
        assert main([*args, "--simulated-labels", str(data["labels"])]) == 2
        assert main([*args, "--pressure-bar", "16"]) == 2
        assert main([*args[:-1], "no_such_column"]) == 2
    messages = caplog.text
    assert "name the one whose uptakes were simulated with --simulated-target" in messages
    assert "--gas/--temperature-k/--pressure-bar" in messages
    assert "no column 'no_such_column'" in messages
    assert not (tmp_path / "m" / "model.json").exists()


# ---------------------------------------------------------------------------------------------
# predict


def test_predict_target_writes_that_output(data, tmp_path):
    direct = _direct_predictions(data["model"], data["graphs"])
    for t, name in enumerate((LOW, HIGH)):
        out = tmp_path / f"{t}.csv"
        assert _predict(data["model"], data["graphs"], out, "--target", name) == 0
        rows = _read_csv(out)
        assert list(rows[0]) == ["mof_id", "prediction", "uncertainty", "n_atoms"]
        assert len(rows) == len(direct)
        for r in rows:
            assert float(r["prediction"]) == pytest.approx(
                direct[r["mof_id"]][t], rel=1e-5, abs=1e-6
            )
    # the two outputs are different numbers (16 bar uptakes are several times larger)
    low = {r["mof_id"]: float(r["prediction"]) for r in _read_csv(tmp_path / "0.csv")}
    high = {r["mof_id"]: float(r["prediction"]) for r in _read_csv(tmp_path / "1.csv")}
    assert np.mean(list(high.values())) > np.mean(list(low.values()))


def test_predict_needs_a_known_target_of_a_multi_target_model(data, tmp_path, caplog):
    with caplog.at_level(logging.ERROR):
        assert _predict(data["model"], data["graphs"], tmp_path / "a.csv") == 2
        assert f"predicts 2 targets ['{LOW}', '{HIGH}']: choose one with --target" in caplog.text
        caplog.clear()
        assert _predict(data["model"], data["graphs"], tmp_path / "b.csv", "--target", "x") == 2
        assert f"--target x: {data['model']} predicts ['{LOW}', '{HIGH}']" in caplog.text
    assert not list(tmp_path.iterdir())  # nothing written


def test_single_target_model_predicts_as_before_and_checks_target(shared_core, tmp_path, caplog):
    """The shipped 0.15 bar model (format version 1) predicts its test MOFs as it did when it
    was written (test_predictions.csv), with or without its own --target; another refused."""
    from mofsieve.manifest import iter_archive

    expected = {r["mof_id"]: r for r in _read_csv(SHIPPED_LOW / "test_predictions.csv")}
    cifs = tmp_path / "cifs"
    cifs.mkdir()
    for name, raw in iter_archive(shared_core / "cifs.tar.xz"):
        if Path(name).stem in expected and len(raw) < MAX_CIF_BYTES:
            (cifs / Path(name).name).write_bytes(raw)
            if len(list(cifs.iterdir())) == 4:
                break
    graphs = tmp_path / "graphs"
    assert main(["featurize", str(cifs), "--model", str(SHIPPED_LOW), "--out", str(graphs),
                 "--jobs", "1"]) == 0  # fmt: skip
    assert _predict(SHIPPED_LOW, graphs, tmp_path / "plain.csv") == 0
    assert _predict(SHIPPED_LOW, graphs, tmp_path / "named.csv", "--target", LOW) == 0
    plain, named = _read_csv(tmp_path / "plain.csv"), _read_csv(tmp_path / "named.csv")
    assert plain == named and len(plain) == 4
    for r in plain:
        assert float(r["prediction"]) == pytest.approx(
            float(expected[r["mof_id"]]["prediction"]), abs=1e-4
        )
    with caplog.at_level(logging.ERROR):
        assert _predict(SHIPPED_LOW, graphs, tmp_path / "other.csv", "--target", HIGH) == 2
    assert f"--target {HIGH}: {SHIPPED_LOW} predicts ['{LOW}']" in caplog.text


# ---------------------------------------------------------------------------------------------
# calibration


def test_calibration_per_target(data, tmp_path):
    """`mofsieve calibrate` fits each target on its own labelled validation MOFs, records it
    in that target's entry, and predict uses each target's own."""
    from mofsieve.calibrate import HeldOut, fit_calibration

    model = tmp_path / "model"
    shutil.copytree(data["model"], model)
    # a split with enough validation MOFs to calibrate (calibrate reads split.csv)
    ids = sorted(data["values"])
    split = {m: "val" if i % 5 else "test" for i, m in enumerate(ids)}
    with open(model / "split.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["mof_id", "split"], *split.items()])
    assert main(["calibrate", str(model), "--graphs", str(data["graphs"]), "--labels",
                 str(data["labels"]), "--threads", "1", "--method", "scale+floor"]) == 0  # fmt: skip
    spec = read_model(model)
    direct = _direct_predictions(model, data["graphs"])
    spreads = _direct_spreads(model, data["graphs"])
    for t, name in enumerate((LOW, HIGH)):
        cal = spec.select(name).calibration
        val = [m for m in ids if split[m] == "val" and not math.isnan(data["values"][m][t])]
        assert cal is not None and cal.n_validation == len(val)
        held = HeldOut(np.array([data["values"][m][t] for m in val]),
                       np.array([direct[m][t] for m in val]),
                       np.array([spreads[m][t] for m in val]))  # fmt: skip
        again = fit_calibration(held, None, "scale+floor")
        # the same σ (a fitted term near 0 is not worth comparing on its own)
        assert cal.sigma(held.spread, held.prediction) == pytest.approx(
            again.sigma(held.spread, held.prediction), rel=1e-3
        )
        assert (model / f"reliability-{name}.png").is_file()
    # predict writes each target's own σ
    low_cal, high_cal = (spec.select(n).calibration for n in (LOW, HIGH))
    assert (low_cal.scale, low_cal.floor) != (high_cal.scale, high_cal.floor)
    for t, (name, cal) in enumerate(((LOW, low_cal), (HIGH, high_cal))):
        assert _predict(model, data["graphs"], tmp_path / f"{t}.csv", "--target", name) == 0
        for r in _read_csv(tmp_path / f"{t}.csv"):
            m = r["mof_id"]
            assert float(r["uncertainty"]) == pytest.approx(
                cal.sigma(spreads[m][t], direct[m][t]), rel=1e-3, abs=1e-5
            )
    # removing one target's calibration leaves the other's
    set_calibration(model, None, HIGH)
    spec = read_model(model)
    assert spec.select(HIGH).calibration is None and spec.select(LOW).calibration == low_cal


# ---------------------------------------------------------------------------------------------
# the workflow: one multi-target folder for both pressures


@pytest.fixture
def untrained_multi(tmp_path) -> Path:
    """A real (untrained) two-target model folder: 0.15 and 16 bar."""
    from mofsieve.model import build_model, save_model_dir, variant_config
    from mofsieve.store import FeaturizationParams

    torch.manual_seed(0)
    members = [build_model(variant_config("cgcnn", n_targets=2)).eval()]
    targets = [TargetSpec(name, "mol/kg", "CO2", 298.0, p, 0.0)
               for name, p in ((LOW, 0.15), (HIGH, 16.0))]  # fmt: skip
    save_model_dir(tmp_path / "both", members, featurization=FeaturizationParams(),
                   targets=targets, normalisations=[(1.0, 0.5), (6.0, 3.0)],
                   variant="cgcnn")  # fmt: skip
    return tmp_path / "both"


def test_config_maps_each_pressure_to_its_target_of_one_multi_target_folder(
    untrained_multi, tmp_path, write_model_dir
):
    cfg = mconfig.validate_config(
        {"inputs": ["cifs"], "target": {"pressure": "working_capacity"},
         "models": {"0.15": str(untrained_multi), "16": str(untrained_multi)}}, SCHEMA,
    )  # fmt: skip
    assert mconfig.model_target(cfg, "0.15bar") == LOW
    assert mconfig.model_target(cfg, "16bar") == HIGH
    assert mconfig.predict_target_arguments(cfg, "16bar") == ["--target", HIGH]
    # a single-target model: no --target; a folder with no model yet: none either
    write_model_dir(tmp_path / "single", pressure_bar=16.0)
    cfg["models"] = {"0.15": str(tmp_path / "not-yet"), "16": str(tmp_path / "single")}
    assert mconfig.predict_target_arguments(cfg, "16bar") == []
    assert mconfig.model_target(cfg, "0.15bar") is None


def test_config_refuses_a_model_without_a_target_at_its_pressure(
    untrained_multi, tmp_path, write_model_dir
):
    cfg = mconfig.validate_config(
        {"inputs": ["cifs"], "target": {"pressure": 1},
         "models": {"1": str(untrained_multi)}}, SCHEMA,
    )  # fmt: skip
    with pytest.raises(mconfig.ConfigError, match=r"0 targets at 1 bar .* needs exactly one"):
        mconfig.model_target(cfg, "1bar")
    write_model_dir(tmp_path / "high", pressure_bar=16.0)
    cfg["models"] = {"1": str(tmp_path / "high")}
    with pytest.raises(mconfig.ConfigError, match=f"predicts {HIGH} at 16 bar, not 1 bar"):
        mconfig.model_target(cfg, "1bar")


def test_workflow_predicts_both_pressures_from_one_multi_target_folder(untrained_multi, tmp_path):
    """A dry run of a working-capacity screen whose two models are one folder: each pressure's
    predict jobs pass that pressure's target."""
    import yaml
    from test_workflow import shell_commands, snakemake

    run = tmp_path / "run"
    (run / "results" / "big").mkdir(parents=True)
    cfg = {"inputs": ["cifs"], "run": "big", "shard_size": 50,
           "target": {"pressure": "working_capacity"},
           "models": {"0.15": str(untrained_multi), "16": str(untrained_multi)}}  # fmt: skip
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    sha = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
    (run / "results" / "big" / "manifest.csv").write_text(
        "mof_id,source,sha1,n_bytes,shard\n"
        + "".join(f"M{i},cifs/M{i}.cif,{sha},1000,0\n" for i in range(10))
    )
    result = snakemake(run, "-n", "-p", "--cores", "1")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    targets = {}
    for words in shell_commands(result.stdout)["predict"]:
        label = words[words.index("--out-dir") + 1].split("/predictions/")[1].split("/")[0]
        targets[label] = words[words.index("--target") + 1]
        assert words[words.index("--model") + 1] == str(untrained_multi)
    assert targets == {"0.15bar": LOW, "16bar": HIGH}


def test_retrain_of_a_multi_target_ranking_model_names_the_target_it_simulated(
    untrained_multi, tmp_path
):
    """`snakemake retrain` (dry run) of a 16 bar screen whose models are one multi-target
    folder: the fine-tuning is told the run's uptakes are 16 bar ones, and the fine-tuned
    model's predict jobs write that target."""
    import yaml
    from test_workflow import shell_commands, snakemake

    run = tmp_path / "run"
    (run / "results" / "r").mkdir(parents=True)
    cfg = {"inputs": ["cifs"], "run": "r", "shard_size": 50, "target": {"pressure": 16},
           "models": {"0.15": str(untrained_multi), "16": str(untrained_multi)},
           "train": {"labels": "labels.csv", "graphs": ["old"]}}  # fmt: skip
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    sha = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
    (run / "results" / "r" / "manifest.csv").write_text(
        "mof_id,source,sha1,n_bytes,shard\n"
        + "".join(f"M{i},cifs/M{i}.cif,{sha},1000,0\n" for i in range(10))
    )
    (run / "results" / "r" / "validation.csv").write_text("mof_id,predicted,simulated\nM1,5,6\n")
    (run / "labels.csv").write_text(f"mof_id,{LOW},{HIGH}\nOLD,1.0,5.0\n")
    (run / "old").mkdir()
    result = snakemake(run, "retrain", "-n", "-p", "--cores", "1")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    commands = shell_commands(result.stdout)
    (train,) = commands["retrain_model"]
    assert train[train.index("--simulated-target") + 1] == HIGH
    for predict in commands["predict_retrained"]:
        assert predict[predict.index("--target") + 1] == HIGH
