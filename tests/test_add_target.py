"""`mofsieve train --init-from SINGLE --target ITS_TARGET --target NEW …`: a single-target
model becomes a multi-target one on its own graph trunk, and `--loss l1`. Real CoRE MOF 2019
structures (the `core-mof` package) with made-up labels: the source's target follows the
void fraction, the new one the density (which the source also reads), some MOFs have no
label of the new target."""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mofsieve.cli import main
from mofsieve.modeldir import read_model
from mofsieve.store import FeaturizationParams, write_shard

LOW = "co2_uptake_mol_per_kg_298K_0.15bar"
HIGH = "co2_uptake_mol_per_kg_298K_16bar"
GLOBALS = ("density", "void_fraction_geometric")
N_MOFS = 40
EVERY_NTH_WITHOUT_HIGH = 5  # these MOFs have no 16 bar label (as in labels.csv)


def _low(graph) -> float:
    return float(4.0 * graph.global_features[GLOBALS.index("void_fraction_geometric")])


def _high(graph) -> float:
    return float(12.0 - 6.0 * graph.global_features[GLOBALS.index("density")])


@pytest.fixture(scope="module")
def source(core_mof_graphs, tmp_path_factory) -> dict:
    """A small de-atten3 model of the 0.15 bar labels alone; labels.csv also has the 16 bar
    column (empty for every EVERY_NTH_WITHOUT_HIGH-th MOF)."""
    root = tmp_path_factory.mktemp("addtarget")
    params = FeaturizationParams(global_feature_names=GLOBALS)
    graphs = core_mof_graphs(N_MOFS, lambda g: g.n_atoms <= 100, params)
    (root / "graphs").mkdir()
    write_shard(root / "graphs" / "shard-00000.h5", graphs, params)
    truth = {
        g.mof_id: (_low(g), math.nan if i % EVERY_NTH_WITHOUT_HIGH == 0 else _high(g))
        for i, g in enumerate(graphs)
    }
    labels = root / "labels.csv"
    with open(labels, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["mof_id", LOW, HIGH])
        w.writerows([m, f"{lo:.4f}", "" if math.isnan(hi) else f"{hi:.4f}"]
                    for m, (lo, hi) in truth.items())  # fmt: skip
    model = root / "source"
    assert main(_train_args(root / "graphs", labels, model, "--target", LOW, "--variant",
                            "de-atten3", "--ensemble", "2", "--epochs", "3")) == 0  # fmt: skip
    return {"graphs": root / "graphs", "labels": labels, "model": model, "truth": truth}


def _train_args(graphs: Path, labels: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--graphs", str(graphs), "--labels", str(labels), "--out", str(out),
            "--batch-atoms", "600", "--threads", "1", *extra]  # fmt: skip


def _predict(model: Path, graphs: Path, out: Path, target: str) -> dict[str, float]:
    assert main(["predict", "--model", str(model), "--graphs", str(graphs), "--out", str(out),
                 "--threads", "1", "--target", target]) == 0  # fmt: skip
    with open(out, newline="") as fh:
        return {r["mof_id"]: float(r["prediction"]) for r in csv.DictReader(fh)}


def _split(model: Path) -> dict[str, str]:
    with open(model / "split.csv", newline="") as fh:
        return {r["mof_id"]: r["split"] for r in csv.DictReader(fh)}


