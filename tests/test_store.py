from __future__ import annotations

import pickle
import re

import h5py
import numpy as np
import pytest
import torch

from mofsieve.batching import graph_to_data
from mofsieve.featurize import featurize_cif
from mofsieve.store import (
    FORMAT_VERSION,
    FeaturizationMismatch,
    FeaturizationParams,
    ShardFormatError,
    ShardReader,
    read_params,
    shard_paths,
    write_shard,
)
from mofsieve.training_data import shard_featurization

GOOD = ("cu_fcc_p1", "toy_framework_charged", "cartesian_only", "toy_crlf_type_charges")


_GRAPH_ARRAYS = (
    "atomic_number",
    "charge",
    "frac_coords",
    "lattice",
    "edge_src",
    "edge_dst",
    "edge_dist",
    "edge_image",
    "global_features",
)


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
        for name in _GRAPH_ARRAYS[:-1]:  # no global features in these shards
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


def _assert_same_data(got, want) -> None:
    """Two PyG Data hold the same tensors (keys, dtypes, shapes, values; NaN charges equal)."""
    assert sorted(got.keys()) == sorted(want.keys())
    assert got.num_nodes == want.num_nodes
    for key in want.keys():
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=0, equal_nan=True, msg=key)


@pytest.mark.parametrize("in_memory", [False, True], ids=["streamed", "in-memory"])
def test_shards_read_back_give_the_graphs_and_model_input_written(tmp_path, graphs, in_memory):
    """Graphs read back from shards (found by shard_paths, read by ShardReader) equal those
    written, array by array, and batching.graph_to_data makes the same model input of both,
    with the tensors the model reads; a reader survives pickling before and after use."""
    params = FeaturizationParams(global_feature_names=("lcd", "density", "void_fraction"))
    for i, g in enumerate(graphs):
        g.global_features = np.array([i, 10.0 + i, 0.5], dtype=np.float32)
    write_shard(tmp_path / "shard-00001.h5", graphs[2:], params)
    write_shard(tmp_path / "shard-00000.h5", graphs[:2], params)
    paths = shard_paths([tmp_path])
    assert [p.name for p in paths] == ["shard-00000.h5", "shard-00001.h5"]
    readers = [ShardReader(p, in_memory=in_memory) for p in paths]
    assert [r.params for r in readers] == [params, params]
    assert [len(r) for r in readers] == [2, 2]
    assert [mof_id for r in readers for mof_id in r.ids] == list(GOOD)
    back = [graph for reader in readers for graph in reader]
    global_index = [2, 0]  # the model's columns, in the model's order
    for direct, read in zip(graphs, back, strict=True):
        assert (read.mof_id, read.source) == (direct.mof_id, direct.source)
        for name in _GRAPH_ARRAYS:
            np.testing.assert_array_equal(getattr(read, name), getattr(direct, name), err_msg=name)
        data = graph_to_data(read, global_index, y=1.5)
        _assert_same_data(data, graph_to_data(direct, global_index, y=1.5))
        n, e = direct.n_atoms, len(direct.edge_src)
        assert data.num_nodes == n and data.z.dtype == torch.int64
        assert data.z.tolist() == direct.atomic_number.tolist()
        assert data.charge.shape == (n,) and data.charge.dtype == torch.float32
        assert data.lattice.shape == (1, 3, 3)
        torch.testing.assert_close(data.lattice[0], torch.from_numpy(direct.lattice).float())
        assert data.edge_index.dtype == torch.int64
        assert data.edge_index.tolist() == [direct.edge_src.tolist(), direct.edge_dst.tolist()]
        assert data.edge_dist.shape == (e,) and data.edge_dist.dtype == torch.float32
        assert data.global_features.tolist() == [[0.5, float(direct.global_features[0])]]
        assert data.y.tolist() == [1.5]
    assert "global_features" not in graph_to_data(back[0], []).keys()  # no columns wanted
    assert "y" not in graph_to_data(back[0], [0]).keys()  # no label
    # DataLoader workers get copies like these, of a reader used or not.
    fresh = pickle.loads(pickle.dumps(ShardReader(paths[1], in_memory=in_memory)))
    used = pickle.loads(pickle.dumps(readers[1]))
    for clone in (fresh, used):
        _assert_same_data(
            graph_to_data(clone.graph(1), global_index), graph_to_data(graphs[3], global_index)
        )


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
    readers = [ShardReader(p) for p in shard_paths([tmp_path])]
    assert [r.params.cutoff for r in readers] == [8.0, 6.0]  # each reader says what it holds
    second = str(tmp_path / "shard-00001.h5")
    with pytest.raises(
        FeaturizationMismatch, match=re.escape(f"{second} were featurized with cutoff=6.0")
    ):
        shard_featurization(readers)
    assert shard_featurization(readers[:1]) == FeaturizationParams()


def test_shard_paths_finds_shards_and_refuses_what_is_not_there(tmp_path, graphs):
    folder = tmp_path / "graphs"
    write_shard(folder / "shard-00001.h5", graphs[:1], FeaturizationParams())
    write_shard(folder / "shard-00000.h5", graphs[1:], FeaturizationParams())
    (folder / ".shard-00002.h5.tmp-123").write_bytes(b"half written")  # a killed write
    (folder / "manifest.csv").write_text("mof_id\n")
    single = write_shard(tmp_path / "extra.h5", graphs[:1], FeaturizationParams())
    found = shard_paths([folder, single])
    assert found == [folder / "shard-00000.h5", folder / "shard-00001.h5", single]
    assert [len(ShardReader(p)) for p in found] == [3, 1, 1]
    (tmp_path / "empty").mkdir()
    assert shard_paths([tmp_path / "empty"]) == []
    with pytest.raises(FileNotFoundError, match="no graph shards"):
        shard_featurization([ShardReader(p) for p in shard_paths([tmp_path / "empty"])])
    missing = tmp_path / "no-such-folder"
    with pytest.raises(
        FileNotFoundError, match=re.escape(f"no graph shard or folder at {missing}")
    ):
        shard_paths([folder, missing])


def test_a_runs_graph_folder_is_searched_through_its_job_folders(tmp_path, graphs):
    """The workflow writes shards into one folder per featurize job (shards-A-B/)."""
    run_graphs = tmp_path / "graphs"
    late = write_shard(
        run_graphs / "shards-00010-00011" / "shard-00010.h5", graphs[:1], FeaturizationParams()
    )
    early = write_shard(
        run_graphs / "shards-00000-00009" / "shard-00002.h5", graphs[1:], FeaturizationParams()
    )
    (run_graphs / "unrelated").mkdir()
    write_shard(run_graphs / "unrelated" / "shard-00005.h5", graphs[:1], FeaturizationParams())
    assert shard_paths([run_graphs]) == [early, late]


def test_a_write_that_fails_midway_leaves_no_file(tmp_path, graphs, monkeypatch):
    bad = list(graphs)
    bad[2].global_features = np.zeros(5, np.float32)  # wrong width: fails after data is written
    params = FeaturizationParams(global_feature_names=("a", "b"))
    for g in bad[:2] + bad[3:]:
        g.global_features = np.zeros(2, np.float32)
    with pytest.raises(ValueError, match="global features"):
        write_shard(tmp_path / "shard-00000.h5", bad, params)
    assert list(tmp_path.iterdir()) == []
