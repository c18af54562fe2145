"""The Snakemake workflow: config validation, lint, the DAG at 300,000 CIFs, MPI mode."""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
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
    assert shipped["flag"] == {
        "top_fraction": 0.05,
        "skip_checks": ["isolated_atom", "coordination"],
    }
    assert mconfig.model_labels(shipped) == ["0.15bar"]
    cfg = mconfig.validate_config(minimal(), SCHEMA)
    assert cfg["shard_size"] == 500 and cfg["device"] == "auto"
    assert cfg["gcmc"]["cutoff_A"] == 12.0 and cfg["featurize"]["mpi"] is False
    assert cfg["featurize"]["shards_per_job"] == cfg["predict"]["shards_per_job"] == 10
    assert shipped["featurize"]["shards_per_job"] == shipped["predict"]["shards_per_job"] == 10
    assert cfg["target"]["temperature_K"] == 298
    from mofsieve.warning_records import CHECKS, DEFAULT_SKIP_CHECKS

    # the schema's defaults and choices are the code's (mofsieve rank, mofsieve featurize)
    assert cfg["flag"]["skip_checks"] == list(DEFAULT_SKIP_CHECKS)
    assert cfg["ingest"] == {"partial_occupancy": "reject"}
    skip_items = mconfig.load_schema(SCHEMA)["properties"]["flag"]["properties"]["skip_checks"]
    assert skip_items["items"]["enum"] == list(CHECKS)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"shard_sise": 10}, "'shard_sise' was unexpected"),
        ({"shard_size": 0}, "shard_size: 0 is less than the minimum of 1"),
        ({"target": {"pressure": "high"}}, "target.pressure: 'high' is neither a pressure"),
        ({"flag": {"top_fraction": 1.5}}, "flag.top_fraction: 1.5 is greater than the maximum"),
        ({"flag": {"top_fraction": 0.1, "top_count": 5}}, "flag: give exactly one of"),
        ({"flag": {"skip_checks": []}}, "flag: give exactly one of"),
        ({"flag": {"top_count": 5, "skip_checks": ["coordinaton"]}},
         "flag.skip_checks.0: 'coordinaton' is not one of ['isolated_atom'"),
        ({"ingest": {"partial_occupancy": "drop"}},
         "ingest.partial_occupancy: 'drop' is not one of ['reject', 'keep']"),
        ({"device": "tpu"}, "device: 'tpu' is not one of"),
        ({"gcmc": {"cutof_A": 12}}, "gcmc: Additional properties are not allowed ('cutof_A'"),
        ({"target": {"pressure": 1}}, "target.pressure: no model for 1 bar"),
        ({"models": {"0.15": "m"}, "target": {"pressure": "working_capacity"}},
         "target.pressure: working_capacity needs models at two pressures"),
    ],
)  # fmt: skip
def test_bad_config_error_names_the_key(overrides: dict, named: str) -> None:
    with pytest.raises(mconfig.ConfigError, match=re.escape(named)):
        mconfig.validate_config(minimal(**overrides), SCHEMA)


def test_working_capacity_uses_highest_minus_lowest_pressure_model() -> None:
    cfg = mconfig.validate_config(
        minimal(target={"pressure": "working_capacity"}, models={0.15: "lo", 16: "hi"}), SCHEMA
    )
    assert mconfig.model_labels(cfg) == ["16bar", "0.15bar"]
    assert mconfig.model_dir(cfg, "16bar") == "hi"
    assert mconfig.gcmc_pressures(cfg) == ["0.15", "16"]
    assert mconfig.quantity(cfg) == "CO2 working capacity 16→0.15 bar, 298 K"


def test_featurization_follows_the_models_and_refuses_disagreeing_ones(
    tmp_path: Path, write_model_dir
) -> None:
    write_model_dir(tmp_path / "a", global_features=("density",), pressure_bar=0.15)
    write_model_dir(tmp_path / "b", global_features=("lcd", "density"), pressure_bar=16)
    cfg = mconfig.validate_config(
        minimal(target={"pressure": "working_capacity"},
                models={"0.15": str(tmp_path / "a"), "16": str(tmp_path / "b")}),
        SCHEMA,
    )  # fmt: skip
    # the ranking (16 bar) model's features first, then those only the other one has
    assert mconfig.featurize_arguments(cfg) == [
        "--cutoff", "8.0", "--max-neighbors", "12", "--global-features", "lcd,density",
    ]  # fmt: skip
    write_model_dir(tmp_path / "a", cutoff=6.0)
    with pytest.raises(mconfig.ConfigError, match="disagree on featurization cutoff"):
        mconfig.featurize_arguments(cfg)


def test_models_not_trained_yet_add_nothing_and_a_broken_one_names_its_file(
    tmp_path: Path, write_model_dir
) -> None:
    cfg = mconfig.validate_config(minimal(models={"0.15": str(tmp_path / "untrained")}), SCHEMA)
    assert mconfig.featurize_arguments(cfg) == []  # the featurizer's defaults
    assert mconfig.model_featurization([str(tmp_path / "untrained")]) is None
    write_model_dir(tmp_path / "m", global_features=("density",))
    cfg["models"]["0.15"] = str(tmp_path / "m")
    assert mconfig.featurize_arguments(cfg)[-2:] == ["--global-features", "density"]
    model_json = tmp_path / "m" / "model.json"
    assert mconfig.model_json(cfg, "0.15bar") == str(model_json)
    assert mconfig.train_model_json(cfg) == "models/my_model/model.json"
    model_json.write_text('{"unit": "mol/kg"}')  # hand-written, not a mofsieve model
    with pytest.raises(mconfig.ConfigError, match=re.escape(str(model_json))):
        mconfig.featurize_arguments(cfg)
    model_json.write_text("{not json")
    with pytest.raises(mconfig.ConfigError, match=re.escape(f"{model_json} is not valid JSON")):
        mconfig.featurize_arguments(cfg)


