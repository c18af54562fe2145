"""The screening run's config: validation, defaults, and what the rules derive from it.

The Snakemake rules hold no logic of their own; everything a rule needs to know beyond file
names (which models a target needs, the arguments of ``rank`` and ``gcmc``, the number of
shards in a manifest, which shards each job takes) is computed here, where it can be tested
without Snakemake. Where the config comes from (``config.yaml``, ``--configfile``,
``--config``) and how those sources combine is :mod:`mofsieve.config_sources`; errors name
the source and the key.
"""

from __future__ import annotations

import copy
import math
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from mofsieve import manifest, modeldir
from mofsieve.config_sources import (
    CHOICES,
    COMMAND_LINE,
    REPLACED_WHOLE,
    ConfigError,
    ConfigSource,
    Origins,
    command_line_values,
    display_name,
    load_schema,
    merge_config_sources,
    normalised,
    pressure_key,
    read_config_file,
    simulate_charge_arguments,
    where,
    workflow_config_sources,
)
from mofsieve.featurization_params import FeaturizationMismatch, FeaturizationParams
from mofsieve.modeldir import ModelSpec

__all__ = [  # the sources' API, used through this module by the Snakefile and the tests
    "CHOICES",
    "COMMAND_LINE",
    "REPLACED_WHOLE",
    "ConfigError",
    "ConfigSource",
    "Origins",
    "command_line_values",
    "load_schema",
    "merge_config_sources",
    "pressure_key",
    "read_config_file",
    "simulate_charge_arguments",
    "workflow_config_sources",
]

WORKING_CAPACITY = "working_capacity"


def _fill_defaults(instance: dict[str, Any], schema: dict[str, Any]) -> None:
    for key, sub in schema.get("properties", {}).items():
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if isinstance(instance.get(key), dict) and sub.get("type") == "object":
            _fill_defaults(instance[key], sub)


def load_config_sources(
    sources: Sequence[ConfigSource], schema_path: str | os.PathLike[str]
) -> dict[str, Any]:
    """The validated config of ``sources`` merged (see :func:`merge_config_sources`)."""
    merged, origins = merge_config_sources(sources)
    names = " then ".join(dict.fromkeys(name for name, _ in sources)) or "no config file"
    return validate_config(merged, schema_path, origins=origins, what=f"the config ({names})")


def workflow_config(workflow: Any, schema_path: str | os.PathLike[str]) -> dict[str, Any]:
    """A Snakemake run's validated config, rebuilt from its sources (``workflow.config`` is
    their deep merge, which cannot replace a choice such as ``flag``)."""
    return load_config_sources(workflow_config_sources(workflow, schema_path), schema_path)


# ---------------------------------------------------------------------------------------------
# validation


def _sources_at(origins: Origins, path: Sequence[Any]) -> list[str]:
    """The sources that gave the key at ``path`` or anything below it (each once)."""
    path = tuple(str(p) for p in path)
    names: list[str] = []
    for known, name in origins.items():
        if known[: len(path)] == path and name not in names:
            names.append(name)
    return names


def _error_sources(error: Any, origins: Origins) -> list[str]:
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        known = error.schema.get("properties", {})
        names: list[str] = []
        for key in error.instance:
            if key not in known:
                names += [n for n in _sources_at(origins, [*path, key]) if n not in names]
        if names:
            return names
    return _sources_at(origins, path)


def _from(names: Sequence[str]) -> str:
    return f"{', '.join(names)}: " if names else ""


def validate_config(
    config: dict[str, Any],
    schema_path: str | os.PathLike[str],
    origins: Origins | None = None,
    what: str = "config.yaml",
) -> dict[str, Any]:
    """A validated copy of ``config`` with defaults filled in; raises :class:`ConfigError`.

    With ``origins`` (see :func:`merge_config_sources`) each error also names the source
    that gave the wrong key; ``what`` names the config as a whole in the first line.
    """
    import jsonschema

    cfg = normalised(config)
    schema = load_schema(schema_path)
    _fill_defaults(cfg, schema)
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: (list(map(str, e.path)), e.message))
    if errors:
        lines = [
            f"  {_from(_error_sources(e, origins or {}))}{where(e.absolute_path)}: {_message(e)}"
            for e in errors
        ]
        raise ConfigError(f"{what} does not match its schema:\n" + "\n".join(lines))

    def source(*path: str) -> str:
        return _from(_sources_at(origins or {}, path))

    pressure = cfg["target"]["pressure"]
    if pressure == WORKING_CAPACITY:
        if len(cfg["models"]) < 2:
            raise ConfigError(
                f"{source('target', 'pressure')}target.pressure: working_capacity needs models "
                f"at two pressures, {source('models')}models has only {sorted(cfg['models'])}"
            )
    elif pressure_key(pressure) not in cfg["models"]:
        raise ConfigError(
            f"{source('target', 'pressure')}target.pressure: no model for {pressure} bar; "
            f"{source('models')}models has {sorted(cfg['models'], key=float)} (add one under "
            "models)"
        )
    return cfg