def test_a_target_added_to_a_trained_model_learns_on_its_frozen_trunk(source, tmp_path):
    both = tmp_path / "both"
    args = _train_args(source["graphs"], source["labels"], both, "--init-from",
                       str(source["model"]), "--target", LOW, "--target", HIGH,
                       "--train-only", "head", "--epochs", "150", "--lr", "3e-3",
                       "--loss", "l1")  # fmt: skip
    assert main(args) == 0

    # the graph layers are the source's, bit for bit; the head is new and has two outputs
    for k in range(2):
        before = torch.load(source["model"] / f"member-{k}.pt", weights_only=True)
        after = torch.load(both / f"member-{k}.pt", weights_only=True)
        trunk = [n for n in before if not n.startswith("mlp_")]
        assert trunk and all(torch.equal(before[n], after[n]) for n in trunk)
        assert after["mlp_out.weight"].shape[0] == 2

    spec = read_model(both)
    assert spec.target_names == (LOW, HIGH)
    assert _split(both) == _split(source["model"])  # the source's split, MOF for MOF
    # 0.15 bar keeps the source's standardisation; 16 bar gets its training labels'
    assert spec.normalisations[0] == read_model(source["model"]).normalisations[0]
    split = _split(both)
    train_high = [v[1] for m, v in source["truth"].items()
                  if split[m] == "train" and not math.isnan(v[1])]  # fmt: skip
    assert spec.normalisations[1] == pytest.approx(
        (np.mean(train_high), np.std(train_high)), rel=1e-4
    )

    # the new output fits the 16 bar labels of the training MOFs far better than their mean
    high = _predict(both, source["graphs"], tmp_path / "high.csv", HIGH)
    train = [m for m, v in source["truth"].items() if split[m] == "train" and not math.isnan(v[1])]
    mae = np.mean([abs(high[m] - source["truth"][m][1]) for m in train])
    mae_mean = np.mean([abs(np.mean(train_high) - source["truth"][m][1]) for m in train])
    assert mae < 0.6 * mae_mean, (mae, mae_mean)

    training = spec.metadata["training"]
    assert training["train_only"] == "head" and "absolute" in training["loss"]
    assert training["init_from"]["added_targets"] == [HIGH]
    assert training["init_from"]["target"] == LOW
    assert all("train_l1_std" in e for h in _history(both) for e in h["epochs"])
    card = (both / "MODEL_CARD.md").read_text()
    assert f"- New targets: `{HIGH}` (the source predicts `{LOW}`)" in card
    assert "MAE on each standardised target over the labelled entries only" in card

    # the multi-target model fine-tuned again, every layer: it keeps both targets
    again = tmp_path / "again"
    assert main(_train_args(source["graphs"], source["labels"], again, "--init-from",
                            str(both), "--epochs", "1")) == 0  # fmt: skip
    spec = read_model(again)
    assert (
        spec.target_names == (LOW, HIGH) and spec.normalisations == read_model(both).normalisations
    )
    record = spec.metadata["training"]["init_from"]
    assert record["targets"] == [LOW, HIGH] and "added_targets" not in record
    assert record["source_init_from"]["added_targets"] == [HIGH]


def _history(model: Path) -> list[dict]:
    return json.loads((model / "history.json").read_text())


def test_targets_named_in_another_order_keep_their_outputs(source, tmp_path):
    """`--target HIGH --target LOW` of a LOW→HIGH model: the outputs follow their names, so
    the fine-tuned model starts from exactly the source's predictions (the head trained at a
    learning rate of 0 does not move)."""
    both = tmp_path / "both"
    assert main(_train_args(source["graphs"], source["labels"], both, "--init-from",
                            str(source["model"]), "--target", LOW, "--target", HIGH,
                            "--train-only", "head", "--epochs", "5")) == 0  # fmt: skip
    swapped = tmp_path / "swapped"
    assert main(_train_args(source["graphs"], source["labels"], swapped, "--init-from",
                            str(both), "--target", HIGH, "--target", LOW, "--train-only",
                            "head", "--epochs", "1", "--lr", "0")) == 0  # fmt: skip
    assert read_model(swapped).target_names == (HIGH, LOW)
    for target in (LOW, HIGH):
        a = _predict(both, source["graphs"], tmp_path / f"a-{target}.csv", target)
        b = _predict(swapped, source["graphs"], tmp_path / f"b-{target}.csv", target)
        assert all(b[m] == pytest.approx(a[m], rel=1e-5, abs=1e-6) for m in a)


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        ([HIGH], "fine-tune on labels of the same target, or name them all with --target"),
        ([HIGH, "no_such_column"], f"dropping ['{LOW}'] is not fine-tuning"),
        ([LOW, "no_such_column"], "no column 'no_such_column'"),
    ],
)
def test_adding_targets_refuses_what_it_cannot_do(source, tmp_path, caplog, targets, message):
    out = tmp_path / "refused"
    extra = [a for t in targets for a in ("--target", t)]
    with caplog.at_level(logging.ERROR):
        assert main(_train_args(source["graphs"], source["labels"], out, "--init-from",
                                str(source["model"]), *extra)) == 2  # fmt: skip
    assert message in caplog.text
    assert not (out / "model.json").exists()


