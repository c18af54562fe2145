"""End to end on a handful of real CoRE MOF 2019 structures (from the `core-mof` package):
featurize → train (tiny) → predict, plus the refusal of graphs featurized differently."""

from __future__ import annotations

import csv
import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest

from mofsieve.cli import main
from mofsieve.modeldir import read_model
from mofsieve.store import FeaturizationParams, ShardReader, write_shard


def predict_cli(*args: object) -> int:
    """``mofsieve predict ARGS`` (each argument as its string); the exit code."""
    return main(["predict", *map(str, args)])


def featurize_cli(*args: object) -> int:
    return main(["featurize", *map(str, args)])


N_CIFS = 12
MAX_ATOMS = 120


@pytest.fixture(scope="module")
def real_shards(tmp_path_factory) -> tuple[Path, Path]:
    """Two shards of small real MOFs and a label CSV (labels made up from the cell: the test
    checks the machinery, not chemistry; real labels are developer data)."""
    pytest.importorskip("CoRE_MOF", reason="the core-mof package (pip install '.[demo]')")
    from mofsieve.featurize import featurize_cif
    from mofsieve.manifest import iter_archive, package_archive
    from mofsieve.structures import StructureError

    root = tmp_path_factory.mktemp("e2e")
    params = FeaturizationParams()
    graphs = []
    for name, data in iter_archive(package_archive("core-mof:2019-ASR")):
        try:
            graph = featurize_cif(Path(name).stem, name, data, params)
        except StructureError:
            continue
        if graph.n_atoms <= MAX_ATOMS:
            graphs.append(graph)
        if len(graphs) == N_CIFS:
            break
    assert len(graphs) == N_CIFS
    (root / "graphs").mkdir()
    write_shard(root / "graphs" / "shard-00000.h5", graphs[:7], params)
    write_shard(root / "graphs" / "shard-00001.h5", graphs[7:], params)
    labels = root / "labels.csv"
    with open(labels, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["mof_id", "uptake_298K_0.15bar", "other"])
        for g in graphs:
            volume = abs(np.linalg.det(g.lattice))
            w.writerow([g.mof_id, f"{g.n_atoms / volume * 20:.4f}", ""])
    return root / "graphs", labels


@pytest.fixture(scope="module")
def trained(real_shards, tmp_path_factory) -> Path:
    graphs, labels = real_shards
    out = tmp_path_factory.mktemp("model") / "m"
    assert main(_train_args(graphs, labels, out, "--epochs", "2")) == 0
    return out