def _message(error: Any) -> str:
    if error.validator == "oneOf" and error.path and error.path[-1] == "pressure":
        return f"{error.instance!r} is neither a pressure in bar nor 'working_capacity'"
    if error.validator == "oneOf" and error.path and error.path[-1] == "flag":
        return "give exactly one of top_fraction and top_count"
    return error.message


def load_config_file(
    path: str | os.PathLike[str], schema_path: str | os.PathLike[str]
) -> dict[str, Any]:
    """The validated config of one file (errors name it)."""
    return load_config_sources([(display_name(path), read_config_file(path))], schema_path)


# ---------------------------------------------------------------------------------------------
# what the rules derive


def run_dir(cfg: dict[str, Any]) -> str:
    return f"{cfg['output_dir'].rstrip('/')}/{cfg['run']}"


def model_labels(cfg: dict[str, Any]) -> list[str]:
    """The models the target needs, as path labels ``<pressure>bar``; the ranking one first."""
    pressure = cfg["target"]["pressure"]
    if pressure == WORKING_CAPACITY:
        high, low = working_capacity_pressures(cfg)
        return [f"{high}bar", f"{low}bar"]
    return [f"{pressure_key(pressure)}bar"]


def working_capacity_pressures(cfg: dict[str, Any]) -> tuple[str, str]:
    """(adsorption, desorption) = (highest, lowest) pressure with a model."""
    keys = sorted(cfg["models"], key=float)
    return keys[-1], keys[0]


def model_dir(cfg: dict[str, Any], label: str) -> str:
    return cfg["models"][label.removesuffix("bar")]


def model_target(cfg: dict[str, Any], label: str) -> str | None:
    """The target that predict writes for the model ``label`` (``<pressure>bar``): for a
    multi-target model folder (one folder may serve every pressure), the target whose
    ``conditions.pressure_bar`` is the label's pressure; None for a single-target model, and
    for a folder with no model yet (predict then refuses a multi-target one by itself). A
    :class:`ConfigError` when the trained model predicts no target, or several, at that
    pressure."""
    directory = model_dir(cfg, label)
    (spec,) = model_specs([directory]) or (None,)
    if spec is None:
        return None
    pressure = float(label.removesuffix("bar"))
    at_pressure = [
        t.name
        for t in spec.targets
        if t.pressure_bar is not None and math.isclose(t.pressure_bar, pressure, rel_tol=1e-9)
    ]
    unknown = [t.name for t in spec.targets if t.pressure_bar is None]
    if not spec.is_multi_target:
        if not at_pressure and not unknown:  # a model of another pressure under this key
            raise ConfigError(
                f"models.{pressure_key(pressure)}: {directory} predicts {spec.target.name} at "
                f"{spec.target.pressure_bar:g} bar, not {pressure:g} bar"
            )
        return None
    if len(at_pressure) != 1:
        pressures = [t.pressure_bar for t in spec.targets]
        raise ConfigError(
            f"models.{pressure_key(pressure)}: {directory} is a multi-target model with "
            f"{len(at_pressure)} targets at {pressure:g} bar (its targets {list(spec.target_names)} "
            f"are at {pressures} bar); it needs exactly one"
        )
    return at_pressure[0]


def predict_target_arguments(cfg: dict[str, Any], label: str) -> list[str]:
    """``mofsieve predict``'s ``--target NAME`` for the model ``label`` when its folder holds
    a multi-target model (:func:`model_target`), else nothing."""
    return option_words("--target", [t] if (t := model_target(cfg, label)) else [])


def simulated_target_arguments(cfg: dict[str, Any], label: str) -> list[str]:
    """``mofsieve train``'s ``--simulated-target NAME`` for ``snakemake retrain`` of the model
    ``label`` when its folder holds a multi-target model (the run's GCMC uptakes are those of
    its target at that pressure), else nothing."""
    return option_words("--simulated-target", [t] if (t := model_target(cfg, label)) else [])


def gcmc_pressures(cfg: dict[str, Any]) -> list[str]:
    pressure = cfg["target"]["pressure"]
    if pressure == WORKING_CAPACITY:
        low_high = working_capacity_pressures(cfg)[::-1]
        return list(low_high)
    return [pressure_key(pressure)]


