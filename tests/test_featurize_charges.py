"""featurize --charges cif_or_model: the charge model's charges for CIFs without their own."""

from __future__ import annotations

import argparse
import csv
import json
import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from mofsieve import config as mconfig
from mofsieve import featurize
from mofsieve.charge_model import DEFAULT_CHARGE_MODEL_DIR, load_charge_model, read_spec
from mofsieve.cli import main
from mofsieve.descriptors.energy_grid import CHARGED_DESCRIPTORS
from mofsieve.featurization_params import FeaturizationMismatch, FeaturizationParams
from mofsieve.featurize import featurize_cif
from mofsieve.manifest import iter_archive
from mofsieve.modeldir import read_model, union_featurization
from mofsieve.store import ShardReader, read_params, write_shard
from mofsieve.structures import parse_cif

# torch.jit.script inside PyG, imported with the charge model
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
MODEL_CHARGES = FeaturizationParams(
    global_feature_names=CHARGED_DESCRIPTORS, charges="cif_or_model"
)
CIF_CHARGES = FeaturizationParams(global_feature_names=CHARGED_DESCRIPTORS)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def without_charges(cif: bytes) -> bytes:
    """The CIF with its ``_atom_site_charge`` column taken out (it must be the atom loop's
    last column, one atom per line): the same structure, uncharged."""
    lines, out, in_column = cif.decode().splitlines(), [], False
    for line in lines:
        word = line.strip()
        if word == "_atom_site_charge":
            in_column = True
            continue
        if in_column and (word.startswith(("_", "loop_", "data_")) or not word):
            assert not word.startswith("_"), "_atom_site_charge is not the loop's last column"
            in_column = False
        out.append(line.rsplit(None, 1)[0] if in_column else line)
    return ("\n".join(out) + "\n").encode()


def test_cif_keeps_nan_and_cif_or_model_fills_the_models_charges(test_data: Path) -> None:
    """ZAZBUZ (no charges in the CIF): ``cif`` leaves NaN; ``cif_or_model`` fills neutral,
    chemically signed charges, the model's own prediction, in graph and descriptors."""
    data = (test_data / "checks" / "clean.cif").read_bytes()
    plain = featurize_cif("ZAZBUZ", "clean.cif", data, CIF_CHARGES)
    assert np.isnan(plain.charge).all() and np.isnan(plain.global_features).all()

    found: list[tuple[str, str]] = []
    graph = featurize_cif("ZAZBUZ", "clean.cif", data, MODEL_CHARGES, checks=found)
    assert found == []
    assert graph.charge.dtype == np.float32 and np.isfinite(graph.charge).all()
    assert abs(float(graph.charge.sum(dtype=np.float64))) < 1e-4
    z = graph.atomic_number
    assert (graph.charge[z == 29] > 0.3).all() and (graph.charge[z == 8] < -0.2).all()
    assert np.isfinite(graph.global_features).all()
    # the featurizer's graph reused for the model gives what the model gives on its own
    own = load_charge_model(DEFAULT_CHARGE_MODEL_DIR).predict(parse_cif(data))
    np.testing.assert_allclose(graph.charge, own, atol=1e-6)
    # the graph itself does not change
    np.testing.assert_array_equal(graph.edge_src, plain.edge_src)
    np.testing.assert_array_equal(graph.edge_dist, plain.edge_dist)


def test_a_cif_with_charges_keeps_its_own_exactly(test_data: Path) -> None:
    data = (test_data / "checks" / "water_charged.cif").read_bytes()
    charged = parse_cif(data).charge
    assert np.isfinite(charged).all()
    found: list[tuple[str, str]] = []
    graph = featurize_cif("w", "w.cif", data, MODEL_CHARGES, checks=found)
    assert "charges" not in {check for check, _ in found}
    np.testing.assert_array_equal(graph.charge, charged)
    np.testing.assert_array_equal(
        graph.global_features, featurize_cif("w", "w.cif", data, CIF_CHARGES).global_features
    )


