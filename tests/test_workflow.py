"""The Snakemake workflow: config validation, lint, the DAG at 300,000 CIFs, MPI mode."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mofsieve import config as mconfig

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def minimal(**overrides: object) -> dict:
    cfg: dict = {
        "inputs": ["cifs"],
        "target": {"pressure": 0.15},
        "models": {"0.15": "models/low", "16": "models/high"},
    }
    cfg.update(overrides)
    return cfg


def snakemake(workdir: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{SNAKEMAKE.parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        [str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# --------------------------------------------------------------------------------- config


def test_shipped_config_is_valid_and_defaults_fill_omitted_keys() -> None:
    shipped = mconfig.load_config_file(REPO / "config.yaml", SCHEMA)
    assert shipped["inputs"] == ["core-mof:2019-ASR"]
    assert shipped["flag"] == {"top_fraction": 0.05}
    assert mconfig.model_labels(shipped) == ["0.15bar"]
    cfg = mconfig.validate_config(minimal(), SCHEMA)
    assert cfg["shard_size"] == 500 and cfg["device"] == "auto"
    assert cfg["gcmc"]["cutoff_A"] == 12.0 and cfg["featurize"]["mpi"] is False
    assert cfg["target"]["temperature_K"] == 298


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"shard_sise": 10}, "'shard_sise' was unexpected"),
        ({"shard_size": 0}, "shard_size: 0 is less than the minimum of 1"),
        ({"target": {"pressure": "high"}}, "target.pressure: 'high' is neither a pressure"),
        ({"flag": {"top_fraction": 1.5}}, "flag.top_fraction: 1.5 is greater than the maximum"),
        ({"flag": {"top_fraction": 0.1, "top_count": 5}}, "flag: give exactly one of"),
        ({"device": "tpu"}, "device: 'tpu' is not one of"),
        ({"gcmc": {"cutof_A": 12}}, "gcmc: Additional properties are not allowed ('cutof_A'"),
        ({"target": {"pressure": 1}}, "target.pressure: no model for 1 bar"),
        ({"models": {"0.15": "m"}, "target": {"pressure": "working_capacity"}},
         "target.pressure: working_capacity needs models at two pressures"),
    ],
)  # fmt: skip
def test_bad_config_error_names_the_key(overrides: dict, named: str) -> None:
    with pytest.raises(mconfig.ConfigError) as err:
        mconfig.validate_config(minimal(**overrides), SCHEMA)
    assert named in str(err.value)


def test_working_capacity_uses_highest_minus_lowest_pressure_model() -> None:
    cfg = mconfig.validate_config(
        minimal(target={"pressure": "working_capacity"}, models={0.15: "lo", 16: "hi"}), SCHEMA
    )
    assert mconfig.model_labels(cfg) == ["16bar", "0.15bar"]
    assert mconfig.model_dir(cfg, "16bar") == "hi"
    assert mconfig.gcmc_pressures(cfg) == ["0.15", "16"]
    assert mconfig.quantity(cfg) == "CO2 working capacity 16→0.15 bar, 298 K"


def test_featurization_follows_the_models_and_refuses_disagreeing_ones(tmp_path: Path) -> None:
    for name, cutoff, extra in [("a", 8.0, ["density"]), ("b", 8.0, ["lcd", "density"])]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.json").write_text(
            f'{{"featurization": {{"cutoff": {cutoff}, "max_neighbors": 12, '
            f'"global_feature_names": {extra!r}}}}}'.replace("'", '"')
        )
    cfg = mconfig.validate_config(
        minimal(target={"pressure": "working_capacity"},
                models={"0.15": str(tmp_path / "a"), "16": str(tmp_path / "b")}),
        SCHEMA,
    )  # fmt: skip
    assert mconfig.featurize_arguments(cfg) == (
        "--cutoff 8.0 --max-neighbors 12 --global-features lcd,density"
    )
    (tmp_path / "a" / "model.json").write_text('{"featurization": {"cutoff": 6.0}}')
    with pytest.raises(mconfig.ConfigError, match="disagree on featurization cutoff"):
        mconfig.featurize_arguments(cfg)


def test_attention_outputs_only_for_attention_pooling_models(tmp_path: Path) -> None:
    for name, readout in [("att", "attention"), ("mean", "mean")]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.json").write_text(f'{{"init": {{"readout": "{readout}"}}}}')
    cfg = mconfig.validate_config(
        minimal(models={"0.15": str(tmp_path / "att"), "16": str(tmp_path / "mean")}), SCHEMA
    )
    assert (
        mconfig.report_attention_argument(cfg) == "--attention results/screen/predictions/0.15bar"
    )
    cfg["target"]["pressure"] = "working_capacity"  # ranks with the 16 bar (mean) model too
    assert mconfig.report_attention_argument(cfg) == ""
    assert not mconfig.attention_pooling([str(tmp_path / "absent")])


def test_shard_ids_come_from_the_manifest(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("mof_id,source,sha1,n_bytes,shard\na,x,s,1,0\nb,y,s,1,0\nc,z,s,1,1\n")
    assert mconfig.shard_ids(manifest) == ["00000", "00001"]
    (tmp_path / "bad.csv").write_text("mof_id,source\na,b\n")
    with pytest.raises(mconfig.ConfigError, match="no shard column"):
        mconfig.shard_ids(tmp_path / "bad.csv")


# ------------------------------------------------------------------------------- workflow


def test_rule_environment_pins_what_the_package_pins() -> None:
    """envs/mofsieve.yaml (``--sdm conda``) must install what pyproject.toml pins, at the same
    versions; snakemake itself runs outside the rule environment."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = [d for d in project["dependencies"] + project["optional-dependencies"]["demo"]
              if not d.startswith("snakemake")]
    env = yaml.safe_load((REPO / "envs" / "mofsieve.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert sorted(wanted) == sorted(d for d in pip if d != "..")
    assert ".." in pip  # mofsieve itself, from this checkout


def test_lint_is_clean() -> None:
    result = snakemake(REPO, "--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr


def test_bad_config_stops_snakemake_with_the_key_named(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(minimal(top_fraction=0.1)))
    result = snakemake(tmp_path, "-n")
    assert result.returncode != 0
    assert "(top level): Additional properties are not allowed ('top_fraction' was unexpected)" in (
        result.stdout + result.stderr
    )


def synthetic_run(tmp_path: Path, n_cifs: int, shard_size: int, **overrides: object) -> None:
    """A run folder whose manifest already exists: the DAG after the manifest checkpoint."""
    for name in ("low", "high"):
        (tmp_path / "models" / name).mkdir(parents=True)
        (tmp_path / "models" / name / "model.json").write_text('{"unit": "mol/kg"}')
    cfg = minimal(run="big", shard_size=shard_size, **overrides)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    run_dir = tmp_path / "results" / "big"
    run_dir.mkdir(parents=True)
    with open(run_dir / "manifest.csv", "w") as fh:
        fh.write("mof_id,source,sha1,n_bytes,shard\n")
        sha = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        fh.writelines(
            f"MOF{i:06d},cifs/MOF{i:06d}.cif,{sha},1000,{i // shard_size}\n" for i in range(n_cifs)
        )


def job_counts(output: str) -> dict[str, int]:
    table = output.split("Job stats:", 1)[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)}


@pytest.mark.slow
def test_dag_for_300000_cifs_builds_in_under_30_seconds(tmp_path: Path) -> None:
    synthetic_run(tmp_path, 300_000, 500, target={"pressure": "working_capacity"})
    start = time.perf_counter()
    result = snakemake(tmp_path, "-n", "--cores", "2")
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stderr[-3000:]
    counts = job_counts(result.stdout)
    assert counts["featurize"] == 600
    assert counts["predict"] == 1200  # two models for the working capacity
    assert counts["rank"] == counts["gcmc"] == counts["report"] == 1
    assert "manifest" not in counts
    assert elapsed < 30, f"DAG for 300,000 CIFs took {elapsed:.1f} s"


def test_mpi_mode_featurizes_every_shard_in_one_job(tmp_path: Path) -> None:
    synthetic_run(
        tmp_path, 1000, 100, featurize={"mpi": True, "mpi_tasks": 2, "mpi_launcher": "srun"}
    )
    result = snakemake(tmp_path, "-n", "--cores", "2", "-p")
    assert result.returncode == 0, result.stderr[-3000:]
    counts = job_counts(result.stdout)
    assert counts["featurize_mpi"] == 1 and counts["predict"] == 10
    assert "featurize" not in counts
    assert "srun -n 2 mofsieve featurize --mpi --manifest results/big/manifest.csv" in result.stdout


def test_train_target_trains_on_this_runs_graphs(tmp_path: Path) -> None:
    synthetic_run(tmp_path, 1000, 250)
    (tmp_path / "labels.csv").write_text("mof_id,co2\nMOF000001,1.0\n")
    result = snakemake(
        tmp_path, "-n", "-p", "train", "--config", "train={labels: labels.csv, target: co2}"
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    counts = job_counts(result.stdout)
    assert counts == {"featurize": 4, "train": 1, "total": 5}
    assert (
        "mofsieve train --labels labels.csv --target co2 --graphs results/big/graphs"
        " --out models/my_model" in result.stdout
    )


def test_train_target_without_labels_says_what_to_set(tmp_path: Path) -> None:
    synthetic_run(tmp_path, 100, 50)
    result = snakemake(tmp_path, "-n", "train")
    assert result.returncode != 0
    assert "set train.labels" in result.stdout + result.stderr


def resources_of_a_predict_job(output: str) -> str:
    block = output.split("rule predict:", 1)[1]
    return next(line for line in block.splitlines() if line.strip().startswith("resources:"))


def test_slurm_profile_sends_predict_to_the_gpu_partition_and_ci_overlay_to_debug(
    tmp_path: Path,
) -> None:
    synthetic_run(tmp_path, 1000, 500)
    shipped = snakemake(tmp_path, "-n", "--profile", str(REPO / "slurm"))
    assert shipped.returncode == 0, shipped.stdout[-3000:] + shipped.stderr[-3000:]
    resources = resources_of_a_predict_job(shipped.stdout)
    assert "slurm_partition=gpu" in resources and "gpu=1" in resources
    overlay = snakemake(
        tmp_path, "-n", "--profile", str(REPO / "slurm"),
        "--workflow-profile", str(REPO / ".ci" / "slurm-profile"),
    )  # fmt: skip
    assert overlay.returncode == 0, overlay.stdout[-3000:] + overlay.stderr[-3000:]
    resources = resources_of_a_predict_job(overlay.stdout)
    assert "slurm_partition=debug" in resources and "gpu=0" in resources
    assert "slurm_account=root" in resources


# ----------------------------------------------------- end to end, local executor, kill -9


def _small_core_mof_tar(path: Path, count: int) -> Path:
    """``count`` real CIFs from the core-mof package plus one broken CIF, as a tar.gz."""
    import io
    import tarfile

    from mofsieve.manifest import package_archive

    n = 0
    with (
        tarfile.open(package_archive("core-mof:2019-ASR"), "r|*") as src,
        tarfile.open(path, "w:gz") as dst,
    ):
        for member in src:
            if member.isfile() and member.name.endswith(".cif"):
                dst.addfile(member, src.extractfile(member))
                n += 1
                if n == count:
                    break
        broken = b"data_broken\nnot a CIF at all\n"
        info = tarfile.TarInfo("x/BROKEN.cif")
        info.size = len(broken)
        dst.addfile(info, io.BytesIO(broken))
    return path


@pytest.fixture(scope="module")
def tiny_screen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with 24 real CIFs (+1 broken), a tiny model trained on made-up labels, and a
    config for them; the model is real (mofsieve train) so predict runs for real."""
    pytest.importorskip("CoRE_MOF", reason="the core-mof package (pip install '.[demo]')")
    root = tmp_path_factory.mktemp("tiny_screen")
    tar = _small_core_mof_tar(root / "cifs.tar.gz", 24)
    env = {**os.environ, "PATH": f"{SNAKEMAKE.parent}{os.pathsep}{os.environ['PATH']}"}
    mofsieve = str(SNAKEMAKE.with_name("mofsieve"))
    subprocess.run(
        [mofsieve, "featurize", str(tar), "--out", str(root / "train_graphs"), "--jobs", "1"],
        check=True, env=env, capture_output=True, timeout=300,
    )  # fmt: skip
    ids = [line.split(",")[0] for line in (root / "train_graphs" / "manifest.csv").open()][1:]
    rng = __import__("random").Random(0)
    (root / "labels.csv").write_text(
        "mof_id,co2\n" + "".join(f"{m},{rng.uniform(0, 5):.3f}\n" for m in ids)
    )
    subprocess.run(
        [mofsieve, "train", "--labels", str(root / "labels.csv"), "--target", "co2",
         "--graphs", str(root / "train_graphs"), "--out", str(root / "model"),
         "--epochs", "2", "--ensemble", "2", "--threads", "1", "--readout", "attention"],
        check=True, env=env, capture_output=True, timeout=600,
    )  # fmt: skip
    cfg = minimal(
        run="tiny",
        inputs=[str(tar)],
        shard_size=6,
        models={"0.15": str(root / "model")},
        device="cpu",
        flag={"top_count": 3},
        featurize={"threads": 1},
        predict={"threads": 1},
        report={"pictures": 2},
    )
    (root / "config.yaml").write_text(yaml.safe_dump(cfg))
    return root


def _copy_case(tiny_screen: Path, dest: Path) -> Path:
    dest.mkdir()
    (dest / "config.yaml").write_text((tiny_screen / "config.yaml").read_text())
    return dest


@pytest.mark.slow
def test_local_run_end_to_end_then_kill_9_halfway_and_restart_is_byte_identical(
    tiny_screen: Path, tmp_path: Path
) -> None:
    import signal

    straight = _copy_case(tiny_screen, tmp_path / "straight")
    result = snakemake(straight, "--cores", "2", timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    run = straight / "results" / "tiny"
    expected = (run / "ranked.csv").read_bytes()
    n_failed = (run / "failures.csv").read_bytes().count(b"\n") - 1
    assert expected.count(b"\n") - 1 + n_failed == 25  # every CIF ranked or failed
    assert expected.count(b"\n") - 1 >= 20
    assert b"BROKEN" in (run / "failures.csv").read_bytes()
    assert (run / "gcmc" / "run_raspa.sbatch").is_file()
    assert (run / "report.html").stat().st_size > 10_000

    # the same run, killed (snakemake and its jobs, SIGKILL) while a predict job is running
    killed = _copy_case(tiny_screen, tmp_path / "killed")
    env = {**os.environ, "PATH": f"{SNAKEMAKE.parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen(
        [str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--cores", "1"],
        cwd=killed, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    run = killed / "results" / "tiny"
    deadline = time.monotonic() + 600
    running = None
    while running is None and time.monotonic() < deadline and proc.poll() is None:
        for log in sorted((run / "logs" / "predict").glob("*/*.log")):
            out = run / "predictions" / log.parent.name / f"shard-{log.stem}.csv"
            if not out.exists():
                running = log
                break
        time.sleep(0.05)
    assert running is not None, "never caught a predict job running"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (run / "ranked.csv").exists()
    incomplete = list((killed / ".snakemake" / "incomplete").rglob("*"))
    assert incomplete, "the kill did not land inside a job"

    assert snakemake(killed, "--unlock").returncode == 0
    result = snakemake(killed, "--cores", "2", "--rerun-incomplete", timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert (run / "ranked.csv").read_bytes() == expected
