from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest

from mofsieve.featurize import featurize_cif
from mofsieve.store import (
    FORMAT_VERSION,
    FeaturizationMismatch,
    FeaturizationParams,
    GraphDataset,
    ShardFormatError,
    ShardReader,
    read_params,
    write_shard,
)

GOOD = ("cu_fcc_p1", "toy_framework_charged", "cartesian_only", "toy_crlf_type_charges")


@pytest.fixture()
def graphs(test_data):
    params = FeaturizationParams()
    return [
        featurize_cif(
            name, f"good/{name}.cif", (test_data / f"good/{name}.cif").read_bytes(), params
        )
        for name in GOOD
    ]


def test_reading_a_shard_back_equals_featurizing_directly(tmp_path, graphs):
    path = write_shard(tmp_path / "shard-00000.h5", graphs, FeaturizationParams())
    reader = ShardReader(path)
    assert reader.ids == list(GOOD)
    for direct, back in zip(graphs, reader, strict=True):
        for name in (
            "atomic_number",
            "charge",
            "frac_coords",
            "lattice",
            "edge_src",
            "edge_dst",
            "edge_dist",
            "edge_image",
        ):
            np.testing.assert_array_equal(getattr(back, name), getattr(direct, name), err_msg=name)
        assert back.mof_id == direct.mof_id and back.source == direct.source


def test_shard_records_format_version_and_parameters(tmp_path, graphs):
    params = FeaturizationParams(cutoff=8.0, max_neighbors=12)
    path = write_shard(tmp_path / "s.h5", graphs, params)
    with h5py.File(path) as h5:
        assert h5.attrs["format"] == "mofsieve-graphs"
        assert h5.attrs["format_version"] == FORMAT_VERSION
        assert h5.attrs["cutoff"] == 8.0 and h5.attrs["max_neighbors"] == 12
        assert h5["atomic_number"].dtype == np.uint8 and h5["edge_image"].dtype == np.int8
    assert read_params(path) == params


def test_dataset_yields_pyg_data_and_survives_pickling(tmp_path, graphs):
    write_shard(tmp_path / "shard-00000.h5", graphs[:2], FeaturizationParams())
    write_shard(tmp_path / "shard-00001.h5", graphs[2:], FeaturizationParams())
    labels = {"toy_framework_charged": np.array([1.5]), "cartesian_only": np.array([0.2])}
    dataset = GraphDataset([tmp_path], labels=labels)
    assert len(dataset) == 2
    data = dataset[0]
    assert data.mof_id == "toy_framework_charged"
    assert data.z.tolist() == graphs[1].atomic_number.tolist()
    assert data.edge_index.shape == (2, len(graphs[1].edge_src))
    assert data.y.tolist() == [[1.5]]
    clone = pickle.loads(pickle.dumps(dataset))  # DataLoader workers get a copy like this
    assert clone[1].mof_id == "cartesian_only"
    assert clone[1].edge_dist.tolist() == data_dist(graphs[2])


def data_dist(graph) -> list[float]:
    return graph.edge_dist.astype(np.float32).tolist()


def test_global_features_round_trip(tmp_path, graphs):
    params = FeaturizationParams(global_feature_names=("x", "y"))
    for i, g in enumerate(graphs):
        g.global_features = np.array([i, -i], dtype=np.float32)
    reader = ShardReader(write_shard(tmp_path / "g.h5", graphs, params))
    assert reader.params.global_feature_names == ("x", "y")
    assert reader.graph(3).global_features.tolist() == [3.0, -3.0]


def test_a_shard_of_another_format_version_is_refused(tmp_path, graphs):
    path = write_shard(tmp_path / "old.h5", graphs, FeaturizationParams())
    with h5py.File(path, "a") as h5:
        h5.attrs["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(ShardFormatError, match="featurize it again"):
        ShardReader(path)


def test_featurization_mismatch_names_the_parameter():
    model = FeaturizationParams(cutoff=8.0, global_feature_names=("density",))
    with pytest.raises(
        FeaturizationMismatch, match="max_neighbors=8 but the model expects max_neighbors=12"
    ):
        model.check_compatible(
            FeaturizationParams(max_neighbors=8, global_feature_names=("density",))
        )
    with pytest.raises(FeaturizationMismatch, match="lack global features"):
        model.check_compatible(FeaturizationParams())
    model.check_compatible(FeaturizationParams(global_feature_names=("density", "lcd")))


def test_shards_with_different_parameters_cannot_be_mixed(tmp_path, graphs):
    write_shard(tmp_path / "shard-00000.h5", graphs, FeaturizationParams())
    write_shard(tmp_path / "shard-00001.h5", graphs, FeaturizationParams(cutoff=6.0))
    with pytest.raises(FeaturizationMismatch, match="cutoff"):
        GraphDataset([tmp_path])


def test_a_write_that_fails_midway_leaves_no_file(tmp_path, graphs, monkeypatch):
    bad = list(graphs)
    bad[2].global_features = np.zeros(5, np.float32)  # wrong width: fails after data is written
    params = FeaturizationParams(global_feature_names=("a", "b"))
    for g in bad[:2] + bad[3:]:
        g.global_features = np.zeros(2, np.float32)
    with pytest.raises(ValueError, match="global features"):
        write_shard(tmp_path / "shard-00000.h5", bad, params)
    assert list(tmp_path.iterdir()) == []