def quantity(cfg: dict[str, Any]) -> str:
    t = cfg["target"]
    if t["pressure"] == WORKING_CAPACITY:
        high, low = working_capacity_pressures(cfg)
        what = f"working capacity {high}→{low} bar"
    else:
        what = f"uptake at {pressure_key(t['pressure'])} bar"
    return f"{t['gas']} {what}, {format(float(t['temperature_K']), 'g')} K"


def flag_arguments(cfg: dict[str, Any]) -> list[str]:
    """``mofsieve rank``'s words for ``flag``: ``--top-count N`` or ``--top-fraction F``."""
    flag = cfg["flag"]
    if "top_count" in flag:
        return ["--top-count", str(int(flag["top_count"]))]
    return ["--top-fraction", repr(float(flag["top_fraction"]))]


def skip_checks(cfg: dict[str, Any]) -> str:
    """``mofsieve rank --skip-checks``'s word for ``flag.skip_checks`` (``""``: none)."""
    return ",".join(cfg["flag"]["skip_checks"])


def gcmc_arguments(cfg: dict[str, Any]) -> list[str]:
    g = cfg["gcmc"]
    return [
        "--temperature", str(cfg["target"]["temperature_K"]),
        "--pressure", *gcmc_pressures(cfg),
        "--cycles", str(g["cycles"]),
        "--init-cycles", str(g["init_cycles"]),
        "--cutoff", str(g["cutoff_A"]),
        "--net-charge-tolerance", str(g["net_charge_tolerance_e"]),
        *simulate_charge_arguments(cfg),
        "--time-limit", g["time_limit"],
    ]  # fmt: skip


def train_extra_arguments(cfg: dict[str, Any]) -> list[str]:
    """``train.extra_args`` (one string, as typed on a command line) split into words."""
    try:
        return shlex.split(cfg["train"]["extra_args"])
    except ValueError as err:
        raise ConfigError(f"train.extra_args: {cfg['train']['extra_args']!r}: {err}") from None


def model_specs(model_dirs: Sequence[str]) -> list[ModelSpec]:
    """The trained models among ``model_dirs``, read through :mod:`mofsieve.modeldir`; a model
    not trained yet (no model.json) is left out, a broken one is a :class:`ConfigError`."""
    try:
        return [modeldir.read_model(d) for d in model_dirs if modeldir.has_model(d)]
    except modeldir.ModelDirError as err:
        raise ConfigError(str(err)) from None


def model_featurization(model_dirs: Sequence[str]) -> FeaturizationParams | None:
    """The featurization that serves every trained model of ``model_dirs`` (global features:
    the union); None when none is trained yet, so that the featurizer's defaults apply.
    Models that disagree on the graph itself (cutoff, neighbours) are a :class:`ConfigError`."""
    try:
        return modeldir.union_featurization(model_specs(model_dirs))
    except FeaturizationMismatch as err:
        raise ConfigError(str(err)) from None


def featurize_arguments(cfg: dict[str, Any]) -> list[str]:
    """``mofsieve featurize``'s words for the graphs this run's models need."""
    params = model_featurization([model_dir(cfg, label) for label in model_labels(cfg)])
    if params is None:
        return []
    args = ["--cutoff", str(params.cutoff), "--max-neighbors", str(params.max_neighbors)]
    if params.global_feature_names:
        args += ["--global-features", ",".join(params.global_feature_names)]
    if params.columns:  # e.g. OCrystalNet's reverse edges and orbital sums
        args += ["--columns", ",".join(params.columns)]
    if params.charges != FeaturizationParams.charges:  # models trained on model charges
        args += ["--charges", params.charges]
    return args


def model_json(cfg: dict[str, Any], label: str) -> str:
    """The ``model.json`` of the model ``label`` (what a predict job waits for)."""
    return str(modeldir.model_json_path(model_dir(cfg, label)))


def train_model_json(cfg: dict[str, Any]) -> str:
    """The ``model.json`` that ``snakemake train`` writes (last, when the model is complete)."""
    return str(modeldir.model_json_path(cfg["train"]["out"]))


def boosted_model_json(cfg: dict[str, Any]) -> str:
    """The ``model.json`` that ``snakemake boost`` writes: ``train.out`` blended with boosted
    trees, in the folder ``<train.out>-boosted``."""
    return str(modeldir.model_json_path(str(cfg["train"]["out"]).rstrip("/") + "-boosted"))


@lru_cache(maxsize=8)
def _n_shards_cached(path: str, mtime_ns: int, size: int) -> int:
    try:
        return manifest.shard_count(path)
    except manifest.InputError as err:
        raise ConfigError(str(err)) from None


def shard_ids(manifest: str | os.PathLike[str]) -> list[str]:
    """``00000``…: the shard numbers of a manifest as they appear in file names."""
    st = os.stat(manifest)
    return [f"{k:05d}" for k in range(_n_shards_cached(str(manifest), st.st_mtime_ns, st.st_size))]


