"""The attention file format: mofsieve.attention is its one writer and reader."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from mofsieve.attention import (
    FORMAT,
    FORMAT_VERSION,
    AttentionFormatError,
    AttentionWriter,
    has_learned_weights,
    read_attention,
)
from mofsieve.featurize import featurize_cif
from mofsieve.store import CrystalGraph, FeaturizationParams

GOOD = Path(__file__).resolve().parent / "data" / "good"


@pytest.fixture(scope="module")
def graphs() -> list[CrystalGraph]:
    names = ["toy_framework_charged", "cu_fcc_p1", "cartesian_only"]
    return [
        featurize_cif(n, f"{n}.cif", (GOOD / f"{n}.cif").read_bytes(), FeaturizationParams())
        for n in names
    ]


def weights_of(graphs: list[CrystalGraph]) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    out = []
    for g in graphs:
        w = rng.random(g.n_atoms) + 0.1
        out.append(w / w.sum())
    return out


def write(path: Path, graphs: list[CrystalGraph], readout: str = "attention") -> list[np.ndarray]:
    weights = weights_of(graphs)
    writer = AttentionWriter(path, readout)
    writer.add(graphs[:1], weights[0])  # two add() calls, as predict makes per batch
    writer.add(graphs[1:], np.concatenate(weights[1:]))
    writer.close()
    return weights


def test_weights_round_trip_per_mof_with_the_readout(tmp_path: Path, graphs) -> None:
    path = tmp_path / "attention-00000.h5"
    weights = write(path, graphs)
    with h5py.File(path) as h5:
        assert h5.attrs["format"] == FORMAT == "mofsieve-attention"
        assert h5.attrs["format_version"] == FORMAT_VERSION == 2
        assert h5.attrs["readout"] == "attention"
        np.testing.assert_array_equal(h5["atomic_number"][()], np.concatenate(
            [g.atomic_number for g in graphs]))  # fmt: skip
    readout, read = read_attention(path)
    assert readout == "attention" and list(read) == [g.mof_id for g in graphs]
    for g, w in zip(graphs, weights, strict=True):
        np.testing.assert_allclose(read[g.mof_id], w, rtol=1e-6)
    readout, some = read_attention(path, {"cu_fcc_p1", "not_there"})
    assert list(some) == ["cu_fcc_p1"] and len(some["cu_fcc_p1"]) == 4


def test_mean_readout_is_recorded_and_has_no_learned_weights(tmp_path: Path, graphs) -> None:
    path = tmp_path / "a.h5"
    write(path, graphs, readout="mean")
    assert read_attention(path)[0] == "mean"
    assert not has_learned_weights("mean") and not has_learned_weights("sum")
    assert has_learned_weights("attention")


def test_writer_refuses_an_unknown_readout_and_a_wrong_weight_count(tmp_path, graphs) -> None:
    with pytest.raises(ValueError, match="readout must be one of"):
        AttentionWriter(tmp_path / "a.h5", "max")
    writer = AttentionWriter(tmp_path / "b.h5", "attention")
    with pytest.raises(ValueError, match="3 weights for 10 atoms"):
        writer.add(graphs[:1], np.full(3, 1 / 3))
    writer.close()


def _set_attr(name: str, value: object) -> Callable[[h5py.File], None]:
    def edit(h5: h5py.File) -> None:
        h5.attrs[name] = value

    return edit


def _delete(name: str) -> Callable[[h5py.File], None]:
    def edit(h5: h5py.File) -> None:
        if name in h5.attrs:
            del h5.attrs[name]
        else:
            del h5[name]

    return edit


def _truncate_weights(h5: h5py.File) -> None:
    h5["weights"].resize(h5["weights"].shape[0] - 1, axis=0)


def _bad_node_ptr(h5: h5py.File) -> None:
    h5["node_ptr"][1] = 100


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_delete("format"), "is not a mofsieve-attention file (format=None)"),
        (_set_attr("format", "mofsieve-graphs"), "is not a mofsieve-attention file"),
        (_set_attr("format_version", 1), "format version 1; this mofsieve reads version 2"),
        (_set_attr("format_version", 3), "format version 3; this mofsieve reads version 2"),
        (_delete("readout"), "readout attribute is None"),
        (_set_attr("readout", "max"), "readout attribute is 'max'"),
        (_delete("node_ptr"), "lacks datasets ['node_ptr']"),
        (_delete("atomic_number"), "lacks datasets ['atomic_number']"),
        (_truncate_weights, "15 weights and 16 atoms do not match node_ptr"),
        (_bad_node_ptr, "do not match node_ptr"),
    ],
)
def test_unrecognised_files_are_refused_naming_them(tmp_path, graphs, edit, message) -> None:
    path = tmp_path / "attention-00000.h5"
    write(path, graphs)
    with h5py.File(path, "a") as h5:
        edit(h5)
    with pytest.raises(
        AttentionFormatError, match=re.escape(f"{path}") + ".*" + re.escape(message)
    ):
        read_attention(path)


def test_a_file_that_is_not_hdf5_or_absent_is_refused_naming_it(tmp_path: Path) -> None:
    text = tmp_path / "attention-00000.h5"
    text.write_text("mof_id,weight\n")
    for path in (text, tmp_path / "absent.h5"):
        with pytest.raises(AttentionFormatError, match=re.escape(f"{path}: cannot open")):
            read_attention(path)