def test_train_writes_a_complete_model_dir(trained):
    for name in (
        "model.json",
        "member-0.pt",
        "member-1.pt",
        "MODEL_CARD.md",
        "parity.png",
        "split.csv",
        "test_predictions.csv",
    ):
        assert (trained / name).is_file(), name
    spec = read_model(trained)
    assert spec.target.unit == "mol/kg"
    assert spec.target.pressure_bar == 0.15 and spec.target.temperature_K == 298.0
    assert spec.featurization == FeaturizationParams()
    assert spec.has_atom_weights and spec.weights == ("member-0.pt", "member-1.pt")
    meta = spec.metadata
    assert set(meta["metrics"]["test"]) >= {"mae", "rmse", "r2", "spearman", "top10_recall"}
    split = meta["training"]["split"]
    assert split["n_train"] + split["n_val"] + split["n_test"] == N_CIFS
    with open(trained / "split.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == N_CIFS
    assert not list(trained.glob(".*tmp*"))  # every output was renamed into place
    assert "Test metrics" in (trained / "MODEL_CARD.md").read_text()


def _train_args(graphs: Path, labels: Path, out: Path, *extra: str, ensemble: int = 2) -> list[str]:
    return [
        "train",
        "--labels",
        str(labels),
        "--target",
        "uptake_298K_0.15bar",
        "--graphs",
        str(graphs),
        "--out",
        str(out),
        "--variant",
        "atten3",
        "--readout",
        "attention",
        "--ensemble",
        str(ensemble),
        "--batch-atoms",
        "400",
        "--threads",
        "1",
        *extra,
    ]


def test_resume_continues_from_checkpoints(trained, real_shards, tmp_path, caplog):
    graphs, labels = real_shards
    model = tmp_path / "m"
    shutil.copytree(trained, model)
    # The same command again: both members finished their 2 epochs, nothing is retrained.
    assert main(_train_args(graphs, labels, model, "--epochs", "2", "--resume")) == 0
    history = json.loads((model / "history.json").read_text())
    assert [len(h["epochs"]) for h in history] == [2, 2]
    # A longer schedule continues the finished members from their last epoch.
    with caplog.at_level("INFO"):
        assert main(_train_args(graphs, labels, model, "--epochs", "3", "--resume")) == 0
    assert "resumed after epoch 1" in caplog.text
    history = json.loads((model / "history.json").read_text())
    assert [len(h["epochs"]) for h in history] == [3, 3]
    assert [e["epoch"] for e in history[0]["epochs"]] == [0, 1, 2]


def test_members_train_separately_then_assemble(real_shards, tmp_path, caplog):
    graphs, labels = real_shards
    model = tmp_path / "m"
    for k in ("1", "0"):  # e.g. two array tasks, in any order
        assert main(_train_args(graphs, labels, model, "--epochs", "2", "--members", k)) == 0
        assert not (model / "model.json").exists()  # members alone make no model
    assert sorted(p.name for p in (model / "checkpoints").iterdir()) == [
        "member-0.ckpt.pt",
        "member-1.ckpt.pt",
    ]
    with caplog.at_level("INFO"):
        assert main(_train_args(graphs, labels, model, "--epochs", "2", "--resume")) == 0
    assert caplog.text.count("resumed after epoch 1") == 2
    assert read_model(model).weights == ("member-0.pt", "member-1.pt")
    history = json.loads((model / "history.json").read_text())
    assert [h["seed"] for h in history] == [0, 1] and [len(h["epochs"]) for h in history] == [2, 2]


def test_members_outside_the_ensemble_are_refused(real_shards, tmp_path, caplog):
    graphs, labels = real_shards
    assert main(_train_args(graphs, labels, tmp_path / "m", "--epochs", "1", "--members", "2")) == 2
    assert "--members [2] outside 0..1" in caplog.text
    assert not (tmp_path / "m" / "checkpoints" / "member-2.ckpt.pt").exists()


def test_predict_streams_every_shard_with_attention(trained, real_shards, tmp_path):
    graphs, _ = real_shards
    out, att = tmp_path / "pred.csv", tmp_path / "att.h5"
    assert (
        predict_cli(
            "--model",
            trained,
            "--graphs",
            graphs,
            "--out",
            out,
            "--attention",
            att,
            "--batch-atoms",
            "300",
            "--device",
            "cpu",
        )
        == 0
    )
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["mof_id", "prediction", "uncertainty", "n_atoms"]
    assert len(rows) == N_CIFS and len({r["mof_id"] for r in rows}) == N_CIFS
    assert all(float(r["prediction"]) >= 0 and float(r["uncertainty"]) >= 0 for r in rows)
    with h5py.File(att) as h5:
        ptr, weights = h5["node_ptr"][()], h5["weights"][()]
        assert len(h5["ids"]) == N_CIFS and ptr[-1] == len(weights) == len(h5["atomic_number"])
        assert h5["frac_coords"].shape == (len(weights), 3) and h5["lattice"].shape == (
            N_CIFS,
            3,
            3,
        )
        sums = np.add.reduceat(weights, ptr[:-1])
        np.testing.assert_allclose(sums, 1.0, rtol=1e-4)
    assert not list(tmp_path.glob("*.tmp-*"))


def test_predict_merging_equivalent_atoms_equals_every_atom(trained, real_shards, tmp_path):
    """Default predict computes equivalent atoms once; --every-atom computes each. Same
    predictions, uncertainties and per-atom attention weights."""
    from mofsieve.symmetry import merge_equivalent_atoms

    graphs, _ = real_shards
    readers = [ShardReader(p) for p in sorted(graphs.glob("shard-*.h5"))]
    atoms = sum(g.n_atoms for r in readers for g in r)
    rows = sum(merge_equivalent_atoms(g, 4)[0].n_atoms for r in readers for g in r)
    assert rows < atoms * 0.8  # these structures do merge: the comparison means something
    outputs = {}
    for mode, extra in (("merged", []), ("every", ["--every-atom"])):
        out, att = tmp_path / f"{mode}.csv", tmp_path / f"{mode}.h5"
        assert (
            predict_cli(
                "--model",
                trained,
                "--graphs",
                graphs,
                "--out",
                out,
                "--attention",
                att,
                "--batch-atoms",
                "300",
                "--device",
                "cpu",
                *extra,
            )
            == 0
        )
        with open(out, newline="") as fh:
            table = list(csv.DictReader(fh))
        with h5py.File(att) as h5:
            outputs[mode] = (table, h5["weights"][()], h5["node_ptr"][()])
    (merged, w_merged, ptr_merged), (every, w_every, ptr_every) = (
        outputs["merged"],
        outputs["every"],
    )
    assert [r["mof_id"] for r in merged] == [r["mof_id"] for r in every]
    assert [r["n_atoms"] for r in merged] == [r["n_atoms"] for r in every]
    for column in ("prediction", "uncertainty"):
        np.testing.assert_allclose(
            [float(r[column]) for r in merged],
            [float(r[column]) for r in every],
            rtol=1e-4,
            atol=1e-5,
        )
    np.testing.assert_array_equal(ptr_merged, ptr_every)
    np.testing.assert_allclose(w_merged, w_every, rtol=1e-4, atol=1e-7)


def test_predict_refuses_graphs_featurized_differently(trained, real_shards, tmp_path, caplog):
    graphs, _ = real_shards
    reader = ShardReader(graphs / "shard-00001.h5")
    other = replace(reader.params, cutoff=6.0)
    write_shard(tmp_path / "shard-00000.h5", list(reader), other)
    out = tmp_path / "pred.csv"
    with caplog.at_level("ERROR"):
        code = predict_cli(
            "--model",
            trained,
            "--graphs",
            graphs / "shard-00000.h5",
            tmp_path / "shard-00000.h5",
            "--out",
            out,
        )
    assert code != 0
    assert "cutoff" in caplog.text and "6.0" in caplog.text
    assert not out.exists()


def test_predict_failing_midway_leaves_no_output(trained, real_shards, tmp_path, caplog):
    """A shard that breaks after the first one was predicted: neither the CSV nor the
    attention file appears, and no temporary file is left behind."""
    graphs, _ = real_shards
    broken = tmp_path / "graphs"
    shutil.copytree(graphs, broken)
    with h5py.File(broken / "shard-00001.h5", "a") as h5:
        del h5["edge_dist"]  # parameters still readable, graphs not
    out, att = tmp_path / "pred.csv", tmp_path / "att.h5"
    code = predict_cli(
        "--model", trained, "--graphs", broken, "--out", out, "--attention", att, "--device", "cpu"
    )
    assert code != 0
    assert "edge_dist" in caplog.text
    assert not out.exists() and not att.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["graphs"]


def test_lr_restarts_are_the_epochs_where_the_rate_rose():
    from mofsieve.fit import lr_restarts

    lrs = [1e-3, 5e-4, 1e-6, 8e-4, 4e-4, 0.0]  # a decayed run resumed with a longer budget
    assert lr_restarts({"epochs": [{"epoch": i, "lr": lr} for i, lr in enumerate(lrs)]}) == [3]
    assert lr_restarts({"epochs": [{"epoch": 0, "lr": 1e-3}]}) == []


def test_a_spent_time_budget_stays_spent_on_resume(real_shards, tmp_path):
    graphs, labels = real_shards
    model = tmp_path / "m"
    budget = ["--epochs", "50", "--time-budget-min", "0.001"]
    assert main(_train_args(graphs, labels, model, *budget, ensemble=1)) == 0
    first = json.loads((model / "history.json").read_text())[0]["epochs"]
    assert len(first) == 1  # the budget (0.06 s) is spent after the first epoch
    assert main(_train_args(graphs, labels, model, *budget, "--resume", ensemble=1)) == 0
    assert json.loads((model / "history.json").read_text())[0]["epochs"] == first


# ---------------------------------------------------------------------------------------------
# predict where the user's CIFs are (featurized as the model says)

SHIPPED_015 = Path(__file__).resolve().parents[1] / "models" / "co2_298K_0.15bar"


@pytest.fixture(scope="module")
def cif_folder(tmp_path_factory) -> Path:
    """Five real CoRE MOF 2019-ASR CIFs (small ones) and a broken one, in nested folders."""
    pytest.importorskip("CoRE_MOF", reason="the core-mof package (pip install '.[demo]')")
    from mofsieve.manifest import iter_archive, package_archive

    root = tmp_path_factory.mktemp("cifs")
    (root / "sub").mkdir()
    written = 0
    for name, data in iter_archive(package_archive("core-mof:2019-ASR")):
        if len(data) < 6000:  # small cells keep the test quick
            (root / ("sub" if written % 2 else ".") / Path(name).name).write_bytes(data)
            written += 1
        if written == 5:
            break
    shutil.copy(Path(__file__).parent / "data" / "broken" / "syntax_error.cif", root)
    return root


def test_predict_on_a_folder_of_cifs_featurizes_as_the_model_says(cif_folder, tmp_path):
    """The shipped model needs 12 descriptors; the user names only CIFs. The predictions are
    those of featurize --model then predict --graphs, and the broken CIF is a failure."""
    out = tmp_path / "pred.csv"
    assert (
        predict_cli(
            "--model",
            SHIPPED_015,
            cif_folder,
            "--out",
            out,
            "--device",
            "cpu",
            "--threads",
            "1",
            "--jobs",
            "1",
        )
        == 0
    )
    with open(out, newline="") as fh:
        direct = {r["mof_id"]: r for r in csv.DictReader(fh)}
    assert len(direct) == 5
    with open(tmp_path / "pred-failures.csv", newline="") as fh:
        failures = list(csv.DictReader(fh))
    assert [f["mof_id"] for f in failures] == ["syntax_error"]
    assert failures[0]["reason"]

    graphs = tmp_path / "graphs"
    assert featurize_cli(cif_folder, "--model", SHIPPED_015, "--out", graphs, "--jobs", "1") == 0
    assert ShardReader(graphs / "shard-00000.h5").params == read_model(SHIPPED_015).featurization
    two_step = tmp_path / "two_step.csv"
    assert (
        predict_cli(
            "--model",
            SHIPPED_015,
            "--graphs",
            graphs,
            "--out",
            two_step,
            "--device",
            "cpu",
            "--threads",
            "1",
        )
        == 0
    )
    with open(two_step, newline="") as fh:
        assert {r["mof_id"]: r for r in csv.DictReader(fh)} == direct


def test_predict_keeps_graphs_where_asked(cif_folder, tmp_path):
    keep = tmp_path / "kept"
    assert (
        predict_cli(
            "--model",
            SHIPPED_015,
            cif_folder,
            "--out",
            tmp_path / "p.csv",
            "--keep-graphs",
            keep,
            "--jobs",
            "1",
        )
        == 0
    )
    assert len(ShardReader(keep / "shard-00000.h5")) == 5
    assert (keep / "manifest.csv").is_file()


def test_predict_needs_cifs_or_graphs_not_both(trained, real_shards, cif_folder, tmp_path, caplog):
    graphs, _ = real_shards
    out = tmp_path / "p.csv"
    assert predict_cli("--model", trained, cif_folder, "--graphs", graphs, "--out", out) == 2
    assert predict_cli("--model", trained, "--out", out) == 2
    assert caplog.text.count("give either INPUT") == 2
    assert not out.exists()


def test_featurize_takes_a_model_or_parameters_not_both(cif_folder, tmp_path, caplog):
    code = featurize_cli(
        cif_folder, "--model", SHIPPED_015, "--cutoff", "6", "--out", tmp_path / "g"
    )
    assert code == 2
    assert "give --model or --cutoff, not both" in caplog.text
    assert not (tmp_path / "g").exists()


def test_predict_with_a_broken_model_json_names_it(cif_folder, tmp_path, caplog):
    model = tmp_path / "model"
    shutil.copytree(SHIPPED_015, model)
    meta = json.loads((model / "model.json").read_text())
    meta["format_version"] = 99
    (model / "model.json").write_text(json.dumps(meta))
    assert predict_cli("--model", model, cif_folder, "--out", tmp_path / "p.csv") == 2
    assert "model format version 99" in caplog.text and str(model) in caplog.text


def test_mean_pooling_model_writes_uniform_atom_weights(real_shards, tmp_path, write_model_dir):
    """One predict rule for every model: without attention pooling, every atom weighs 1/n and
    the file says which readout made the weights."""
    from mofsieve.attention import read_attention

    graphs, _ = real_shards
    model = tmp_path / "mean"
    write_model_dir(model, variant="atten3", readout="mean")
    out, att = tmp_path / "p.csv", tmp_path / "att.h5"
    assert (
        predict_cli(
            "--model",
            model,
            "--graphs",
            graphs,
            "--out",
            out,
            "--attention",
            att,
            "--device",
            "cpu",
        )
        == 0
    )
    reader = ShardReader(graphs / "shard-00000.h5")
    readout, weights = read_attention(att, set(reader.ids))
    assert readout == "mean"
    for mof_id in reader.ids:
        w = weights[mof_id]
        np.testing.assert_allclose(w, np.full(len(w), 1.0 / len(w)), rtol=1e-6)


def test_predict_on_cuda_without_a_gpu_says_so_in_one_line(trained, real_shards, tmp_path, caplog):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the error path cannot be reached")
    graphs, _ = real_shards
    out = tmp_path / "p.csv"
    assert (
        predict_cli("--model", trained, "--graphs", graphs, "--out", out, "--device", "cuda") == 2
    )
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "torch sees no usable GPU" in errors[0].getMessage()
    assert "Traceback" not in caplog.text and not out.exists()


# ---------------------------------------------------------------------------------------------
# one predict job for several shards (--out-dir), and what it imports


def test_predict_out_dir_writes_each_shards_files_as_one_csv_would(
    trained, real_shards, tmp_path, caplog
):
    """``--out-dir``: shard-K.csv and attention-K.h5 per graph shard shard-K.h5, the same
    rows and weights as one ``--out`` CSV over both shards; the log sets model time against
    the process's life."""
    from mofsieve.attention import read_attention

    graphs, _ = real_shards
    out, att, folder = tmp_path / "all.csv", tmp_path / "all.h5", tmp_path / "job"
    common = ("--model", trained, "--graphs", graphs, "--device", "cpu", "--batch-atoms", "300")
    with caplog.at_level("INFO"):
        assert predict_cli(*common, "--out", out, "--attention", att) == 0
        assert predict_cli(*common, "--out-dir", folder, "--attention", folder) == 0
    assert sorted(p.name for p in folder.iterdir()) == [
        "attention-00000.h5", "attention-00001.h5", "shard-00000.csv", "shard-00001.csv",
    ]  # fmt: skip
    whole = out.read_text().splitlines()
    parts = [(folder / f"shard-0000{k}.csv").read_text().splitlines() for k in (0, 1)]
    assert parts[0][0] == parts[1][0] == whole[0]  # the header
    assert parts[0][1:] + parts[1][1:] == whole[1:]
    assert len(parts[0]) - 1 == len(ShardReader(graphs / "shard-00000.h5")) == 7
    ids = {r.split(",")[0] for r in whole[1:]}
    readout, weights = read_attention(att, ids)
    for k in (0, 1):
        reader = ShardReader(graphs / f"shard-0000{k}.h5")
        readout_k, weights_k = read_attention(folder / f"attention-0000{k}.h5", set(reader.ids))
        assert readout_k == readout and set(weights_k) == set(reader.ids)
        for mof_id, w in weights_k.items():
            np.testing.assert_array_equal(w, weights[mof_id])
    timing = [r.getMessage() for r in caplog.records if "wall/model" in r.getMessage()]
    assert len(timing) == 2  # one line a job, either way
    for line in timing:
        assert line.startswith("12 MOFs in 2 shard(s): model ") and "since the process" in line
        model_s, total_s = map(float, re.search(r"model ([\d.]+) s of ([\d.]+) s", line).groups())
        assert 0 < model_s <= total_s  # the process (pytest here) is older than its predicting


def test_predict_out_dir_failing_midway_keeps_only_the_shards_it_finished(
    trained, real_shards, tmp_path, caplog
):
    """A shard that breaks after the first one was predicted: the first shard's files are
    complete, the broken one's absent, and no temporary file is left behind."""
    graphs, _ = real_shards
    broken = tmp_path / "graphs"
    shutil.copytree(graphs, broken)
    with h5py.File(broken / "shard-00001.h5", "a") as h5:
        del h5["edge_dist"]  # parameters still readable, graphs not
    folder = tmp_path / "job"
    common = ("--model", trained, "--device", "cpu", "--attention", folder)
    assert predict_cli(*common, "--graphs", broken, "--out-dir", folder) != 0
    assert "edge_dist" in caplog.text
    assert sorted(p.name for p in folder.iterdir()) == ["attention-00000.h5", "shard-00000.csv"]
    assert predict_cli(*common, "--graphs", graphs / "shard-00000.h5", "--out-dir", tmp_path) == 0
    assert (folder / "shard-00000.csv").read_bytes() == (tmp_path / "shard-00000.csv").read_bytes()


def test_predict_out_dir_needs_graph_shards_with_distinct_names(
    trained, real_shards, cif_folder, tmp_path, caplog
):
    graphs, _ = real_shards
    renamed = tmp_path / "graphs.h5"
    shutil.copy(graphs / "shard-00000.h5", renamed)
    again = tmp_path / "again"
    again.mkdir()
    shutil.copy(graphs / "shard-00001.h5", again)
    folder = tmp_path / "job"
    with caplog.at_level("ERROR"):
        assert predict_cli("--model", trained, "--graphs", renamed, "--out-dir", folder) == 2
        assert predict_cli("--model", trained, "--graphs", graphs, again, "--out-dir", folder) == 2
        assert predict_cli("--model", trained, cif_folder, "--out-dir", folder) == 2
    assert f"{renamed}: --out-dir names its outputs after graph shards shard-K.h5" in caplog.text
    assert (
        f"two graph shards named shard-00001.h5 ({graphs / 'shard-00001.h5'}, "
        f"{again / 'shard-00001.h5'})" in caplog.text
    )
    assert "--out-dir takes --graphs" in caplog.text
    assert not folder.exists()


DEFERRED_PACKAGE = """
import sys
sys.path.insert(0, {root!r})
from mofsieve import lean_imports
assert lean_imports.defer([("pkg", "pkg.heavy")]) == ["pkg.heavy"]
import pkg.heavy                      # binds the stand-in: nothing of heavy runs
print("after import", pkg.RAN, lean_imports.is_deferred("pkg.heavy"))
import pkg.heavy.part                 # a submodule: heavy's own code runs first (it imports
print("after submodule", pkg.RAN, lean_imports.is_deferred("pkg.heavy"), pkg.heavy.part.VALUE)
import pkg.heavy.other                # part itself: once); one it does not import: after it
print("then", pkg.RAN, pkg.heavy.NAME, pkg.heavy.other.__spec__.name)
"""


def test_a_deferred_module_runs_only_when_used_and_then_as_an_import_would(tmp_path):
    import subprocess
    import sys

    heavy = tmp_path / "pkg" / "heavy"
    heavy.mkdir(parents=True)
    (tmp_path / "pkg" / "__init__.py").write_text("RAN = []\n")
    (heavy / "__init__.py").write_text(
        "import pkg\npkg.RAN.append('heavy')\nNAME = __name__\nfrom . import part\n"
    )
    (heavy / "part.py").write_text("import pkg\npkg.RAN.append('part')\nVALUE = 7\n")
    (heavy / "other.py").write_text("import pkg\npkg.RAN.append('other')\n")
    script = DEFERRED_PACKAGE.format(root=str(tmp_path))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "after import [] True",
        "after submodule ['heavy', 'part'] False 7",
        "then ['heavy', 'part', 'other'] pkg.heavy pkg.heavy.other",
    ]


def test_a_predict_job_never_runs_the_parts_of_torch_and_pyg_it_does_not_use(
    trained, real_shards, tmp_path, fresh_job
):
    """torch._dynamo and PyG's datasets stay unrun through a whole predict (in a fresh
    process, as a job is), and the predictions are those of a process that imported them."""
    graphs, _ = real_shards
    args = ["predict", "--model", str(trained), "--graphs", str(graphs), "--device", "cpu",
            "--threads", "1"]  # fmt: skip
    assert fresh_job([*args, "--out", str(tmp_path / "job.csv")]) == ["0", "True", "True"]
    import torch._dynamo  # noqa: F401  # this process has both: the reference
    import torch_geometric.datasets  # noqa: F401

    assert predict_cli(*args[1:], "--out", tmp_path / "here.csv") == 0
    assert (tmp_path / "job.csv").read_bytes() == (tmp_path / "here.csv").read_bytes()