def test_model_charges_of_real_charged_mofs_are_close_to_their_own(shared_core: Path) -> None:
    """Six CoRE MOF 2019 CIFs the charge model was not trained on (its test split), charges
    stripped: the model's are neutral and near the CIF's (test MAE 0.026 e), and so are the
    charged descriptors."""
    split = read_csv(DEFAULT_CHARGE_MODEL_DIR / "split.csv")
    held_out = {row["mof_id"] for row in split if row["split"] == "test"}
    picked = []
    for name, data in iter_archive(shared_core / "cifs.tar.xz"):
        if Path(name).stem in held_out:
            picked.append((Path(name).stem, data))
        if len(picked) == 6:
            break
    errors, henry_gaps = [], []
    for mof_id, data in picked:
        own = featurize_cif(mof_id, mof_id, data, CIF_CHARGES)
        stripped = without_charges(data)
        assert np.isnan(parse_cif(stripped).charge).all()
        assert np.isnan(featurize_cif(mof_id, mof_id, stripped, CIF_CHARGES).global_features).all()
        found: list[tuple[str, str]] = []
        filled = featurize_cif(mof_id, mof_id, stripped, MODEL_CHARGES, checks=found)
        assert "charges" not in {check for check, _ in found}, found
        np.testing.assert_array_equal(filled.frac_coords, own.frac_coords)
        assert abs(float(filled.charge.sum(dtype=np.float64))) < 1e-4, mof_id
        assert np.isfinite(filled.global_features).all(), mof_id
        error = np.abs(filled.charge - own.charge)
        assert error.mean() < 0.15, (mof_id, error.mean())
        errors.append(error)
        henry_gaps.append(abs(filled.global_features[0] - own.global_features[0]))
    assert np.concatenate(errors).mean() < 0.06
    assert np.mean(henry_gaps) < 0.3  # log10 units of the charged Henry coefficient


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        # Zr: not among the elements the charge model was trained on
        ((b" Cu ", b" Zr "), "element(s) Zr never seen in the charge model's training"),
        # every C a B: the model's charges leave the per-element bounds (H on B negative)
        ((b" C ", b" B "), "implausible charge"),
    ],
)
def test_a_crystal_the_model_cannot_charge_keeps_nan_with_a_warning(
    tmp_path: Path, test_data: Path, edit: tuple[bytes, bytes], reason: str
) -> None:
    assert 40 not in read_spec(DEFAULT_CHARGE_MODEL_DIR).elements  # what the Zr case relies on
    clean = (test_data / "checks" / "clean.cif").read_bytes()
    cifs = tmp_path / "cifs"
    cifs.mkdir()
    (cifs / "clean.cif").write_bytes(clean)
    (cifs / "edited.cif").write_bytes(clean.replace(*edit))
    out = tmp_path / "out"
    names = ",".join(CHARGED_DESCRIPTORS)
    argv = ["featurize", str(cifs), "--out", str(out), "--jobs", "1", "--global-features", names]
    assert main([*argv, "--charges", "cif_or_model"]) == 0
    assert read_csv(out / "failures.csv") == []
    warned = [w for w in read_csv(out / "warnings.csv") if w["check"] == "charges"]
    assert [w["mof_id"] for w in warned] == ["edited"]
    assert reason in warned[0]["detail"] and "keep NaN charges" in warned[0]["detail"]
    reader = ShardReader(out / "shard-00000.h5")
    assert reader.params.charges == "cif_or_model"
    graphs = {g.mof_id: g for g in reader}
    assert np.isnan(graphs["edited"].charge).all()
    assert np.isnan(graphs["edited"].global_features).all()
    assert np.isfinite(graphs["clean"].charge).all()
    assert np.isfinite(graphs["clean"].global_features).all()


