"""OCrystalNet: reverse edges and optional shard columns, the communicative layers, the model,
`mofsieve train --architecture ocrystalnet` → predict, and the AE-CGCNN path unchanged."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from mofsieve.batching import graph_to_data
from mofsieve.cli import main
from mofsieve.cmpnn import CommunicativeEdgeUpdate, MeanMaxAggregation, check_reverse
from mofsieve.featurize import featurize_cif
from mofsieve.graph_columns import COLUMNS, reverse_edges
from mofsieve.modeldir import read_model, union_featurization
from mofsieve.ocrystalnet import ATOM_INPUTS, OCrystalNet, OCrystalNetConfig
from mofsieve.store import FeaturizationMismatch, FeaturizationParams, ShardReader, write_shard

REPO = Path(__file__).resolve().parents[1]
LEGACY = REPO / "tests" / "data" / "legacy"
WITH_COLUMNS = FeaturizationParams(columns=COLUMNS)
N_CIFS, MAX_ATOMS = 12, 120


@pytest.fixture(scope="module")
def mof_graphs() -> list:
    """Small real CoRE MOF 2019-ASR structures (core-mof package) with both columns."""
    pytest.importorskip("CoRE_MOF", reason="the core-mof package (pip install '.[demo]')")
    from mofsieve.manifest import iter_archive, package_archive
    from mofsieve.structures import StructureError

    graphs = []
    for name, data in iter_archive(package_archive("core-mof:2019-ASR")):
        try:
            graph = featurize_cif(Path(name).stem, name, data, WITH_COLUMNS)
        except StructureError:
            continue
        if graph.n_atoms <= MAX_ATOMS:
            graphs.append(graph)
        if len(graphs) == N_CIFS:
            return graphs
    pytest.fail("too few small core-mof structures")


# -------------------------------------------------------------------- reverse edges, shards


def _all_edges(g) -> tuple[np.ndarray, ...]:
    return tuple(
        np.concatenate([getattr(g, f"edge_{k}"), getattr(g, f"extra_edge_{k}")])
        for k in ("src", "dst", "dist", "image")
    )


def test_every_edge_has_its_reverse(mof_graphs):
    missing = 0
    for g in mof_graphs:
        src, dst, dist, image = _all_edges(g)
        rev = g.edge_reverse.astype(np.int64)
        np.testing.assert_array_equal(rev[rev], np.arange(len(rev)))  # reverse of reverse
        assert (rev != np.arange(len(rev))).all()
        np.testing.assert_array_equal(src[rev], dst)
        np.testing.assert_array_equal(dst[rev], src)
        np.testing.assert_array_equal(image[rev], -image)  # the opposite image
        np.testing.assert_array_equal(dist[rev], dist)  # equal distance, to the bit
        # the nearest-neighbour edges are kept as they were; only reverses are added
        n_knn = len(g.edge_src)
        assert (rev[n_knn:] < n_knn).all()
        missing += len(g.extra_edge_src)
        assert len(g.extra_edge_src) < 0.3 * n_knn
    assert missing > 0  # 12-NN graphs are not symmetric: the union adds edges


def test_reverse_edges_of_a_symmetric_graph_adds_nothing():
    # two atoms, each the other's neighbour through images 0 and ±x
    src, dst = np.array([1, 1, 0, 0]), np.array([0, 0, 1, 1])
    image = np.array([[0, 0, 0], [-1, 0, 0], [0, 0, 0], [1, 0, 0]], dtype=np.int8)
    rev = reverse_edges(src, dst, np.array([1.0, 2.0, 1.0, 2.0]), image, 2)
    assert len(rev.src) == 0
    np.testing.assert_array_equal(rev.reverse, [2, 3, 0, 1])


def test_shard_with_columns_round_trips(tmp_path, mof_graphs):
    path = write_shard(tmp_path / "shard-00000.h5", mof_graphs[:3], WITH_COLUMNS)
    reader = ShardReader(path)
    assert reader.params == WITH_COLUMNS
    for direct, back in zip(mof_graphs[:3], reader, strict=True):
        for name in ("edge_src", "extra_edge_src", "extra_edge_image", "edge_reverse",
                     "orbital_neighbour_sum"):  # fmt: skip
            np.testing.assert_array_equal(getattr(back, name), getattr(direct, name), name)


def test_a_model_refuses_shards_without_the_columns_it_needs(tmp_path, mof_graphs):
    plain = replace(mof_graphs[0], edge_reverse=None, orbital_neighbour_sum=None)
    path = write_shard(tmp_path / "plain.h5", [plain], FeaturizationParams())
    with pytest.raises(FeaturizationMismatch, match="lack the graph column.*reverse_edges"):
        WITH_COLUMNS.check_compatible(ShardReader(path).params)
    FeaturizationParams().check_compatible(WITH_COLUMNS)  # more columns serve AE-CGCNN too


def test_graph_to_data_batches_reverse_indices(mof_graphs):
    datas = [graph_to_data(g, [], columns=COLUMNS) for g in mof_graphs[:3]]
    batch = Batch.from_data_list(datas)
    check_reverse(batch.edge_index, batch.edge_reverse)  # offsets by edges, not atoms
    assert batch.orbital_sum.shape == (batch.num_nodes, 32)
    bad = batch.edge_reverse.roll(1)
    with pytest.raises(ValueError, match="does not give each edge its reverse"):
        check_reverse(batch.edge_index, bad)
    plain = graph_to_data(mof_graphs[0], [])
    assert plain.edge_index.size(1) == len(mof_graphs[0].edge_src)  # AE-CGCNN: 12-NN only
    assert not hasattr(plain, "edge_reverse")


# ------------------------------------------------------------------------------- layers


def test_mean_max_aggregation_by_hand():
    edge_index = torch.tensor([[1, 2, 0], [0, 0, 1]])
    state = torch.tensor([[1.0, -2.0], [3.0, 4.0], [5.0, 6.0]])
    m = MeanMaxAggregation()(state, edge_index, 3)
    torch.testing.assert_close(m, torch.tensor([[2.0 * 3.0, 1.0 * 4.0], [25.0, 36.0], [0, 0]]))


def test_edge_update_subtracts_the_reverse_edges_state():
    layer = CommunicativeEdgeUpdate(2)
    with torch.no_grad():
        layer.lin.weight.copy_(torch.eye(2))
        layer.lin.bias.zero_()
    edge_index = torch.tensor([[0, 1], [1, 0]])
    x = torch.tensor([[1.0, 2.0], [10.0, 20.0]])
    state = torch.tensor([[0.5, 0.5], [3.0, 4.0]])
    out = layer(x, edge_index, state, torch.zeros(2, 2), torch.tensor([1, 0]))
    want = torch.nn.functional.mish(torch.tensor([[1.0 - 3.0, 2.0 - 4.0], [9.5, 19.5]]))
    torch.testing.assert_close(out, want)


# ------------------------------------------------------------------------------- model


def _permuted(g, perm: np.ndarray):
    """The same crystal with its atoms renumbered (atom perm[i] becomes i) and its edges
    reversed in order."""
    inverse = np.argsort(perm)
    n_edges = len(g.edge_src) + len(g.extra_edge_src)
    edge_order = np.arange(n_edges)[::-1]
    new_position = np.argsort(edge_order)
    src, dst, dist, image = (a[edge_order] for a in _all_edges(g))
    return replace(
        g,
        atomic_number=g.atomic_number[perm],
        charge=g.charge[perm],
        frac_coords=g.frac_coords[perm],
        orbital_neighbour_sum=g.orbital_neighbour_sum[perm],
        edge_src=inverse[src].astype(np.int32),
        edge_dst=inverse[dst].astype(np.int32),
        edge_dist=dist,
        edge_image=image,
        extra_edge_src=np.zeros(0, np.int32),
        extra_edge_dst=np.zeros(0, np.int32),
        extra_edge_dist=np.zeros(0, np.float32),
        extra_edge_image=np.zeros((0, 3), np.int8),
        edge_reverse=new_position[g.edge_reverse[edge_order]].astype(np.int32),
    )


@pytest.mark.parametrize("atom_input", ATOM_INPUTS)
@pytest.mark.parametrize("readout", ["mean", "attention"])
def test_model_is_invariant_to_atom_and_edge_order(mof_graphs, atom_input, readout):
    torch.manual_seed(0)
    model = OCrystalNet(OCrystalNetConfig(atom_input=atom_input, readout=readout)).eval()
    graphs = mof_graphs[:3]
    rng = np.random.default_rng(1)
    permuted = [_permuted(g, rng.permutation(g.n_atoms)) for g in graphs]
    with torch.no_grad():
        a = model(Batch.from_data_list([graph_to_data(g, [], columns=COLUMNS) for g in graphs]))
        b = model(Batch.from_data_list([graph_to_data(g, [], columns=COLUMNS) for g in permuted]))
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert a.std() > 0  # different crystals, different outputs


def test_model_trains_with_finite_gradients_and_stays_in_scale(mof_graphs):
    torch.manual_seed(0)
    model = OCrystalNet(OCrystalNetConfig())
    batch = Batch.from_data_list([graph_to_data(g, [], columns=COLUMNS) for g in mof_graphs])
    out = model(batch)
    assert out.abs().max() < 10  # three layers deep, still the target's scale
    out.square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_config_rejects_nonsense():
    with pytest.raises(ValueError, match="atom_input must be one of"):
        OCrystalNetConfig(atom_input="orbitals")
    with pytest.raises(ValueError, match="unknown OCrystalNet config keys"):
        OCrystalNetConfig.from_json({"conv": "cgcnn"})
    assert OCrystalNetConfig(atom_input="cfid").columns == ("reverse_edges",)


# ------------------------------------------------------------------ train → predict (CLI)


@pytest.fixture(scope="module")
def trained_ocrystalnet(mof_graphs, tmp_path_factory) -> tuple[Path, Path]:
    """A tiny OCrystalNet trained through the CLI on two shards with both columns (labels made
    up from the cell: the test checks the machinery, not chemistry)."""
    root = tmp_path_factory.mktemp("ocn")
    (root / "graphs").mkdir()
    write_shard(root / "graphs" / "shard-00000.h5", mof_graphs[:7], WITH_COLUMNS)
    write_shard(root / "graphs" / "shard-00001.h5", mof_graphs[7:], WITH_COLUMNS)
    labels = root / "labels.csv"
    with open(labels, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["mof_id", "uptake_298K_0.15bar"])
        for g in mof_graphs:
            w.writerow([g.mof_id, f"{g.n_atoms / abs(np.linalg.det(g.lattice)) * 20:.4f}"])
    out = root / "model"
    args = ["train", "--architecture", "ocrystalnet", "--labels", labels, "--target",
            "uptake_298K_0.15bar", "--graphs", root / "graphs", "--out", out, "--epochs", "2",
            "--ensemble", "2", "--batch-atoms", "400", "--threads", "1"]  # fmt: skip
    assert main([str(a) for a in args]) == 0
    return out, root / "graphs"


def test_train_ocrystalnet_writes_its_architecture(trained_ocrystalnet):
    model, _ = trained_ocrystalnet
    spec = read_model(model)
    assert spec.architecture == "OCrystalNet" and spec.variant == "ocrystalnet"
    assert spec.featurization.columns == COLUMNS
    assert spec.init["atom_input"] == "ofm+cfid" and not spec.has_atom_weights
    assert "OCrystalNet members" in (model / "MODEL_CARD.md").read_text()
    assert set(spec.metadata["metrics"]["test"]) >= {"mae", "spearman", "top10_recall"}


def test_predict_with_ocrystalnet_from_graphs_and_from_cifs(trained_ocrystalnet, tmp_path):
    from mofsieve.attention import read_attention
    from mofsieve.manifest import iter_archive, package_archive

    model, graphs = trained_ocrystalnet
    out, att = tmp_path / "p.csv", tmp_path / "att.h5"
    assert main(["predict", "--model", str(model), "--graphs", str(graphs), "--out", str(out),
                 "--attention", str(att), "--device", "cpu"]) == 0  # fmt: skip
    rows = {r["mof_id"]: r for r in csv.DictReader(open(out))}
    assert len(rows) == N_CIFS and all(np.isfinite(float(r["prediction"])) for r in rows.values())
    readout, weights = read_attention(att, set(rows))
    assert readout == "mean"  # uniform weights: mean pooling has no learned ones
    w = next(iter(weights.values()))
    np.testing.assert_allclose(w, 1.0 / len(w), rtol=1e-6)
    # the same MOFs from their CIFs: featurized as model.json says, the same numbers
    cifs = tmp_path / "cifs"
    cifs.mkdir()
    for name, data in iter_archive(package_archive("core-mof:2019-ASR")):
        if Path(name).stem in rows:
            (cifs / Path(name).name).write_bytes(data)
        if len(list(cifs.iterdir())) == N_CIFS:
            break
    out2 = tmp_path / "p2.csv"
    assert main(["predict", "--model", str(model), str(cifs), "--out", str(out2), "--device",
                 "cpu", "--jobs", "1"]) == 0  # fmt: skip
    again = {r["mof_id"]: r["prediction"] for r in csv.DictReader(open(out2))}
    assert again == {k: r["prediction"] for k, r in rows.items()}


def test_ocrystalnet_refuses_graphs_without_columns(trained_ocrystalnet, mof_graphs, tmp_path,
                                                    caplog):  # fmt: skip
    model, _ = trained_ocrystalnet
    plain = [replace(g, edge_reverse=None, orbital_neighbour_sum=None) for g in mof_graphs[:2]]
    write_shard(tmp_path / "shard-00000.h5", plain, FeaturizationParams())
    code = main(["predict", "--model", str(model), "--graphs", str(tmp_path), "--out",
                 str(tmp_path / "p.csv")])  # fmt: skip
    assert code == 3 and "lack the graph column(s)" in caplog.text


def test_one_graph_set_serves_both_architectures(trained_ocrystalnet, tmp_path, write_model_dir):
    """featurize --model for an AE-CGCNN and an OCrystalNet model: the union of what they
    need; the AE-CGCNN model reads those shards as if they had no columns."""
    model, _ = trained_ocrystalnet
    ae = write_model_dir(tmp_path / "ae")
    union = union_featurization([ae, read_model(model)])
    assert union == WITH_COLUMNS
    ae.check_graphs(union)


def test_train_refuses_shards_without_the_columns(mof_graphs, tmp_path, caplog):
    plain = [replace(g, edge_reverse=None, orbital_neighbour_sum=None) for g in mof_graphs]
    write_shard(tmp_path / "shard-00000.h5", plain, FeaturizationParams())
    labels = tmp_path / "l.csv"
    labels.write_text("mof_id,y\n" + "".join(f"{g.mof_id},1.0\n" for g in mof_graphs))
    code = main(["train", "--architecture", "ocrystalnet", "--labels", str(labels), "--target",
                 "y", "--graphs", str(tmp_path), "--out", str(tmp_path / "m")])  # fmt: skip
    assert code == 2 and "featurize with `mofsieve featurize --columns" in caplog.text


# ----------------------------------------------------------- the AE-CGCNN path, unchanged


def test_format_1_shard_and_shipped_models_predict_the_same_bits(monkeypatch):
    """A shard written by mofsieve before format 2 and the AE-CGCNN models shipped then (v1,
    kept in tests/data/legacy/models) give the outputs that code gave
    (tests/data/legacy/make_legacy_reference.py) to float32 rounding: the same bits on the
    machine that made the reference, up to 5.4e-7 relative on an AMD EPYC (its libraries
    round differently, with or without AVX-512); any change of what the models compute moves
    them by far more."""
    monkeypatch.setenv("MOFSIEVE_FUSED_KERNELS", "0")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _check_legacy_predictions()
    finally:
        torch.set_num_threads(threads)


def _check_legacy_predictions() -> None:
    from mofsieve.batching import iter_shard_batches
    from mofsieve.predict import Predictor

    shard = LEGACY / "shard-v1.h5"
    with h5py.File(shard) as h5:
        assert h5.attrs["format_version"] == 1 and "columns" not in h5.attrs
    want = json.loads((LEGACY / "predictions.json").read_text())
    reader = ShardReader(shard, in_memory=True)
    assert reader.ids == want["mof_ids"] and reader.params.columns == ()
    for name in ("co2_298K_0.15bar", "co2_298K_16bar"):
        predictor = Predictor(LEGACY / "models" / name, "cpu")
        assert predictor.spec.architecture == "AECGCNN"
        names = reader.params.global_feature_names
        index = [names.index(n) for n in predictor.params.global_feature_names]
        means, members = [], [[] for _ in predictor.members]
        for _, batch, _ in iter_shard_batches(reader, index, 8000, predictor.spec.num_layers):
            means += [float(v) for v in predictor(batch)[0]]
            with torch.no_grad():
                for k, member in enumerate(predictor.members):
                    members[k] += [float(v) for v in member(batch)]
        np.testing.assert_allclose(
            means, _floats(want[name]["mean"]), rtol=1e-6, atol=1e-6, err_msg=name
        )
        np.testing.assert_allclose(members, [_floats(m) for m in want[name]["members"]],
                                   rtol=1e-6, atol=1e-6, err_msg=name)  # fmt: skip


def _floats(hexes: list[str]) -> list[float]:
    return [float.fromhex(h) for h in hexes]


def test_ae_cgcnn_model_json_is_written_as_before(tmp_path, write_model_dir):
    spec = write_model_dir(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["class"] == "AECGCNN" and "columns" not in meta["featurization"]
    assert spec.merges_equivalent_atoms


def test_featurize_cli_takes_columns(tmp_path, test_data, caplog):
    cif = test_data / "good" / "cu_fcc_p1.cif"
    assert main(["featurize", str(cif), "--out", str(tmp_path / "g"), "--jobs", "1",
                 "--columns", "orbital_neighbour_sum,reverse_edges"]) == 0  # fmt: skip
    reader = ShardReader(tmp_path / "g" / "shard-00000.h5")
    assert reader.params.columns == COLUMNS
    assert reader.graph(0).orbital_neighbour_sum.shape == (4, 32)
    assert main(["featurize", str(cif), "--out", str(tmp_path / "h"), "--columns", "ofm"]) == 2
    assert "unknown graph column(s) ['ofm']" in caplog.text


def test_workflow_featurizes_with_the_columns_an_ocrystalnet_model_needs(trained_ocrystalnet):
    from mofsieve import config as mconfig

    model, _ = trained_ocrystalnet
    cfg = {"target": {"pressure": 0.15}, "models": {"0.15": str(model)}}
    args = mconfig.featurize_arguments(cfg)
    assert args[args.index("--columns") + 1] == "reverse_edges,orbital_neighbour_sum"


def test_ae_cgcnn_trained_on_shards_with_columns_ignores_them(trained_ocrystalnet, mof_graphs,
                                                              tmp_path):  # fmt: skip
    """AE-CGCNN on shards with OCrystalNet's columns: its model.json asks for none, and it
    predicts those shards exactly as the same graphs without columns."""
    _, graphs = trained_ocrystalnet
    labels = tmp_path / "l.csv"
    labels.write_text("mof_id,y\n" + "".join(f"{g.mof_id},{g.n_atoms / 50}\n" for g in mof_graphs))
    model = tmp_path / "ae"
    assert main(["train", "--labels", str(labels), "--target", "y", "--graphs", str(graphs),
                 "--out", str(model), "--epochs", "1", "--ensemble", "1", "--batch-atoms",
                 "400", "--threads", "1"]) == 0  # fmt: skip
    assert read_model(model).featurization == FeaturizationParams()
    plain = tmp_path / "plain"
    plain.mkdir()
    stripped = [replace(g, edge_reverse=None, orbital_neighbour_sum=None) for g in mof_graphs]
    write_shard(plain / "shard-00000.h5", stripped, FeaturizationParams())
    outputs = []
    for graph_dir in (graphs, plain):
        out = tmp_path / f"{graph_dir.name}.csv"
        assert main(["predict", "--model", str(model), "--graphs", str(graph_dir), "--out",
                     str(out), "--device", "cpu"]) == 0  # fmt: skip
        outputs.append(sorted(csv.reader(open(out))))
    assert outputs[0] == outputs[1]


@pytest.mark.parametrize("pressure", [0.15, 16.0])
def test_shipped_ocrystalnet_models_say_what_they_are(pressure, shipped_ocrystalnet):
    """The shipped OCrystalNet models: their architecture, conditions and graph columns, a
    calibrated σ, and a card with the test metrics model.json records."""
    model = shipped_ocrystalnet[pressure]
    spec = read_model(model)
    meta = json.loads((model / "model.json").read_text())
    assert meta["class"] == "OCrystalNet" and not spec.merges_equivalent_atoms
    assert spec.target.pressure_bar == pressure and spec.target.gas == "CO2"
    assert set(spec.featurization.columns) == set(COLUMNS)
    assert spec.calibration is not None and spec.calibration.fitted_on == "validation"
    card = (model / "MODEL_CARD.md").read_text()
    test = meta["metrics"]["test"]
    assert f"{test['mae']:.3f}" in card and f"{test['spearman']:.3f}" in card
    assert f"**test {100 * spec.calibration.coverage_90_test:.1f} %**" in card
    assert "o(c) ⊗ s(c)" in card and "attention heads" not in card  # its own architecture
    assert all((model / name).is_file() for name in spec.weights)