def test_rule_arguments_are_lists_of_words() -> None:
    """Each becomes ``{params.x:q}`` in a rule: every word quoted on its own."""
    cfg = mconfig.validate_config(
        minimal(flag={"top_count": 7}, train={"extra_args": "--epochs 5 --gas 'CO2 dry'"}), SCHEMA
    )
    assert mconfig.flag_arguments(cfg) == ["--top-count", "7"]
    cfg["flag"] = {"top_fraction": 0.05}
    assert mconfig.flag_arguments(cfg) == ["--top-fraction", "0.05"]
    assert mconfig.skip_checks({"flag": {"skip_checks": ["isolated_atom", "coordination"]}}) == (
        "isolated_atom,coordination"
    )
    assert mconfig.skip_checks({"flag": {"skip_checks": []}}) == ""  # {x:q} makes it ''
    assert mconfig.train_extra_arguments(cfg) == ["--epochs", "5", "--gas", "CO2 dry"]
    gcmc = mconfig.gcmc_arguments(cfg)
    assert gcmc[:4] == ["--temperature", "298", "--pressure", "0.15"]
    assert gcmc[-2:] == ["--time-limit", "48:00:00"]
    cfg["train"]["extra_args"] = "--gas 'unclosed"
    with pytest.raises(mconfig.ConfigError, match="train.extra_args"):
        mconfig.train_extra_arguments(cfg)


# ------------------------------------------------------ config sources: file, --configfile, --config


def test_a_later_source_replaces_the_choice_of_flag_and_the_models_map_whole() -> None:
    shipped = mconfig.read_config_file(REPO / "config.yaml")
    cfg, origins = mconfig.merge_config_sources(
        [
            ("config.yaml", shipped),
            ("my.yaml", {"flag": {"top_count": 100}, "target": {"pressure": 16},
                         "models": {16: "mine/16bar"}, "featurize": {"threads": 4}}),
            ("--config", {"featurize": {"mpi": True}}),
        ]
    )  # fmt: skip
    # not also config.yaml's top_fraction; its skip_checks stay
    assert cfg["flag"] == {"skip_checks": shipped["flag"]["skip_checks"], "top_count": 100}
    assert cfg["models"] == {"16": "mine/16bar"}  # not also config.yaml's 0.15 bar model
    assert cfg["target"] == {"gas": "CO2", "temperature_K": 298, "pressure": 16}
    assert cfg["featurize"] == {**shipped["featurize"], "threads": 4, "mpi": True}
    assert origins[("flag", "top_count")] == "my.yaml"
    assert ("flag", "top_fraction") not in origins
    assert origins[("target", "gas")] == "config.yaml"
    assert origins[("featurize", "mpi")] == "--config"
    validated = mconfig.load_config_sources(
        [("config.yaml", shipped), ("my.yaml", {"flag": {"top_count": 100}})], SCHEMA
    )
    assert validated["flag"] == {"skip_checks": ["isolated_atom", "coordination"], "top_count": 100}
    # a source that gives skip_checks only keeps the choice made before it
    cfg, origins = mconfig.merge_config_sources(
        [("config.yaml", shipped), ("--config", {"flag": {"skip_checks": []}})]
    )
    assert cfg["flag"] == {"top_fraction": 0.05, "skip_checks": []}
    assert origins[("flag", "top_fraction")] == "config.yaml"


@pytest.mark.parametrize(
    ("given", "typed"),
    [
        # snakemake's parse of --config flag='{top_count: 100}' (YAML base loader: all strings)
        ({"flag": {"top_count": "100"}}, {"flag": {"top_count": 100}}),
        ({"flag": "{top_fraction: 0.1}"}, {"flag": {"top_fraction": 0.1}}),
        ({"target": {"pressure": "16"}}, {"target": {"pressure": 16}}),
        ({"target": {"pressure": "working_capacity"}},
         {"target": {"pressure": "working_capacity"}}),
        ({"featurize": {"mpi": "true", "mpi_tasks": "8"}},
         {"featurize": {"mpi": True, "mpi_tasks": 8}}),
        ({"inputs": ["a b.cif", "16"]}, {"inputs": ["a b.cif", "16"]}),  # strings stay strings
        ({"train": {"target": "16", "graphs": "[g1, g2]"}},
         {"train": {"target": "16", "graphs": ["g1", "g2"]}}),
        ({"models": {"0.15": "m"}}, {"models": {"0.15": "m"}}),
        ({"run": 2024, "shard_size": 10}, {"run": "2024", "shard_size": 10}),
        ({"no_such_key": "1"}, {"no_such_key": "1"}),  # left for validation to name
    ],
)  # fmt: skip
def test_command_line_values_are_typed_as_the_schema_wants(given: dict, typed: dict) -> None:
    assert mconfig.command_line_values(given, mconfig.load_schema(SCHEMA)) == typed


def test_command_line_object_that_is_not_yaml_names_the_key() -> None:
    with pytest.raises(mconfig.ConfigError, match=r"--config: flag: '\{top_count: 1' is not valid"):
        mconfig.command_line_values({"flag": "{top_count: 1"}, mconfig.load_schema(SCHEMA))


@pytest.mark.parametrize(
    ("sources", "named"),
    [
        ([("my.yaml", {"flag": {"top_count": 0}})],
         "  my.yaml: flag.top_count: 0 is less than the minimum of 1"),
        ([("my.yaml", {"gcmc": {"cycles": 5}}), ("--config", {"gcmc": {"cutof_A": 1}})],
         "  --config: gcmc: Additional properties are not allowed ('cutof_A'"),
        ([("--config", {"shard_sise": 10})],
         "  --config: (top level): Additional properties are not allowed ('shard_sise'"),
        ([("my.yaml", {"target": {"pressure": "high"}})],
         "  my.yaml: target.pressure: 'high' is neither a pressure"),
        ([("my.yaml", {"target": {"pressure": 1}})],
         "my.yaml: target.pressure: no model for 1 bar; config.yaml: models has"),
        ([("--config", {"target": {"pressure": "working_capacity"}, "models": {"16": "m"}})],
         "--config: target.pressure: working_capacity needs models at two pressures"),
    ],
)  # fmt: skip
def test_errors_name_the_source_and_the_key(sources: list, named: str) -> None:
    base = ("config.yaml", mconfig.read_config_file(REPO / "config.yaml"))
    with pytest.raises(mconfig.ConfigError, match=re.escape(named)):
        mconfig.load_config_sources([base, *sources], SCHEMA)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_config_files_that_cannot_be_read_are_named(tmp_path: Path) -> None:
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    (tmp_path / "broken.yaml").write_text("flag: {top_count: 1\n")
    with pytest.raises(mconfig.ConfigError, match="list.yaml: holds a list, not a mapping"):
        mconfig.read_config_file(tmp_path / "list.yaml")
    with pytest.raises(mconfig.ConfigError, match="broken.yaml: not valid YAML"):
        mconfig.read_config_file(tmp_path / "broken.yaml")
    assert mconfig.read_config_file(_write(tmp_path / "empty.yaml", "")) == {}