def test_l1_loss_is_the_mean_absolute_error_over_labelled_entries_only():
    from mofsieve.fit import masked_loss

    prediction = torch.tensor([[0.0, 1.0], [2.0, -1.0], [0.5, 0.0]])
    y_std = torch.tensor([[1.0, math.nan], [0.0, 1.0], [math.nan, math.nan]])
    assert masked_loss(prediction, y_std, "l1").item() == pytest.approx((1.0 + 2.0 + 2.0) / 3)
    assert masked_loss(prediction, y_std, "mse").item() == pytest.approx((1.0 + 4.0 + 4.0) / 3)
    assert masked_loss(prediction[:, 0], torch.tensor([1.0, 0.0, 0.0]), "l1").item() == (
        pytest.approx((1.0 + 2.0 + 0.5) / 3)
    )
    with pytest.raises(ValueError, match=r"loss 'huber': choose from \['mse', 'l1'\]"):
        masked_loss(prediction, y_std, "huber")


def test_simulated_uptakes_of_one_target_fine_tune_a_multi_target_model(source, tmp_path, caplog):
    """`snakemake retrain` of a multi-target ranking model: the run's GCMC uptakes replace the
    16 bar labels of their MOFs only; without --simulated-target it is refused."""
    both = tmp_path / "both"
    assert main(_train_args(source["graphs"], source["labels"], both, "--init-from",
                            str(source["model"]), "--target", LOW, "--target", HIGH,
                            "--train-only", "head", "--epochs", "5")) == 0  # fmt: skip
    ids = sorted(source["truth"])
    simulated = {ids[0]: 9.5, ids[1]: 0.25}  # ids[0] has no 16 bar label (every 5th)
    assert math.isnan(source["truth"][ids[0]][1]) and not math.isnan(source["truth"][ids[1]][1])
    validation = tmp_path / "validation.csv"
    validation.write_text(
        "mof_id,predicted,simulated\n" + "".join(f"{m},1.0,{v}\n" for m, v in simulated.items())
    )
    args = _train_args(source["graphs"], source["labels"], tmp_path / "retrained", "--init-from",
                       str(both), "--simulated-labels", str(validation), "--epochs", "1")  # fmt: skip
    with caplog.at_level(logging.ERROR):
        assert main(args) == 2
    assert "name the one whose uptakes were simulated with --simulated-target" in caplog.text
    without_labels = [a for a in args if a not in ("--simulated-labels", str(validation))]
    with caplog.at_level(logging.ERROR):
        assert main([*without_labels, "--simulated-target", HIGH]) == 2
    assert "--simulated-target names the target of --simulated-labels: give both" in caplog.text
    assert main([*args, "--simulated-target", HIGH]) == 0

    with open(tmp_path / "retrained" / "labels.csv", newline="") as fh:
        merged = {r["mof_id"]: r for r in csv.DictReader(fh)}
    assert set(merged) == set(ids)
    for m in ids:
        low, high = source["truth"][m]
        assert float(merged[m][LOW]) == pytest.approx(low, abs=1e-4)  # 0.15 bar: as it was
        if m in simulated:
            assert (
                float(merged[m][HIGH]) == simulated[m] and merged[m]["label_source"] == "simulated"
            )
        elif math.isnan(high):
            assert merged[m][HIGH] == "" and merged[m]["label_source"] == "original"
        else:
            assert float(merged[m][HIGH]) == pytest.approx(high, abs=1e-4)
    record = read_model(tmp_path / "retrained").metadata["training"]["label_sources"]["simulated"]
    assert record["target"] == HIGH and record["n_replacing"] == 1 and record["n_used"] == 2