# ---------------------------------------------------------------------------------------------
# jobs: each featurize or predict job takes several consecutive shards

# a job's name: its first and last shard; its output folder is shards-<name>
_JOB = re.compile(r"(\d{5})-(\d{5})")


def job_names(n_shards: int, per_job: int, cores: int = 1) -> list[str]:
    """``FFFFF-LLLLL`` (first and last shard) of the jobs that take ``per_job`` consecutive
    shards each, the last one the rest: ``job_names(7, 3) == ["00000-00002", "00003-00005",
    "00006-00006"]``.

    ``cores`` > 1 (a local run on that many cores): as many jobs as that gives, rounded up to
    a multiple of ``cores`` (at most one per shard), sizes within one shard of each other, so
    that every core has a job to the end instead of one core finishing a short last job alone
    (``make screen``'s 25 shards on 2 cores: 7, 6, 6 and 6 rather than 10, 10 and 5)."""
    if per_job < 1:
        raise ConfigError(f"shards_per_job must be at least 1, not {per_job}")
    if cores < 1:
        raise ConfigError(f"cores must be at least 1, not {cores}")
    if cores == 1:
        return [
            f"{first:05d}-{min(first + per_job, n_shards) - 1:05d}"
            for first in range(0, n_shards, per_job)
        ]
    n_jobs = min(n_shards, math.ceil(math.ceil(n_shards / per_job) / cores) * cores)
    sizes = [n_shards // n_jobs + (k < n_shards % n_jobs) for k in range(n_jobs)]
    firsts = [sum(sizes[:k]) for k in range(n_jobs)]
    return [
        f"{first:05d}-{first + size - 1:05d}" for first, size in zip(firsts, sizes, strict=True)
    ]


def jobs_of(manifest: str | os.PathLike[str], per_job: int, cores: int = 1) -> list[str]:
    """The job names of a manifest's shards, ``per_job`` shards a job (:func:`job_names`)."""
    return job_names(len(shard_ids(manifest)), per_job, cores)


def local_cores(workflow: Any) -> int:
    """The cores a local run spreads its featurize and predict jobs over (:func:`job_names`):
    ``--cores`` when Snakemake runs the jobs itself, 1 on a cluster (SLURM), where the jobs
    run side by side whatever their number."""
    from snakemake.exceptions import WorkflowError

    if not workflow.local_exec:
        return 1
    try:
        return max(1, int(workflow.cores))
    except (TypeError, ValueError, WorkflowError):  # no --cores (a dry run without it)
        return 1


def _job_range(name: str) -> range:
    match = _JOB.fullmatch(name)
    if match is None:
        raise ConfigError(f"{name!r} is not a job name FFFFF-LLLLL (its first and last shard)")
    return range(int(match[1]), int(match[2]) + 1)


def job_shards(name: str) -> list[str]:
    """The shards of the job ``name``: ``job_shards("00003-00005") == ["00003", "00004",
    "00005"]``."""
    return [f"{k:05d}" for k in _job_range(name)]


def job_folder(parent: str, name: str) -> str:
    """Where the job ``name`` writes its shards' files: ``PARENT/shards-FFFFF-LLLLL``."""
    return f"{parent}/shards-{name}"


def job_folders(parent: str, names: Sequence[str]) -> list[str]:
    return [job_folder(parent, name) for name in names]


def folders_holding(parent: str, names: Sequence[str], job: str) -> list[str]:
    """The folders of the jobs ``names`` (under ``parent``) that hold a shard of ``job``: what a
    predict job reads when featurize jobs take another number of shards."""
    wanted = _job_range(job)
    return [
        job_folder(parent, name)
        for name in names
        if (held := _job_range(name)).start <= wanted[-1] and wanted.start <= held[-1]
    ]


def shard_files(folders: Sequence[str], job: str, name: str) -> list[str]:
    """For each shard K of ``job``, the file ``name.format(K)`` in the one of ``folders`` that
    holds K: a job folder ``…/shards-FFFFF-LLLLL`` holds its range, any other folder (the one
    MPI featurize job's) every shard."""
    files = []
    for shard in _job_range(job):
        for folder in folders:
            match = re.search(r"shards-(\d{5}-\d{5})$", folder)
            if match is None or shard in _job_range(match[1]):
                files.append(f"{folder}/{name.format(f'{shard:05d}')}")
                break
        else:
            raise ConfigError(f"no folder among {list(folders)} holds shard {shard:05d}")
    return files


def option_words(option: str, values: Sequence[str] | str) -> list[str]:
    """``[option, *values]``, or nothing without values: an optional list in a rule body."""
    values = [values] if isinstance(values, str) else list(values)
    return [option, *values] if values else []