def test_sources_of_a_snakemake_run_come_in_precedence_order(tmp_path: Path) -> None:
    from types import SimpleNamespace

    own = _write(tmp_path / "config.yaml", "run: own\nflag: {top_fraction: 0.05}\n")
    given = _write(tmp_path / "my.yaml", "run: mine\n")
    settings = SimpleNamespace(
        configfiles=[given], config={"flag": {"top_count": "3"}}, replace_workflow_config=False
    )
    # snakemake's workflow.configfiles: the --configfile ones, then the Snakefile's own
    workflow = SimpleNamespace(config_settings=settings, configfiles=[given, str(own)])
    sources = mconfig.workflow_config_sources(workflow, SCHEMA)
    assert [(os.path.basename(name), values) for name, values in sources] == [
        ("config.yaml", {"run": "own", "flag": {"top_fraction": 0.05}}),
        ("my.yaml", {"run": "mine"}),
        ("--config", {"flag": {"top_count": 3}}),
    ]
    settings.replace_workflow_config = True  # --replace-workflow-config drops the own file
    assert [name for name, _ in mconfig.workflow_config_sources(workflow, SCHEMA)] == [
        sources[1][0], "--config",
    ]  # fmt: skip


def test_shard_ids_come_from_the_manifest(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("mof_id,source,sha1,n_bytes,shard\na,x,s,1,0\nb,y,s,1,0\nc,z,s,1,1\n")
    assert mconfig.shard_ids(manifest) == ["00000", "00001"]
    (tmp_path / "bad.csv").write_text("mof_id,source\na,b\n")
    with pytest.raises(mconfig.ConfigError, match="bad.csv is not a mofsieve manifest"):
        mconfig.shard_ids(tmp_path / "bad.csv")
    assert mconfig.jobs_of(manifest, 1) == ["00000-00000", "00001-00001"]
    assert mconfig.jobs_of(manifest, 10) == ["00000-00001"]


def test_jobs_take_consecutive_shards_and_the_last_one_the_rest() -> None:
    assert mconfig.job_names(7, 3) == ["00000-00002", "00003-00005", "00006-00006"]
    assert mconfig.job_names(6, 3) == ["00000-00002", "00003-00005"]
    assert mconfig.job_names(600, 10)[-1] == "00590-00599" and len(mconfig.job_names(600, 10)) == 60
    every = [s for job in mconfig.job_names(23, 4) for s in mconfig.job_shards(job)]
    assert every == [f"{k:05d}" for k in range(23)]  # each shard in exactly one job, in order
    assert mconfig.job_folder("results/r/graphs", "00003-00005") == (
        "results/r/graphs/shards-00003-00005"
    )
    with pytest.raises(mconfig.ConfigError, match="shards_per_job must be at least 1, not 0"):
        mconfig.job_names(5, 0)
    with pytest.raises(mconfig.ConfigError, match="cores must be at least 1, not 0"):
        mconfig.job_names(5, 2, cores=0)
    with pytest.raises(mconfig.ConfigError, match="'00003' is not a job name FFFFF-LLLLL"):
        mconfig.job_shards("00003")


@pytest.mark.parametrize(
    ("n_shards", "per_job", "cores", "sizes"),
    [
        (25, 10, 2, [7, 6, 6, 6]),  # 3 jobs of at most 10 → 4, a multiple of the cores
        (20, 10, 2, [10, 10]),  # already a multiple: as on one core
        (600, 10, 4, [10] * 60),
        (7, 2, 3, [2, 1, 1, 1, 1, 1]),  # 4 jobs → 6
        (3, 10, 8, [1, 1, 1]),  # never more jobs than shards
    ],
)
def test_on_several_cores_jobs_come_in_a_multiple_of_the_cores_and_even(
    n_shards: int, per_job: int, cores: int, sizes: list[int]
) -> None:
    jobs = mconfig.job_names(n_shards, per_job, cores)
    assert [len(mconfig.job_shards(job)) for job in jobs] == sizes
    every = [s for job in jobs for s in mconfig.job_shards(job)]
    assert every == [f"{k:05d}" for k in range(n_shards)]  # each shard once, in order


def test_a_predict_job_reads_the_featurize_folders_holding_its_shards() -> None:
    """Featurize and predict jobs may take different numbers of shards."""
    featurize = mconfig.job_names(7, 2)  # 00000-00001, 00002-00003, 00004-00005, 00006-00006
    folders = mconfig.folders_holding("g", featurize, "00001-00003")
    assert folders == ["g/shards-00000-00001", "g/shards-00002-00003"]
    assert mconfig.shard_files(folders, "00001-00003", "shard-{}.h5") == [
        "g/shards-00000-00001/shard-00001.h5",
        "g/shards-00002-00003/shard-00002.h5",
        "g/shards-00002-00003/shard-00003.h5",
    ]
    assert mconfig.folders_holding("g", featurize, "00006-00006") == ["g/shards-00006-00006"]
    # the one MPI job's folder holds every shard
    assert mconfig.shard_files(["g"], "00004-00005", "shard-{}.h5") == [
        "g/shard-00004.h5", "g/shard-00005.h5",
    ]  # fmt: skip
    with pytest.raises(mconfig.ConfigError, match="holds shard 00004"):
        mconfig.shard_files(folders, "00003-00004", "shard-{}.h5")
    assert mconfig.option_words("--minus-predictions", ["a", "b"]) == [
        "--minus-predictions",
        "a",
        "b",
    ]
    assert mconfig.option_words("--minus-predictions", "a") == ["--minus-predictions", "a"]
    assert mconfig.option_words("--minus-predictions", []) == []


# ------------------------------------------------------------------------------- workflow


def test_rule_environment_pins_what_the_package_pins() -> None:
    """envs/mofsieve.yaml (``--sdm conda``) must install what pyproject.toml pins, at the same
    versions; snakemake itself runs outside the rule environment."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = [
        d
        for d in project["dependencies"] + project["optional-dependencies"]["demo"]
        if not d.startswith("snakemake")
    ]
    env = yaml.safe_load((REPO / "envs" / "mofsieve.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert sorted(wanted) == sorted(d for d in pip if d != "..")
    assert ".." in pip  # mofsieve itself, from this checkout


def test_lint_is_clean() -> None:
    result = snakemake(REPO, "--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr


def shell_bodies() -> dict[str, str]:
    """Each rule file's shell command strings (the lines of string literals after ``shell:``)."""
    bodies = {}
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        lines, inside = [], False
        for line in smk.read_text().splitlines():
            stripped = line.strip()
            if stripped == "shell:":
                inside = True
            elif inside and stripped.startswith('"'):
                lines.append(stripped)
            elif inside and not stripped.startswith("#"):
                inside = False
        if lines:
            bodies[smk.name] = "\n".join(lines)
    return bodies


def test_rules_quote_every_argument_with_snakemake_never_by_hand() -> None:
    """``{x:q}`` quotes each word (each element of a list); a hand-written '{x}' breaks on a
    path or title holding a quote. Only the MPI launcher is several words on purpose."""
    bodies = shell_bodies()
    assert len(bodies) == 8, sorted(bodies)
    for name, body in bodies.items():
        assert "'" not in body, f"{name}: hand-quoted shell argument"
        text = (REPO / "workflow" / "rules" / name).read_text()
        n_rules = len(re.findall(r"^\s*(?:rule|checkpoint) \w+:", text, re.MULTILINE))
        assert body.count("mofsieve ") == n_rules, f"{name}: one mofsieve call per rule"
        for field in re.findall(r"\{[^{}]*\}", body):
            assert field.endswith(":q}") or field == "{resources.mpi}", f"{name}: {field}"


def test_bad_config_stops_snakemake_with_the_key_named(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(minimal(top_fraction=0.1)))
    result = snakemake(tmp_path, "-n")
    assert result.returncode != 0
    assert "(top level): Additional properties are not allowed ('top_fraction' was unexpected)" in (
        result.stdout + result.stderr
    )


def shell_commands(output: str) -> dict[str, list[list[str]]]:
    """The shell commands of a ``snakemake -n -p`` run, split into words, by rule."""
    commands: dict[str, list[list[str]]] = {}
    rule = None
    for line in output.splitlines():
        if m := re.match(r"^(?:local)?(?:rule|checkpoint) (\w+):", line):
            rule = m[1]
        elif line.startswith("Shell command: ") and rule and line != "Shell command: None":
            words = shlex.split(line.removeprefix("Shell command: "))
            commands.setdefault(rule, []).append(words)
    return commands


def after(words: list[str], option: str) -> list[str]:
    """The words after ``option`` up to the next option."""
    rest = words[words.index(option) + 1 :]
    return rest[: next((i for i, w in enumerate(rest) if w.startswith("--")), len(rest))]


def untrained_screen(tmp_path: Path) -> Path:
    """A run folder whose config.yaml is the shipped one's flag (top 5 %) with models not
    trained yet: enough for a dry run up to the manifest checkpoint."""
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(minimal(flag={"top_fraction": 0.05})))
    return tmp_path


