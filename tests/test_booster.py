"""`mofsieve boost` (mofsieve.booster): gradient-boosted trees blended with a graph network, on
real CoRE MOF 2019 structures (the `core-mof` package). The labels are made up from each cell's
atom density and oxygen fraction (the tests check the machinery, not chemistry): the oxygen
fraction is a feature of the trees, which a graph network trained for seconds barely learns."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mofsieve.booster import ELEMENTS, blend, crystal_features, feature_names
from mofsieve.cli import main
from mofsieve.metrics import regression_metrics
from mofsieve.modeldir import read_model
from mofsieve.store import FeaturizationParams, ShardReader

TARGET = "co2_uptake_mol_per_kg_298K_0.15bar"
N_MOFS = 80  # 64 train: trees need 50 (booster.MIN_TRAIN)
# the shard holds three descriptors, the model reads two of them in another order
SHARD_GLOBALS = ("volume_per_atom", "a", "density")
MODEL_GLOBALS = ("density", "volume_per_atom")


def _label(graph) -> float:
    density = graph.n_atoms / abs(np.linalg.det(graph.lattice)) * 20
    return float(density + 6.0 * np.mean(graph.atomic_number == 8))


def _predictions(path: Path) -> dict[str, tuple[float, float]]:
    with open(path, newline="") as fh:
        return {r["mof_id"]: (float(r["prediction"]), float(r["uncertainty"])) for r in csv.DictReader(fh)}  # fmt: skip


def _train_args(graphs: Path, labels: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--graphs", str(graphs), "--labels", str(labels), "--out", str(out),
            "--batch-atoms", "600", "--threads", "1", *extra]  # fmt: skip


@pytest.fixture(scope="module")
def boosted(core_mof_graphs, labelled_shard, tmp_path_factory) -> dict:
    """A small graph network trained on N_MOFS real MOFs, and the same with trees blended."""
    root = tmp_path_factory.mktemp("boost")
    params = FeaturizationParams(global_feature_names=SHARD_GLOBALS)
    graphs = core_mof_graphs(N_MOFS, lambda g: g.n_atoms <= 120, params)
    truth = {g.mof_id: _label(g) for g in graphs}
    graph_dir, labels = labelled_shard(root, graphs, params, TARGET, truth)
    source = root / "source"
    assert main(_train_args(graph_dir, labels, source, "--target", TARGET, "--variant",
                            "atten3", "--ensemble", "2", "--epochs", "3", "--global-features",
                            *MODEL_GLOBALS)) == 0  # fmt: skip
    model = root / "boosted"
    assert main(["boost", "--model", str(source), "--labels", str(labels), "--graphs",
                 str(graph_dir), "--out", str(model), "--seeds", "2"]) == 0  # fmt: skip
    return {"root": root, "graphs": graph_dir, "labels": labels, "source": source,
            "model": model, "truth": truth}  # fmt: skip


def test_crystal_features_of_a_real_structure(core_mof_graphs):
    graph = core_mof_graphs(1, lambda g: g.n_atoms <= 200)[0]
    globals_ = np.array([1.5, 2.5])
    row = crystal_features(graph.atomic_number, graph.charge, graph.edge_dist, globals_, ELEMENTS)
    names = feature_names(("x", "y"), ELEMENTS)
    assert row.shape == (len(names),)
    assert row[:2].tolist() == [1.5, 2.5]
    values = dict(zip(names, row, strict=True))
    for z in (1, 6, 8):
        assert values[f"fraction_Z{z}"] == pytest.approx(np.mean(graph.atomic_number == z))
    assert values["n_atoms"] == graph.n_atoms
    assert values["neighbour_distance_mean"] == pytest.approx(graph.edge_dist.mean())
    # without charges: the charge statistics are missing values, the rest stays
    uncharged = np.full(graph.n_atoms, np.nan)
    row = crystal_features(graph.atomic_number, uncharged, graph.edge_dist, globals_, ELEMENTS)
    stats = dict(zip(names, row, strict=True))
    assert np.isnan(stats["charge_mean_abs"]) and np.isnan(stats["charge_fraction_above_half"])
    assert stats["fraction_Z8"] == values["fraction_Z8"]


def test_blend_is_the_weighted_mean_and_the_spread_of_the_weighted_members():
    graph_members = np.array([[1.0, 4.0], [3.0, 4.0]])  # two members, two crystals
    trees = np.array([5.0, 4.0])
    mean, spread = blend(graph_members.mean(0), graph_members.std(0), trees, 0.5)
    everyone = np.array([1.0, 3.0, 5.0, 5.0])  # the trees weigh as much as both members
    assert mean[0] == pytest.approx(everyone.mean())
    assert spread[0] == pytest.approx(everyone.std())
    assert (mean[1], spread[1]) == (4.0, 0.0)
    clipped, _ = blend(np.array([0.1]), np.array([0.0]), np.array([-1.0]), 0.5, clip_min=0.0)
    assert clipped[0] == 0.0


def test_boost_blends_trees_the_validation_split_chose(boosted):
    spec, source = read_model(boosted["model"]), read_model(boosted["source"])
    booster = spec.booster
    assert booster is not None and source.booster is None
    assert 0.0 < booster.weight <= 1.0  # the trees know the oxygen fraction
    assert len(booster.files) == 2 and all((boosted["model"] / f).is_file() for f in booster.files)
    metrics = spec.metadata["metrics"]
    assert metrics["val"]["mae"] < metrics["graph_network"]["val"]["mae"]
    # the graph network itself is the source's, unchanged
    for name in source.weights:
        assert (boosted["model"] / name).read_bytes() == (boosted["source"] / name).read_bytes()
    assert "## Boosted trees (blended)" in (boosted["model"] / "MODEL_CARD.md").read_text()


def test_predict_with_trees_gives_what_boost_measured(boosted, tmp_path):
    out = tmp_path / "predictions.csv"
    assert main(["predict", "--model", str(boosted["model"]), "--graphs",
                 str(boosted["graphs"]), "--out", str(out), "--threads", "1"]) == 0  # fmt: skip
    predicted = _predictions(out)
    recorded = _predictions(boosted["model"] / "test_predictions.csv")
    assert recorded
    for mof_id, (prediction, uncertainty) in recorded.items():
        assert predicted[mof_id][0] == pytest.approx(prediction, rel=1e-5, abs=1e-5)
        assert predicted[mof_id][1] == pytest.approx(uncertainty, rel=1e-5, abs=1e-5)
    ids = sorted(recorded)
    truth = np.array([boosted["truth"][m] for m in ids])
    mae = regression_metrics(truth, np.array([predicted[m][0] for m in ids]))["mae"]
    assert mae == pytest.approx(read_model(boosted["model"]).metadata["metrics"]["test"]["mae"])
    # and without the trees, the source's own predictions differ
    plain = tmp_path / "plain.csv"
    assert main(["predict", "--model", str(boosted["source"]), "--graphs",
                 str(boosted["graphs"]), "--out", str(plain), "--threads", "1"]) == 0  # fmt: skip
    assert any(abs(_predictions(plain)[m][0] - predicted[m][0]) > 1e-3 for m in ids)


def test_a_damaged_tree_file_is_refused_before_lightgbm_reads_it(boosted, tmp_path, caplog):
    model = tmp_path / "model"
    shutil.copytree(boosted["model"], model)
    tree = model / read_model(model).booster.files[0]
    tree.write_bytes(tree.read_bytes()[:-100])
    assert main(["predict", "--model", str(model), "--graphs", str(boosted["graphs"]),
                 "--out", str(tmp_path / "p.csv"), "--threads", "1"]) == 2  # fmt: skip
    assert "sha256 differs" in caplog.text
    assert not (tmp_path / "p.csv").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: (m / "split.csv").unlink(), "has no split.csv"),
        (lambda m: None, "--weight must be within [0, 1]"),
    ],
)
def test_boost_refuses_what_it_cannot_do(boosted, tmp_path, caplog, change, message):
    model = tmp_path / "source"
    shutil.copytree(boosted["source"], model)
    change(model)
    extra = ["--weight", "1.5"] if "weight" in message else []
    out = tmp_path / "out"
    assert main(["boost", "--model", str(model), "--labels", str(boosted["labels"]), "--graphs",
                 str(boosted["graphs"]), "--out", str(out), *extra]) == 2  # fmt: skip
    assert message in caplog.text
    assert not (out / "model.json").exists()


def test_a_booster_entry_in_a_multi_target_model_is_refused(boosted, tmp_path):
    from mofsieve.modeldir import ModelDirError

    model = tmp_path / "model"
    shutil.copytree(boosted["model"], model)
    meta = json.loads((model / "model.json").read_text())
    target = {**meta.pop("target"), "normalisation": meta.pop("normalisation")}
    meta.update(format_version=2, targets=[target, {**target, "name": "other"}])
    meta["init"]["n_targets"] = 2
    (model / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelDirError, match="blended with one target"):
        read_model(model)


def test_fine_tuning_a_model_with_trees_grows_them_again_on_the_new_labels(boosted, tmp_path):
    # new labels for the test MOFs would leak: take training MOFs and move their labels
    with open(boosted["model"] / "split.csv", newline="") as fh:
        train = [r["mof_id"] for r in csv.DictReader(fh) if r["split"] == "train"][:6]
    labels = tmp_path / "labels.csv"
    moved = {m: boosted["truth"][m] + 2.0 for m in train}
    with open(labels, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["mof_id", TARGET])
        w.writerows([m, f"{moved.get(m, y):.5f}"] for m, y in boosted["truth"].items())
    tuned = tmp_path / "tuned"
    assert main(_train_args(boosted["graphs"], labels, tuned, "--init-from",
                            str(boosted["model"]), "--epochs", "1")) == 0  # fmt: skip
    spec, source = read_model(tuned), read_model(boosted["model"])
    assert spec.booster is not None
    assert spec.booster.weight == source.booster.weight
    assert spec.booster.rounds == source.booster.rounds
    assert spec.booster.details["grown_again_from"] == str(boosted["model"])
    assert spec.booster.sha256 != source.booster.sha256  # new trees, new labels
    assert "graph_network" in spec.metadata["metrics"]
    before = tmp_path / "before.csv"
    after = tmp_path / "after.csv"
    for model, out in ((boosted["model"], before), (tuned, after)):
        assert main(["predict", "--model", str(model), "--graphs", str(boosted["graphs"]),
                     "--out", str(out), "--threads", "1"]) == 0  # fmt: skip
    old, new = _predictions(before), _predictions(after)
    assert np.mean([new[m][0] - old[m][0] for m in train]) > 0.2  # toward labels 2 higher
    # the recorded test predictions are what predict now gives
    for mof_id, (prediction, _) in _predictions(tuned / "test_predictions.csv").items():
        assert new[mof_id][0] == pytest.approx(prediction, rel=1e-5, abs=1e-5)


def test_the_shipped_features_read_the_model_globals_in_its_order(boosted):
    from mofsieve.booster import features_of_ids

    spec = read_model(boosted["model"])
    reader = ShardReader(next(boosted["graphs"].glob("shard-*.h5")))
    graph = reader.graph(0)
    row = features_of_ids(spec, [str(boosted["graphs"])], {graph.mof_id})[graph.mof_id]
    shard_globals = dict(zip(SHARD_GLOBALS, graph.global_features, strict=True))
    assert row[: len(MODEL_GLOBALS)].tolist() == pytest.approx(
        [shard_globals[n] for n in MODEL_GLOBALS]
    )


def test_a_boost_killed_before_its_end_leaves_no_model_json(boosted, tmp_path, monkeypatch):
    import mofsieve.booster as booster_module

    class Killed(BaseException):
        """As a SIGINT between the copied files and the trees (not an error `run` reports)."""

    def killed(*_args, **_kwargs):
        raise Killed("killed")

    monkeypatch.setattr(booster_module, "write_trees", killed)
    out = tmp_path / "out"
    with pytest.raises(Killed, match="killed"):
        main(["boost", "--model", str(boosted["source"]), "--labels", str(boosted["labels"]),
              "--graphs", str(boosted["graphs"]), "--out", str(out), "--seeds", "1"])  # fmt: skip
    assert (out / "member-0.pt").is_file()  # it was killed after copying the weights
    assert not (out / "model.json").exists()  # nothing there reads as a model


SHIPPED_16 = Path(__file__).resolve().parents[1] / "models" / "co2_298K_16bar"


def test_the_shipped_trees_read_as_many_features_as_the_model_makes():
    from mofsieve.booster import Trees

    spec = read_model(SHIPPED_16)
    trees = Trees.load(spec)
    assert trees is not None
    n = len(feature_names(spec.featurization.global_feature_names, spec.booster.elements))
    assert [b.num_feature() for b in trees.boosters] == [n] * len(spec.booster.files)


def test_the_shipped_blend_reproduces_its_test_predictions_from_the_cifs(shared_core, tmp_path):
    """The shipped 16 bar model predicts 12 of its test MOFs from the charged CoRE MOF 2019
    CIFs (featurized here, as `mofsieve predict` does) as its test_predictions.csv says."""
    from mofsieve.manifest import iter_archive

    recorded = _predictions(SHIPPED_16 / "test_predictions.csv")
    wanted = sorted(recorded)[:12]
    cifs = tmp_path / "cifs"
    cifs.mkdir()
    names = {f"core2019_charged/{m}.cif" for m in wanted}  # the archive's folder
    for name, data in iter_archive(shared_core / "cifs.tar.xz", names):
        (cifs / Path(name).name).write_bytes(data)
    assert len(list(cifs.iterdir())) == len(wanted)
    out = tmp_path / "predictions.csv"
    assert main(["predict", "--model", str(SHIPPED_16), str(cifs), "--out", str(out),
                 "--threads", "1", "--jobs", "1"]) == 0  # fmt: skip
    predicted = _predictions(out)
    for mof_id in wanted:
        assert predicted[mof_id][0] == pytest.approx(recorded[mof_id][0], rel=1e-4, abs=1e-4)
        assert predicted[mof_id][1] == pytest.approx(recorded[mof_id][1], rel=1e-4, abs=1e-4)


def test_trees_grown_on_another_feature_layout_are_refused(boosted, tmp_path, caplog):
    model = tmp_path / "model"
    shutil.copytree(boosted["model"], model)
    meta = json.loads((model / "model.json").read_text())
    meta["booster"]["feature_names"] = meta["booster"]["feature_names"][:-1]  # one fewer
    (model / "model.json").write_text(json.dumps(meta))
    assert main(["predict", "--model", str(model), "--graphs", str(boosted["graphs"]),
                 "--out", str(tmp_path / "p.csv"), "--threads", "1"]) == 2  # fmt: skip
    assert "no longer makes in that order" in caplog.text
