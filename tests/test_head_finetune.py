"""`mofsieve train --init-from MODEL --global-features … --train-only head`: a trained model's
MLP head given new descriptors and trained again on its frozen graph layers, on real CoRE MOF
2019 structures (the `core-mof` package). The labels are made up from the descriptor that the
fine-tuning adds (the geometric void fraction), which the source model never read: only a head
that uses the new input can fit them."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from mofsieve.cli import main
from mofsieve.modeldir import read_model
from mofsieve.store import FeaturizationParams, write_shard

TARGET = "co2_uptake_mol_per_kg_298K_0.15bar"
SOURCE_GLOBALS = ("density",)
ADDED = ("void_fraction_geometric",)
N_MOFS = 40


def _label(graph, names: tuple[str, ...]) -> float:
    return float(4.0 * graph.global_features[names.index("void_fraction_geometric")])


@pytest.fixture(scope="module")
def source(core_mof_graphs, labelled_shard, tmp_path_factory) -> dict:
    """A small de-atten3 model reading the density only, trained on real MOFs whose made-up
    labels follow their void fraction; their shard has both descriptors."""
    root = tmp_path_factory.mktemp("headfit")
    names = SOURCE_GLOBALS + ADDED
    params = FeaturizationParams(global_feature_names=names)
    graphs = core_mof_graphs(N_MOFS, lambda g: g.n_atoms <= 100, params)
    truth = {g.mof_id: _label(g, names) for g in graphs}
    _, labels = labelled_shard(root, graphs, params, TARGET, truth)
    model = root / "source"
    args = _train_args(root / "graphs", labels, model, "--target", TARGET, "--variant",
                       "de-atten3", "--global-features", *SOURCE_GLOBALS, "--ensemble", "2",
                       "--epochs", "4")  # fmt: skip
    assert main(args) == 0
    return {"root": root, "graphs": root / "graphs", "labels": labels, "model": model,
            "truth": {g.mof_id: _label(g, names) for g in graphs}}  # fmt: skip


def _train_args(graphs: Path, labels: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--graphs", str(graphs), "--labels", str(labels), "--out", str(out),
            "--batch-atoms", "600", "--threads", "1", *extra]  # fmt: skip


def _predict(model: Path, graphs: Path, out: Path) -> dict[str, float]:
    assert main(["predict", "--model", str(model), "--graphs", str(graphs), "--out", str(out),
                 "--threads", "1"]) == 0  # fmt: skip
    with open(out, newline="") as fh:
        return {r["mof_id"]: float(r["prediction"]) for r in csv.DictReader(fh)}


def _train_ids(model: Path) -> list[str]:
    with open(model / "split.csv", newline="") as fh:
        return [r["mof_id"] for r in csv.DictReader(fh) if r["split"] == "train"]


def test_head_with_an_added_descriptor_learns_it_on_frozen_graph_layers(source, tmp_path):
    tuned = tmp_path / "tuned"
    args = _train_args(source["graphs"], source["labels"], tuned, "--init-from",
                       str(source["model"]), "--global-features", *SOURCE_GLOBALS, *ADDED,
                       "--train-only", "head", "--epochs", "150", "--lr", "3e-3",
                       "--descriptor-clip", "5")  # fmt: skip
    assert main(args) == 0

    # the graph layers are the source's, bit for bit; the head reads one more input
    for k in range(2):
        before = torch.load(source["model"] / f"member-{k}.pt", weights_only=True)
        after = torch.load(tuned / f"member-{k}.pt", weights_only=True)
        trunk = [n for n in before if not n.startswith(("mlp_", "global_"))]
        assert trunk and all(torch.equal(before[n], after[n]) for n in trunk)
        assert after["mlp_in.weight"].shape[1] == before["mlp_in.weight"].shape[1] + 1
        assert after["global_std"].shape == (2,) and after["global_std"][1] > 0
        assert not torch.equal(after["mlp_out.weight"], before["mlp_out.weight"])

    # on the training MOFs, the fine-tuned head fits the void-fraction labels far better
    before = _predict(source["model"], source["graphs"], tmp_path / "before.csv")
    after = _predict(tuned, source["graphs"], tmp_path / "after.csv")
    train = _train_ids(tuned)
    mae_before = np.mean([abs(before[m] - source["truth"][m]) for m in train])
    mae_after = np.mean([abs(after[m] - source["truth"][m]) for m in train])
    assert mae_after < 0.6 * mae_before, (mae_before, mae_after)

    spec = read_model(tuned)
    assert spec.featurization.global_feature_names == SOURCE_GLOBALS + ADDED
    assert spec.init["descriptor_clip"] == 5.0
    training = spec.metadata["training"]
    assert training["train_only"] == "head"
    assert training["init_from"]["added_global_features"] == list(ADDED)
    assert training["init_from"]["source_training"]["epochs_run"] == [4, 4]
    card = (tuned / "MODEL_CARD.md").read_text()
    assert "only the head was trained" in card and "`void_fraction_geometric`" in card
    seconds = float(re.search(r"Measured: (\S+) s per epoch", card)[1])  # a head epoch: < 1 s
    assert seconds > 0 and seconds == pytest.approx(training["seconds_per_epoch_mean"], rel=0.05)

    # fine-tuned again, every layer: the card follows the chain back to the first model
    again = tmp_path / "again"
    args = _train_args(source["graphs"], source["labels"], again, "--init-from", str(tuned),
                       "--epochs", "1")  # fmt: skip
    assert main(args) == 0
    record = read_model(again).metadata["training"]["init_from"]
    assert record["source_init_from"]["path"] == str(source["model"])
    assert record["source_init_from"]["added_global_features"] == list(ADDED)
    card = (again / "MODEL_CARD.md").read_text()
    assert f"`{tuned}` was itself fine-tuned from `{source['model']}`" in card
    assert "its head given 1 new descriptors; that model's training: epochs run [4, 4]" in card


def test_a_model_with_added_descriptors_refuses_shards_without_them(source, tmp_path, caplog):
    tuned = tmp_path / "tuned"
    args = _train_args(source["graphs"], source["labels"], tuned, "--init-from",
                       str(source["model"]), "--global-features", *SOURCE_GLOBALS, *ADDED,
                       "--train-only", "head", "--epochs", "2")  # fmt: skip
    assert main(args) == 0
    lean = tmp_path / "lean"
    lean.mkdir()
    from mofsieve.store import ShardReader

    reader = ShardReader(next(source["graphs"].glob("shard-*.h5")))
    graphs = [reader.graph(i) for i in range(3)]
    for g in graphs:
        g.global_features = g.global_features[:1]
    write_shard(
        lean / "shard-00000.h5", graphs, FeaturizationParams(global_feature_names=SOURCE_GLOBALS)
    )
    code = main(["predict", "--model", str(tuned), "--graphs", str(lean), "--out",
                 str(tmp_path / "p.csv"), "--threads", "1"])  # fmt: skip
    assert code != 0
    assert "lack global features ['void_fraction_geometric']" in caplog.text


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--global-features", *ADDED, *SOURCE_GLOBALS], "must start with the source model's"),
        (["--train-only", "head", "--members", "0"], "trains every member at once"),
        (["--descriptor-clip", "5"], "--descriptor-clip changes what the source's head reads"),
    ],
)
def test_head_finetuning_refuses_what_it_cannot_do(source, tmp_path, caplog, extra, message):
    out = tmp_path / "tuned"
    args = _train_args(source["graphs"], source["labels"], out, "--init-from",
                       str(source["model"]), *extra)  # fmt: skip
    assert main(args) == 2
    assert message in caplog.text
    assert not (out / "model.json").exists()


def test_train_only_head_without_a_source_is_refused(source, tmp_path, caplog):
    out = tmp_path / "m"
    args = _train_args(source["graphs"], source["labels"], out, "--target", TARGET,
                       "--train-only", "head")  # fmt: skip
    assert main(args) == 2
    assert "--train-only head needs --init-from" in caplog.text


def test_charge_free_copy_hides_charges_and_the_descriptors_made_from_them(source):
    from mofsieve.batching import graph_to_data
    from mofsieve.evaluation import without_charges
    from mofsieve.store import ShardReader

    graph = ShardReader(next(source["graphs"].glob("shard-*.h5"))).graph(0)
    graph.charge = np.linspace(-0.5, 0.5, graph.n_atoms)
    data = graph_to_data(graph, [0, 1])
    (hidden,) = without_charges([data], [1])
    assert torch.isnan(hidden.charge).all() and not torch.isnan(data.charge).any()
    assert torch.isnan(hidden.global_features[0, 1])
    assert hidden.global_features[0, 0] == data.global_features[0, 0]


def test_descriptor_clip_bounds_what_the_head_reads(source):
    from torch_geometric.data import Batch

    from mofsieve.batching import graph_to_data
    from mofsieve.model import load_model_dir
    from mofsieve.store import ShardReader

    members, _ = load_model_dir(source["model"])
    model = members[0]
    graph = ShardReader(next(source["graphs"].glob("shard-*.h5"))).graph(0)
    graph.global_features = graph.global_features.copy()
    graph.global_features[0] = 1e4  # a density no crystal has: far out in standard deviations
    batch = Batch.from_data_list([graph_to_data(graph, [0])])
    pooled = torch.zeros(1, model.config.atom_dim)
    assert model.head_inputs(pooled, batch)[0, -1] > 100  # the source model clips nothing
    model.config = type(model.config)(**{**model.config.__dict__, "descriptor_clip": 5.0})
    assert model.head_inputs(pooled, batch)[0, -1] == 5.0


def test_training_step_that_hides_charges_hides_the_charged_descriptors_too(source):
    from torch_geometric.data import Batch

    from mofsieve.batching import graph_to_data
    from mofsieve.model import AECGCNN, VARIANTS
    from mofsieve.store import ShardReader

    names = ("density", "co2_lj_coulomb_min_energy_kj_mol")
    config = VARIANTS["atten3"].__class__(
        **{**VARIANTS["atten3"].__dict__, "global_features": names, "charge_dropout": 1.0}
    )
    model = AECGCNN(config)
    model.global_mean.copy_(torch.tensor([1.0, -30.0]))
    model.global_std.copy_(torch.tensor([0.5, 10.0]))
    reader = ShardReader(next(source["graphs"].glob("shard-*.h5")))
    datas = []
    for i in range(2):
        graph = reader.graph(i)
        graph.charge = np.zeros(graph.n_atoms)
        graph.global_features = np.array([1.5, -50.0])
        datas.append(graph_to_data(graph, [0, 1]))
    batch = Batch.from_data_list(datas)
    pooled = torch.zeros(2, config.atom_dim)

    model.eval()  # predicting: nothing hidden, the charged descriptor is read
    model.add_charge(model.embed(batch.z), batch)
    assert torch.allclose(model.head_inputs(pooled, batch)[:, -1], torch.tensor([-2.0, -2.0]))
    model.train()  # training with every crystal's charges hidden (charge_dropout 1)
    model.add_charge(model.embed(batch.z), batch)
    inputs = model.head_inputs(pooled, batch)
    assert torch.equal(inputs[:, -1], torch.zeros(2))  # NaN: at the training mean
    assert torch.allclose(inputs[:, -2], torch.tensor([1.0, 1.0]))  # the density stays


def test_shards_charged_by_the_charge_model_may_fine_tune_a_source_trained_on_cif_charges(
    source, tmp_path, caplog
):
    """A CIF with charges gives the same graph with ``charges: cif_or_model`` as with ``cif``;
    the fine-tuned model then asks for the model's charges where a CIF has none. The reverse
    (a source that expects them, shards without) is refused."""
    from dataclasses import replace

    from mofsieve.store import ShardReader

    reader = ShardReader(next(source["graphs"].glob("shard-*.h5")))
    graphs = [reader.graph(i) for i in range(len(reader))]
    filled = tmp_path / "filled"
    filled.mkdir()
    write_shard(filled / "shard-00000.h5", graphs, replace(reader.params, charges="cif_or_model"))
    tuned = tmp_path / "tuned"
    args = _train_args(filled, source["labels"], tuned, "--init-from", str(source["model"]),
                       "--global-features", *SOURCE_GLOBALS, *ADDED, "--train-only", "head",
                       "--epochs", "2")  # fmt: skip
    assert main(args) == 0
    assert read_model(tuned).featurization.charges == "cif_or_model"

    back = tmp_path / "back"
    args = _train_args(source["graphs"], source["labels"], back, "--init-from", str(tuned),
                       "--train-only", "head", "--epochs", "2")  # fmt: skip
    assert main(args) == 3
    assert "charges='cif' but the model expects charges='cif_or_model'" in caplog.text
    assert not (back / "model.json").exists()


def test_adding_a_descriptor_the_shards_lack_is_refused(source, tmp_path, caplog):
    out = tmp_path / "tuned"
    args = _train_args(source["graphs"], source["labels"], out, "--init-from",
                       str(source["model"]), "--global-features", *SOURCE_GLOBALS,
                       "surface_area_m2_g_geometric", "--train-only", "head")  # fmt: skip
    assert main(args) == 3
    assert "lack global features ['surface_area_m2_g_geometric']" in caplog.text
    assert not (out / "model.json").exists()


def test_fine_tuning_moves_a_model_to_its_graphs_force_field_revision(source, tmp_path, caplog):
    """A model trained on force-field descriptors of an older revision refuses graphs of the
    current one at prediction; fine-tuning on them is how it moves, and the result reads the
    graphs' revision."""
    from dataclasses import replace

    from mofsieve.featurization_params import ENERGY_REVISION
    from mofsieve.featurize import featurize_cif
    from mofsieve.manifest import iter_archive, package_archive
    from mofsieve.store import ShardReader

    added = ("co2_lj_min_energy_kj_mol",)
    reader = ShardReader(next(source["graphs"].glob("shard-*.h5")))
    params = replace(reader.params, global_feature_names=SOURCE_GLOBALS + ADDED + added)
    members = {graph.source for graph in reader}
    archive = package_archive("core-mof:2019-ASR")
    graphs = [featurize_cif(Path(name).stem, name, data, params)
              for name, data in iter_archive(archive, members)]  # fmt: skip
    shards = {}
    for revision in (ENERGY_REVISION - 1, ENERGY_REVISION):
        shards[revision] = tmp_path / f"revision-{revision}"
        shards[revision].mkdir()
        write_shard(shards[revision] / "shard-00000.h5", graphs,
                    replace(params, energy_revision=revision))  # fmt: skip
    old = tmp_path / "old"
    args = _train_args(shards[ENERGY_REVISION - 1], source["labels"], old, "--init-from",
                       str(source["model"]), "--global-features", *params.global_feature_names,
                       "--train-only", "head", "--epochs", "2")  # fmt: skip
    assert main(args) == 0
    assert read_model(old).featurization.energy_revision == ENERGY_REVISION - 1
    assert main(["predict", "--model", str(old), "--graphs", str(shards[ENERGY_REVISION]),
                 "--out", str(tmp_path / "refused.csv"), "--threads", "1"]) != 0  # fmt: skip
    assert f"descriptors of revision {ENERGY_REVISION} but the model read revision" in caplog.text
    assert "fine-tune the model on such graphs" in caplog.text

    moved = tmp_path / "moved"
    args = _train_args(shards[ENERGY_REVISION], source["labels"], moved, "--init-from", str(old),
                       "--train-only", "head", "--epochs", "2")  # fmt: skip
    assert main(args) == 0
    assert read_model(moved).featurization.energy_revision == ENERGY_REVISION
    assert len(_predict(moved, shards[ENERGY_REVISION], tmp_path / "moved.csv")) == len(graphs)