def rank_flag(result: subprocess.CompletedProcess) -> list[str]:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (rank,) = shell_commands(result.stdout)["rank"]
    return [w for w in rank if w.startswith("--top-")] + after(rank, "--top-count")


def test_config_on_the_command_line_replaces_the_flag_choice(tmp_path: Path) -> None:
    """The README's own example: nested --config values arrive as strings and used to be
    deep-merged with config.yaml's top_fraction into two keys."""
    run = untrained_screen(tmp_path)
    result = snakemake(run, "-n", "-p", "--config", "flag={top_count: 100}")
    assert rank_flag(result) == ["--top-count", "100"]


def test_configfile_replaces_the_flag_choice(tmp_path: Path) -> None:
    run = untrained_screen(tmp_path)
    (run / "my.yaml").write_text("flag: {top_count: 100}\n")
    result = snakemake(run, "-n", "-p", "--configfile", "my.yaml")
    assert rank_flag(result) == ["--top-count", "100"]


def test_bad_value_in_a_users_configfile_names_the_file_and_the_key(tmp_path: Path) -> None:
    run = untrained_screen(tmp_path)
    (run / "my.yaml").write_text("flag: {top_count: 0}\n")
    result = snakemake(run, "-n", "--configfile", "my.yaml")
    assert result.returncode != 0
    assert "my.yaml: flag.top_count: 0 is less than the minimum of 1" in (
        result.stdout + result.stderr
    )
    result = snakemake(run, "-n", "--config", "featurize={mpi: maybe}")
    assert result.returncode != 0
    assert "--config: featurize.mpi: 'maybe' is not of type 'boolean'" in (
        result.stdout + result.stderr
    )


def synthetic_run(
    tmp_path: Path,
    write_model_dir,
    n_cifs: int,
    shard_size: int,
    output_dir: str = "results",
    **overrides: object,
) -> Path:
    """A run folder whose manifest already exists: the DAG after the manifest checkpoint.
    Two real (untrained) attention-pooling models, 0.15 bar and 16 bar; returns the run dir."""
    for name, pressure in (("low", 0.15), ("high", 16.0)):
        write_model_dir(tmp_path / "models" / name, pressure_bar=pressure)
    cfg = minimal(run="big", output_dir=output_dir, shard_size=shard_size, **overrides)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    run_dir = tmp_path / output_dir / "big"
    run_dir.mkdir(parents=True)
    with open(run_dir / "manifest.csv", "w") as fh:
        fh.write("mof_id,source,sha1,n_bytes,shard\n")
        sha = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        fh.writelines(
            f"MOF{i:06d},cifs/MOF{i:06d}.cif,{sha},1000,{i // shard_size}\n" for i in range(n_cifs)
        )
    return run_dir