def test_no_charge_model_stops_the_run_only_when_one_is_needed(
    tmp_path: Path, test_data: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    monkeypatch.setattr(featurize, "CHARGE_MODEL_DIR", tmp_path / "no-model")
    charged = ["featurize", str(test_data / "checks" / "water_charged.cif"), "--jobs", "1"]
    # every CIF has its own charges: the model is never asked, never loaded
    assert main([*charged, "--out", str(tmp_path / "a"), "--charges", "cif_or_model"]) == 0
    for jobs in ("1", "2"):  # with workers too: loading it before the fork fails quietly
        uncharged = ["featurize", str(test_data / "checks" / "clean.cif"), "--jobs", jobs]
        out = tmp_path / f"b{jobs}"
        caplog.clear()
        assert main([*uncharged, "--out", str(out), "--charges", "cif_or_model"]) == 2
        assert "--charges cif_or_model: no charge model in" in caplog.text
        assert not list(out.glob("shard-*.h5")) and not list(out.glob("failures*.csv"))


def test_two_workers_share_the_model_loaded_before_the_fork_and_give_the_same_shard(
    tmp_path: Path, test_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mofsieve import charge_sources

    inputs = [str(test_data / "checks" / n) for n in ("clean.cif", "ammonium.cif")]
    shards = {}
    for jobs in ("2", "1"):
        loaded: dict[str, object] = {}  # this process's charge models: none yet
        monkeypatch.setattr(charge_sources, "_charge_models", loaded)
        out = tmp_path / jobs
        argv = ["featurize", *inputs, "--out", str(out), "--shard-size", "2", "--jobs", jobs]
        assert main([*argv, "--charges", "cif_or_model"]) == 0
        # loaded here, also with workers: forked after it, they use this process's copy
        assert len(loaded) == 1
        with h5py.File(out / "shard-00000.h5") as h5:
            shards[jobs] = h5["charge"][()]
    assert np.isfinite(shards["1"]).all()
    np.testing.assert_array_equal(shards["1"], shards["2"])


def test_charges_round_trip_and_a_mismatch_is_refused(tmp_path: Path, test_data: Path) -> None:
    data = (test_data / "checks" / "clean.cif").read_bytes()
    graph = featurize_cif("ZAZBUZ", "clean.cif", data, MODEL_CHARGES)
    path = write_shard(tmp_path / "shard-00000.h5", [graph], MODEL_CHARGES)
    assert read_params(path) == MODEL_CHARGES
    np.testing.assert_array_equal(next(iter(ShardReader(path))).charge, graph.charge)
    assert FeaturizationParams.from_json(MODEL_CHARGES.to_json()) == MODEL_CHARGES
    # written before the parameter existed: the CIF's own charges
    assert read_params(test_data / "legacy" / "shard-v1.h5").charges == "cif"
    assert "charges" not in FeaturizationParams().to_json()
    assert FeaturizationParams.from_json(FeaturizationParams().to_json()).charges == "cif"
    # the shipped models read charged descriptors: CIFs without charges get the model's
    for shipped in ("co2_298K_0.15bar", "co2_298K_16bar"):
        assert read_model(REPO / "models" / shipped).featurization.charges == "cif_or_model"
    # both ways: NaN charged descriptors for one, charges it never saw for the other
    with pytest.raises(FeaturizationMismatch, match="charges='cif' but the model expects"):
        MODEL_CHARGES.check_compatible(CIF_CHARGES)
    with pytest.raises(FeaturizationMismatch, match="charges='cif_or_model' but the model exp"):
        CIF_CHARGES.check_compatible(MODEL_CHARGES)
    MODEL_CHARGES.check_compatible(read_params(path))
    # a finished shard featurized the other way is done again
    for side in ("failures", "warnings", "frameworks"):
        (tmp_path / f"{side}-00000.csv").write_text("")
    assert featurize.shard_is_done(tmp_path, 0, MODEL_CHARGES)
    assert not featurize.shard_is_done(tmp_path, 0, CIF_CHARGES)
    with pytest.raises(ValueError, match="featurization charges 'model': known are cif, cif_or"):
        FeaturizationParams(charges="model")


def test_a_model_trained_on_model_charges_refuses_cif_graphs_and_the_workflow_asks_for_them(
    tmp_path: Path, write_model_dir
) -> None:
    write_model_dir(tmp_path / "lo", pressure_bar=0.15, charges="cif_or_model")
    write_model_dir(tmp_path / "hi", pressure_bar=16, charges="cif_or_model")
    spec = read_model(tmp_path / "lo")
    assert spec.featurization.charges == "cif_or_model"
    assert (
        json.loads((tmp_path / "lo" / "model.json").read_text())["featurization"]["charges"]
        == "cif_or_model"
    )
    with pytest.raises(FeaturizationMismatch, match=re.escape("charges='cif'")):
        spec.check_graphs(FeaturizationParams())
    cfg = mconfig.validate_config(
        {
            "inputs": ["cifs"],
            "target": {"pressure": "working_capacity"},
            "models": {"0.15": str(tmp_path / "lo"), "16": str(tmp_path / "hi")},
        },
        SCHEMA,
    )
    words = mconfig.featurize_arguments(cfg)
    assert words[-2:] == ["--charges", "cif_or_model"]
    # what the featurize job then makes is what the models expect, as --model gives it
    parser = argparse.ArgumentParser()
    featurize.add_arguments(parser)
    from_words = featurize.featurization_from_arguments(parser.parse_args(["--out", "o", *words]))
    spec.check_graphs(from_words)
    models = ["--out", "o", "--model", str(tmp_path / "lo"), "--model", str(tmp_path / "hi")]
    assert featurize.featurization_from_arguments(parser.parse_args(models)) == from_words
    # models that disagree on charges cannot share graphs
    write_model_dir(tmp_path / "hi", pressure_bar=16)
    with pytest.raises(FeaturizationMismatch, match="models disagree on featurization charges"):
        union_featurization([read_model(tmp_path / "lo"), read_model(tmp_path / "hi")])
    with pytest.raises(mconfig.ConfigError, match="disagree on featurization charges"):
        mconfig.featurize_arguments(cfg)


def test_a_featurize_job_charging_cifs_never_runs_the_parts_of_torch_and_pyg_it_does_not_use(
    tmp_path: Path, test_data: Path, fresh_job
) -> None:
    """torch._dynamo and PyG's datasets stay unrun through a featurize job that loads the charge
    model (a fresh process, as a job is), and its shard is that of a process that ran them."""
    import torch._dynamo  # noqa: F401  # this process has both: the reference
    import torch_geometric.datasets  # noqa: F401

    inputs = [str(test_data / "checks" / n) for n in ("clean.cif", "ammonium.cif")]
    argv = ["featurize", *inputs, "--jobs", "1", "--charges", "cif_or_model"]
    assert fresh_job([*argv, "--out", str(tmp_path / "job")]) == ["0", "True", "True"]
    assert main([*argv, "--out", str(tmp_path / "here")]) == 0
    with (
        h5py.File(tmp_path / "job" / "shard-00000.h5") as a,
        h5py.File(tmp_path / "here" / "shard-00000.h5") as b,
    ):
        assert np.isfinite(a["charge"][()]).all()
        for name in ("charge", "edge_src", "edge_dist"):
            np.testing.assert_array_equal(a[name][()], b[name][()])