def test_a_local_run_evens_its_jobs_out_over_the_cores(tmp_path: Path, write_model_dir) -> None:
    """make screen's 25 shards (the last one short) with 10 shards a job: 3 jobs a stage on a
    cluster or one core, 4 of 7, 6, 6 and 6 shards on 2 cores (each core busy to the end),
    and predict jobs that each read one featurize job's folder."""
    synthetic_run(tmp_path, write_model_dir, 12_020, 500)
    expected = {
        "1": ["00000-00009", "00010-00019", "00020-00024"],
        "2": ["00000-00006", "00007-00012", "00013-00018", "00019-00024"],
        "3": ["00000-00008", "00009-00016", "00017-00024"],
    }
    for cores, jobs in expected.items():
        result = snakemake(tmp_path, "-n", "-p", "--cores", cores)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        commands = shell_commands(result.stdout)
        for rule, option in (("featurize", "--out"), ("predict", "--out-dir")):
            folders = sorted(after(c, option)[0].rsplit("shards-", 1)[1] for c in commands[rule])
            assert folders == jobs, (rule, cores)
        for command in commands["predict"]:
            job = after(command, "--out-dir")[0].rsplit("shards-", 1)[1]
            assert {Path(g).parent.name for g in after(command, "--graphs")} == {f"shards-{job}"}


def test_paths_with_spaces_and_quotes_survive_and_predict_always_writes_atom_weights(
    tmp_path: Path, write_model_dir
) -> None:
    """Five shards; featurize jobs take 2, predict jobs 3: each job one mofsieve call over its
    shards, reading and writing one folder per job."""
    out = "my 'results'"  # every rule quotes each word: {x:q}
    per_job = {"featurize": {"shards_per_job": 2}, "predict": {"shards_per_job": 3}}
    synthetic_run(tmp_path, write_model_dir, 100, 20, output_dir=out, **per_job)
    # one core: the jobs as configured (on more, a local run evens them out over the cores)
    result = snakemake(tmp_path, "-n", "-p", "--cores", "1")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    commands = shell_commands(result.stdout)
    run = f"{out}/big"
    graphs = [f"{run}/graphs/shards-{j}" for j in ("00000-00001", "00002-00003", "00004-00004")]
    featurized = sorted((after(c, "--shard"), after(c, "--out")) for c in commands["featurize"])
    assert featurized == [
        (["00000", "00001"], [graphs[0]]), (["00002", "00003"], [graphs[1]]), (["00004"], [graphs[2]])
    ]  # fmt: skip
    assert after(commands["featurize"][0], "--manifest") == [f"{run}/manifest.csv"]
    # one predict rule; every job also writes the per-atom weights of the readout
    predicted = sorted(
        (after(c, "--graphs"), after(c, "--out-dir"), after(c, "--attention"), c[-3:])
        for c in commands["predict"]
    )
    folder = f"{run}/predictions/0.15bar/shards-"
    assert predicted == [
        (
            [f"{graphs[0]}/shard-00000.h5", f"{graphs[0]}/shard-00001.h5",
             f"{graphs[1]}/shard-00002.h5"],
            [f"{folder}00000-00002"], [f"{folder}00000-00002"],
            [">", f"{run}/logs/predict/0.15bar/00000-00002.log", "2>&1"],
        ),
        (
            [f"{graphs[1]}/shard-00003.h5", f"{graphs[2]}/shard-00004.h5"],
            [f"{folder}00003-00004"], [f"{folder}00003-00004"],
            [">", f"{run}/logs/predict/0.15bar/00003-00004.log", "2>&1"],
        ),
    ]  # fmt: skip
    (rank,) = commands["rank"]
    assert after(rank, "--predictions") == [f"{folder}00000-00002", f"{folder}00003-00004"]
    assert "--minus-predictions" not in rank  # one model: nothing to subtract
    assert after(rank, "--failures") == after(rank, "--warnings") == graphs
    assert rank[-3:] == [">", f"{run}/logs/rank.log", "2>&1"]
    (report,) = commands["report"]
    assert after(report, "--attention") == [f"{folder}00000-00002", f"{folder}00003-00004"]
    assert after(report, "--graphs") == graphs
    assert after(report, "--quantity") == ["CO2 uptake at 0.15 bar, 298 K"]
    assert after(report, "--title") == ["mofsieve screening report: big"]
    report_job = result.stdout.split("rule report:", 1)[1].split("\n\n", 1)[0]
    assert f"{folder}00003-00004" in report_job  # a named input
    (gcmc,) = commands["gcmc"]
    assert after(gcmc, "--out") == [f"{run}/gcmc"]


def test_working_capacity_ranks_by_subtracting_the_low_pressure_models_predictions(
    tmp_path: Path, write_model_dir
) -> None:
    synthetic_run(tmp_path, write_model_dir, 100, 20, target={"pressure": "working_capacity"})
    result = snakemake(tmp_path, "-n", "-p", "--cores", "1")  # one job a stage
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (rank,) = shell_commands(result.stdout)["rank"]
    assert after(rank, "--predictions") == ["results/big/predictions/16bar/shards-00000-00004"]
    assert after(rank, "--minus-predictions") == [
        "results/big/predictions/0.15bar/shards-00000-00004"
    ]


def job_counts(output: str) -> dict[str, int]:
    table = output.split("Job stats:", 1)[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)}


def submitted_jobs(counts: dict[str, int]) -> int:
    """SLURM jobs of a dry run's plan made after the manifest: every job but ``all`` (no
    command: snakemake runs it itself), plus the manifest job of a fresh run."""
    return counts["total"] - counts.get("all", 0) + ("manifest" not in counts)


@pytest.mark.slow
def test_300000_cifs_plan_at_most_300_slurm_jobs_and_their_dag_builds_in_seconds(
    tmp_path: Path, write_model_dir
) -> None:
    """600 shards of 500 CIFs for the working capacity (two models: the most jobs a screen
    plans), as the shipped SLURM profile would submit them (a dry run: nothing is run)."""
    synthetic_run(tmp_path, write_model_dir, 300_000, 500, target={"pressure": "working_capacity"})
    start = time.perf_counter()
    result = snakemake(tmp_path, "-n", "--profile", str(REPO / "slurm"))
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    counts = job_counts(result.stdout)
    assert counts["featurize"] == 60  # 10 shards a job (featurize.shards_per_job)
    assert counts["predict"] == 120  # 10 shards a job and model (predict.shards_per_job)
    assert counts["rank"] == counts["gcmc"] == counts["report"] == 1
    assert "manifest" not in counts
    assert submitted_jobs(counts) == 184 <= 300
    assert elapsed < 30, f"DAG for 300,000 CIFs took {elapsed:.1f} s"


def test_mpi_mode_featurizes_every_shard_in_one_job(tmp_path: Path, write_model_dir) -> None:
    mpi = {"mpi": True, "mpi_tasks": 2, "mpi_launcher": "srun"}
    synthetic_run(tmp_path, write_model_dir, 1000, 100, featurize=mpi)
    result = snakemake(tmp_path, "-n", "--cores", "2", "-p")
    assert result.returncode == 0, result.stderr[-3000:]
    counts = job_counts(result.stdout)
    # one MPI job for every shard; 10 shards of predictions evened out over the 2 cores
    assert counts["featurize_mpi"] == 1 and counts["predict"] == 2
    assert "featurize" not in counts
    assert "srun -n 2 mofsieve featurize --mpi --manifest results/big/manifest.csv" in result.stdout


def test_train_target_trains_on_this_runs_graphs(tmp_path: Path, write_model_dir) -> None:
    synthetic_run(tmp_path, write_model_dir, 1000, 250)
    (tmp_path / "labels.csv").write_text("mof_id,co2\nMOF000001,1.0\n")
    result = snakemake(
        tmp_path, "-n", "-p", "train", "--config", "train={labels: labels.csv, target: co2}"
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    counts = job_counts(result.stdout)
    assert counts == {"featurize": 1, "train": 1, "total": 2}  # 4 shards, one job
    assert (
        "mofsieve train --labels labels.csv --target co2"
        " --graphs results/big/graphs/shards-00000-00003 --out models/my_model" in result.stdout
    )


def test_boost_target_trains_then_blends_trees_into_a_folder_beside(
    tmp_path: Path, write_model_dir
) -> None:
    synthetic_run(tmp_path, write_model_dir, 1000, 250)
    (tmp_path / "labels.csv").write_text("mof_id,co2\nMOF000001,1.0\n")
    result = snakemake(
        tmp_path, "-n", "-p", "boost", "--config", "train={labels: labels.csv, target: co2}"
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    counts = job_counts(result.stdout)
    assert counts == {"featurize": 1, "train": 1, "boost": 1, "total": 3}
    assert (
        "mofsieve boost --model models/my_model --labels labels.csv"
        " --graphs results/big/graphs/shards-00000-00003 --out models/my_model-boosted"
        " --threads 1" in result.stdout
    )


def test_train_target_without_labels_says_what_to_set(tmp_path: Path, write_model_dir) -> None:
    synthetic_run(tmp_path, write_model_dir, 100, 50)
    result = snakemake(tmp_path, "-n", "train")
    assert result.returncode != 0
    assert "set train.labels" in result.stdout + result.stderr


def resources_of_a_predict_job(output: str) -> str:
    block = output.split("rule predict:", 1)[1]
    return next(line for line in block.splitlines() if line.strip().startswith("resources:"))


def test_slurm_profile_sends_predict_to_the_gpu_partition_and_ci_overlay_to_debug(
    tmp_path: Path, write_model_dir
) -> None:
    synthetic_run(tmp_path, write_model_dir, 1000, 500)
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


# --------------------------------------------------- GCMC of the top picks (gcmc.simulate)


def test_simulate_config_is_off_by_default_and_gives_the_words_of_its_rules() -> None:
    from mofsieve import validation_config as vconfig

    cfg = mconfig.validate_config(minimal(), SCHEMA)
    assert cfg["gcmc"]["simulate"] == {
        "top": 0, "cycles": 2000, "init_cycles": 1000, "seed": 0, "runtime": 240,
    }  # fmt: skip
    assert not vconfig.simulate_enabled(cfg)
    assert vconfig.validation_files(cfg, "r") == vconfig.report_validation_arguments(cfg, "r") == []
    shipped = mconfig.load_config_file(REPO / "config.yaml", SCHEMA)
    assert vconfig.simulate_top(shipped) == 3  # make screen checks its three best picks
    ci = mconfig.load_config_sources(
        [(str(f), mconfig.read_config_file(REPO / f))
         for f in ("config.yaml", ".ci/config-slurm.yaml", ".ci/config-slurm-simulate.yaml")],
        SCHEMA,
    )  # fmt: skip
    assert vconfig.simulate_top(ci) >= 2 and ci["gcmc"]["charges"] == "cif_or_model"
    cfg = mconfig.validate_config(
        minimal(target={"pressure": "working_capacity"}, gcmc={"simulate": {"top": 2, "seed": 5},
                "charges": "cif"}), SCHEMA
    )  # fmt: skip
    words = vconfig.simulate_arguments(cfg)
    assert words[:9] == ["--pressure-bar", "0.15", "16", "--temperature-k", "298",
                         "--cycles", "2000", "--init-cycles", "1000"]  # fmt: skip
    assert after(words, "--seed") == ["5"] and after(words, "--charges") == ["cif"]
    assert vconfig.validate_pressure_arguments(cfg) == [
        "--pressure-bar", "16", "--minus-pressure-bar", "0.15",
    ]  # fmt: skip
    assert vconfig.report_validation_arguments(cfg, "r") == [
        "--validation-csv", "r/validation.csv", "--validation-json", "r/validation.json",
    ]  # fmt: skip
    with pytest.raises(mconfig.ConfigError, match=r"gcmc.simulate.top: -1 is less than"):
        mconfig.validate_config(minimal(gcmc={"simulate": {"top": -1}}), SCHEMA)


def test_a_run_without_simulation_plans_no_simulate_jobs(tmp_path: Path, write_model_dir) -> None:
    synthetic_run(tmp_path, write_model_dir, 100, 20)
    result = snakemake(tmp_path, "-n", "-p", "--cores", "2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert not {"simulate_picks", "simulate", "validate"} & set(job_counts(result.stdout))
    (report,) = shell_commands(result.stdout)["report"]
    assert "--validation-csv" not in report and "validation" not in " ".join(report)


def test_simulate_top_n_plans_picks_then_validate_then_the_report_section(
    tmp_path: Path, write_model_dir
) -> None:
    simulate = {"top": 2, "cycles": 50, "init_cycles": 20, "seed": 4, "runtime": 15}
    synthetic_run(tmp_path, write_model_dir, 100, 20, target={"pressure": "working_capacity"},
                  gcmc={"simulate": simulate})  # fmt: skip
    result = snakemake(tmp_path, "-n", "-p", "--cores", "2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    counts = job_counts(result.stdout)
    # the simulate jobs are known once the picks checkpoint has run
    assert counts["simulate_picks"] == counts["validate"] == counts["report"] == 1
    commands = shell_commands(result.stdout)
    (picks,) = commands["simulate_picks"]
    assert picks[:3] == ["mofsieve", "validate", "pick"]
    assert after(picks, "--flagged") == ["results/big/flagged.csv"]
    assert after(picks, "--top") == ["2"]
    assert after(picks, "--out")[:1] == ["results/big/simulate/picks"]
    (validate,) = commands["validate"]
    assert after(validate, "--pressure-bar") == ["16"]
    assert after(validate, "--minus-pressure-bar") == ["0.15"]
    assert after(validate, "--out-json")[:1] == ["results/big/validation.json"]
    (report,) = commands["report"]
    assert after(report, "--validation-csv") == ["results/big/validation.csv"]
    assert after(report, "--validation-json") == ["results/big/validation.json"]
    all_job = result.stdout.split("rule all:", 1)[1].split("\n\n", 1)[0]
    assert "results/big/validation.json" in all_job


def test_one_simulate_job_per_pick_on_the_cpu_partition_with_the_configured_runtime(
    tmp_path: Path, write_model_dir, test_data: Path
) -> None:
    simulate = {"top": 2, "cycles": 50, "init_cycles": 20, "seed": 4, "runtime": 15}
    run = synthetic_run(tmp_path, write_model_dir, 100, 20, gcmc={"simulate": simulate})
    picks = run / "simulate" / "picks"  # as the checkpoint leaves them
    picks.mkdir(parents=True)
    (picks / "picks.csv").write_text("mof_id,rank,source\nA,1,a.cif\n")
    (picks / "A.cif").write_bytes((test_data / "good" / "toy_framework_charged.cif").read_bytes())
    target = "results/big/simulate/mofs/A/results.csv"
    result = snakemake(tmp_path, "-n", "-p", "--profile", str(REPO / "slurm"), target)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (command,) = shell_commands(result.stdout)["simulate"]
    assert command[:3] == ["mofsieve", "simulate", "results/big/simulate/picks/A.cif"]
    assert after(command, "--out") == ["results/big/simulate/mofs/A"]
    assert after(command, "--pressure-bar") == ["0.15"] and after(command, "--seed") == ["4"]
    assert after(command, "--cycles") == ["50"] and after(command, "--init-cycles") == ["20"]
    assert after(command, "--charges") == ["cif_or_model"]
    resources = next(
        line for line in result.stdout.split("rule simulate:", 1)[1].splitlines()
        if line.strip().startswith("resources:")
    )  # fmt: skip
    assert "slurm_partition=cpu" in resources and "runtime=15" in resources


@pytest.mark.shared
def test_picks_simulate_and_validate_run_for_real(
    tmp_path: Path, write_model_dir, shared_core: Path, test_data: Path
) -> None:
    """The three rules on a finished ranking: a real seeded GCMC of XEXLOD (CIF charges) and
    a pick that simulate refuses (net charge +0.6 e), listed in validation.csv with why."""
    from mofsieve.manifest import iter_archive

    simulate = {"top": 3, "cycles": 40, "init_cycles": 20, "seed": 2}
    run = synthetic_run(tmp_path, write_model_dir, 10, 10,
                        gcmc={"simulate": simulate, "charges": "cif"})  # fmt: skip
    member = "core2019_charged/XEXLOD_clean.cif"
    (cif,) = dict(iter_archive(shared_core / "cifs.tar.xz", {member})).values()
    (tmp_path / "XEXLOD_clean.cif").write_bytes(cif)
    toy = test_data / "good" / "toy_framework_charged.cif"
    header = (
        "rank,mof_id,prediction_mol_per_kg,uncertainty_mol_per_kg,flagged,checks,n_atoms,source"
    )
    ranked = [f"1,TOY,2.0,0.3,yes,,10,{toy}", "2,XEXLOD_clean,0.6,0.1,yes,,144,XEXLOD_clean.cif",
              "3,LOW,0.1,0.1,no,,4,low.cif"]  # fmt: skip
    (run / "ranked.csv").write_text("\n".join([header, *ranked]) + "\n")
    (run / "flagged.csv").write_text(
        "\n".join([f"{header},charge_status,net_charge_e", *(f"{r},ok,0" for r in ranked[:2])])
        + "\n"
    )
    result = snakemake(tmp_path, "--cores", "2", "--allowed-rules", "simulate_picks", "simulate",
                       "validate", "--", "results/big/validation.json", timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = {r["mof_id"]: r for r in csv.DictReader(open(run / "validation.csv"))}
    assert (
        table["XEXLOD_clean"]["status"] == "ok" and table["XEXLOD_clean"]["charge_method"] == "cif"
    )
    assert 0 < float(table["XEXLOD_clean"]["simulated"]) < 2  # published 0.52 mol/kg
    assert table["TOY"]["status"] == "failed" and "net charge +0.6000 e" in table["TOY"]["reason"]
    summary = json.loads((run / "validation.json").read_text())
    assert (summary["n_picked"], summary["n_simulated"], summary["n_failed"]) == (2, 1, 1)
    assert (run / "simulate" / "mofs" / "XEXLOD_clean" / "XEXLOD_clean" / "result.json").is_file()


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
        featurize={"threads": 1, "shards_per_job": 2},  # 5 shards: jobs of 2, 2 and 1
        predict={"threads": 1, "shards_per_job": 2},
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
    assert (run / "warnings.csv").read_text().startswith("mof_id,source,check,detail\n")
    assert b",checks," in expected.split(b"\n", 1)[0]
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
            folder = run / "predictions" / log.parent.name / f"shards-{log.stem}"
            if not all((folder / f"shard-{k}.csv").exists() for k in mconfig.job_shards(log.stem)):
                running = log  # a predict job (of two shards but the last) has not finished
                break
        time.sleep(0.05)
    assert running is not None, "never caught a predict job running"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (run / "ranked.csv").exists()
    # what the kill left is complete: each shard's file as the uninterrupted run wrote it
    straight_run = straight / "results" / "tiny"
    for done in (run / "predictions").rglob("shard-*.csv"):
        assert done.read_bytes() == (straight_run / done.relative_to(run)).read_bytes()
    incomplete = list((killed / ".snakemake" / "incomplete").rglob("*"))
    assert incomplete, "the kill did not land inside a job"

    assert snakemake(killed, "--unlock").returncode == 0
    result = snakemake(killed, "--cores", "2", "--rerun-incomplete", timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert (run / "ranked.csv").read_bytes() == expected


def _screen_shipped(
    tmp_path: Path, run: str, n_cifs: int, shard_size: int, pressure: float | str, models: dict
) -> Path:
    """A whole Snakemake screen (local, 2 cores) of ``n_cifs`` real CIFs and a broken one with
    the given models; returns the run folder."""
    tar = _small_core_mof_tar(tmp_path / "cifs.tar.gz", n_cifs)
    cfg = minimal(
        run=run,
        inputs=[str(tar)],
        shard_size=shard_size,
        target={"pressure": pressure},
        models=models,
        device="cpu",
        flag={"top_count": 2},
        report={"pictures": 1},
    )
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    result = snakemake(tmp_path, "--cores", "2", timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return tmp_path / "results" / run


@pytest.mark.slow
def test_the_shipped_16_bar_blend_screens_through_snakemake(tmp_path: Path) -> None:
    """The 16 bar default blends boosted trees: Snakemake's per-shard predict jobs rank what
    ``mofsieve predict`` gives on the same graphs, which is not the graph network alone, and
    the report says what its attention pictures show."""
    pytest.importorskip("CoRE_MOF", reason="the core-mof package (pip install '.[demo]')")
    from mofsieve.cli import main
    from mofsieve.predict import Predictor, predict_ids

    model = REPO / "models" / "co2_298K_16bar"
    run = _screen_shipped(tmp_path, "blend", 8, 5, 16, {"16": str(model)})
    with open(run / "ranked.csv", newline="") as fh:
        ranked = {r["mof_id"]: float(r["prediction_mol_per_kg"]) for r in csv.DictReader(fh)}
    assert len(ranked) >= 6
    shards = [str(p) for p in sorted((run / "graphs").rglob("shard-*.h5"))]
    out = tmp_path / "direct.csv"
    assert main(["predict", "--model", str(model), "--graphs", *shards, "--out", str(out),
                 "--device", "cpu"]) == 0  # fmt: skip
    with open(out, newline="") as fh:
        direct = {r["mof_id"]: float(r["prediction"]) for r in csv.DictReader(fh)}
    alone = predict_ids(Predictor(model, "cpu", use_booster=False), shards, set(ranked))
    for mof_id, value in ranked.items():
        assert value == pytest.approx(direct[mof_id], abs=2e-5)
    assert max(abs(ranked[m] - alone[m][0]) for m in ranked) > 0.01
    assert "with gradient-boosted trees" in (run / "report.html").read_text()


@pytest.mark.slow
def test_both_shipped_ocrystalnet_models_screen_through_snakemake(
    tmp_path: Path, shipped_ocrystalnet
) -> None:
    """Working capacity needs both pressures' models: Snakemake featurizes the CIFs with the
    columns the OCrystalNet models ask for, predicts with each and ranks 16 bar minus 0.15 bar;
    its numbers are those of ``mofsieve predict`` on the same graphs."""
    pytest.importorskip("CoRE_MOF", reason="the core-mof package (pip install '.[demo]')")
    import h5py

    from mofsieve.cli import main

    models = {f"{p:g}": str(path) for p, path in shipped_ocrystalnet.items()}
    run = _screen_shipped(tmp_path, "ocn", 10, 6, "working_capacity", models)
    with open(run / "ranked.csv", newline="") as fh:
        ranked = list(csv.DictReader(fh))
    assert len(ranked) >= 8  # of 10 real CIFs and a broken one
    assert b"BROKEN" in (run / "failures.csv").read_bytes()
    shards = sorted((run / "graphs").rglob("shard-*.h5"))
    with h5py.File(shards[0]) as fh:
        assert "edge_reverse" in fh and "orbital_neighbour_sum" in fh
    direct = {}
    for pressure, model in shipped_ocrystalnet.items():
        out = tmp_path / f"direct-{pressure:g}.csv"
        assert main(["predict", "--model", str(model), "--graphs", *map(str, shards),
                     "--out", str(out), "--device", "cpu"]) == 0  # fmt: skip
        with open(out, newline="") as fh:
            direct[pressure] = {r["mof_id"]: float(r["prediction"]) for r in csv.DictReader(fh)}
    for row in ranked:
        capacity = direct[16.0][row["mof_id"]] - direct[0.15][row["mof_id"]]
        assert float(row["prediction_mol_per_kg"]) == pytest.approx(capacity, abs=2e-5)
    assert (run / "report.html").stat().st_size > 10_000
