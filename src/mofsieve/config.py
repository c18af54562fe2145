"""The screening run's config: where it comes from, validation, defaults, and what the rules
derive from it.

The Snakemake rules hold no logic of their own; everything a rule needs to know beyond file
names (which models a target needs, the arguments of ``rank`` and ``gcmc``, the number of
shards in a manifest) is computed here, where it can be tested without Snakemake.

A run's config comes from several sources, lowest precedence first: the workflow's
``config.yaml``, each ``--configfile`` in the order given, then ``--config key=value``.
A later source overrides an earlier one key by key (``target: {pressure: 16}`` keeps
``config.yaml``'s ``gas`` and ``temperature_K``), except for the keys in
:data:`REPLACED_WHOLE`, where a later source's value replaces the whole object: ``flag`` is
a choice of one of two keys, and ``models`` is the list of models to choose from (a
working capacity uses the highest and lowest pressure in it). Errors name the source and
the key.
"""

from __future__ import annotations

import copy
import os
import shlex
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import yaml

from mofsieve import manifest, modeldir
from mofsieve.featurization_params import FeaturizationMismatch, FeaturizationParams
from mofsieve.modeldir import ModelSpec

WORKING_CAPACITY = "working_capacity"
COMMAND_LINE = "--config"
# top-level keys whose value a later source replaces as a whole instead of merging into
REPLACED_WHOLE = ("flag", "models")

# a config source: its name (a file, or COMMAND_LINE) and the keys it gives
ConfigSource = tuple[str, Mapping[str, Any]]
# which source gave each key path (("flag", "top_count") → "my.yaml")
Origins = dict[tuple[str, ...], str]


class ConfigError(ValueError):
    """The config breaks the schema or contradicts itself; the message names source and key."""


def pressure_key(value: object) -> str:
    """A pressure in bar as the string used for model keys and paths: 0.15 → "0.15", 16 → "16"."""
    try:
        return format(float(str(value)), "g")
    except ValueError:
        return str(value)


def _fill_defaults(instance: dict[str, Any], schema: dict[str, Any]) -> None:
    for key, sub in schema.get("properties", {}).items():
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if isinstance(instance.get(key), dict) and sub.get("type") == "object":
            _fill_defaults(instance[key], sub)


def _where(path: Any) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def load_schema(path: str | os.PathLike[str]) -> dict[str, Any]:
    with open(path) as fh:
        return yaml.safe_load(fh)


# ---------------------------------------------------------------------------------------------
# sources: config.yaml, --configfile, --config


def _display(path: str | os.PathLike[str]) -> str:
    """A config file's name as a user would type it: relative below the working directory."""
    rel = os.path.relpath(path)
    return str(path) if rel.startswith("..") else rel


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The keys of a YAML (or JSON) config file; :class:`ConfigError` naming it if unreadable."""
    try:
        with open(path) as fh:
            values = yaml.safe_load(fh)
    except OSError as err:
        raise ConfigError(f"{_display(path)}: cannot be read ({err.strerror})") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{_display(path)}: not valid YAML ({err})") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(
            f"{_display(path)}: holds a {type(values).__name__}, not a mapping of config keys"
        )
    return values


def _allows(node: Mapping[str, Any], *types: str) -> bool:
    """Whether the schema ``node`` (or one of its oneOf/anyOf branches) has one of ``types``."""
    kinds = node.get("type", ())
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    if any(k in types for k in kinds):
        return True
    return any(_allows(b, *types) for b in (*node.get("oneOf", ()), *node.get("anyOf", ())))


def _is_valid(value: Any, node: Mapping[str, Any]) -> bool:
    import jsonschema

    return jsonschema.Draft7Validator(node).is_valid(value)


def _typed(value: Any, node: Mapping[str, Any] | None, path: tuple[Any, ...]) -> Any:
    if not node:
        return value
    if isinstance(value, Mapping):
        props = node.get("properties", {})
        extra = node.get("additionalProperties")
        extra = extra if isinstance(extra, Mapping) else None
        return {k: _typed(v, props.get(k, extra), (*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        items = node.get("items")
        items = items if isinstance(items, Mapping) else None
        return [_typed(v, items, (*path, i)) for i, v in enumerate(value)]
    if isinstance(value, str) and not _is_valid(value, node):
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError as err:
            if _allows(node, "object", "array"):
                problem = getattr(err, "problem", None) or str(err).splitlines()[0]
                raise ConfigError(
                    f"{COMMAND_LINE}: {_where(path)}: {value!r} is not valid YAML ({problem})"
                ) from None
            return value
        if isinstance(parsed, (Mapping, list)):
            return _typed(parsed, node, path) if _allows(node, "object", "array") else value
        return parsed if _is_valid(parsed, node) else value
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and not _is_valid(value, node)
        and _is_valid(str(value), node)
    ):
        return str(value)  # --config run=2024 is the run name "2024"
    return value


def command_line_values(values: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """``--config`` values as the schema wants them.

    Snakemake parses ``key=value`` as a number if it can, else with YAML's base loader, which
    keeps every nested scalar a string (``flag={top_count: 100}`` arrives as
    ``{"top_count": "100"}``) and leaves a value it cannot parse as the whole string. Each
    such string is parsed as YAML where the schema wants something else (an object, a
    number, a boolean); a string given for an object that is not YAML is a
    :class:`ConfigError` naming the key.
    """
    props = schema.get("properties", {})
    return {key: _typed(value, props.get(key), (key,)) for key, value in values.items()}


def _normalised(values: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(values))
    if isinstance(out.get("models"), Mapping):
        out["models"] = {pressure_key(k): v for k, v in out["models"].items()}
    return out


def _forget(origins: Origins, path: tuple[str, ...]) -> None:
    for known in [p for p in origins if p[: len(path)] == path]:
        del origins[known]


def _record(origins: Origins, path: tuple[str, ...], value: Any, name: str) -> None:
    origins[path] = name
    if isinstance(value, Mapping):
        for key, sub in value.items():
            _record(origins, (*path, str(key)), sub, name)
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            _record(origins, (*path, str(i)), sub, name)


def _merge_into(
    merged: dict[str, Any],
    values: Mapping[str, Any],
    path: tuple[str, ...],
    name: str,
    origins: Origins,
) -> None:
    for key, value in values.items():
        here = (*path, str(key))
        whole = not path and key in REPLACED_WHOLE
        if not whole and isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            origins[here] = name
            _merge_into(merged[key], value, here, name, origins)
        else:
            merged[key] = copy.deepcopy(value)
            _forget(origins, here)
            _record(origins, here, value, name)


def merge_config_sources(sources: Sequence[ConfigSource]) -> tuple[dict[str, Any], Origins]:
    """One config from ``sources`` (``(name, values)``, lowest precedence first) and which
    source gave each key.

    A later source's value replaces an earlier one's, key by key inside objects (snakemake's
    own merge), except that the top-level keys of :data:`REPLACED_WHOLE` are replaced as a
    whole: ``flag: {top_count: 100}`` over ``flag: {top_fraction: 0.05}`` is
    ``{top_count: 100}``, and a ``models`` map is the complete list of models.
    """
    merged: dict[str, Any] = {}
    origins: Origins = {}
    for name, values in sources:
        _merge_into(merged, _normalised(values), (), name, origins)
    return merged, origins


def load_config_sources(
    sources: Sequence[ConfigSource], schema_path: str | os.PathLike[str]
) -> dict[str, Any]:
    """The validated config of ``sources`` merged (see :func:`merge_config_sources`)."""
    merged, origins = merge_config_sources(sources)
    names = " then ".join(dict.fromkeys(name for name, _ in sources)) or "no config file"
    return validate_config(merged, schema_path, origins=origins, what=f"the config ({names})")


def workflow_config_sources(
    workflow: Any, schema_path: str | os.PathLike[str]
) -> list[ConfigSource]:
    """The sources of a Snakemake run's config, lowest precedence first: the workflow's
    ``configfile:`` (unless ``--replace-workflow-config``), each ``--configfile``, then
    ``--config`` (typed by the schema, see :func:`command_line_values`)."""
    settings = workflow.config_settings
    given = [str(p) for p in settings.configfiles]
    own = [] if settings.replace_workflow_config else workflow.configfiles[len(given) :]
    sources: list[ConfigSource] = [
        (_display(p), read_config_file(p)) for p in [*map(str, own), *given]
    ]
    if settings.config:
        typed = command_line_values(settings.config, load_schema(schema_path))
        sources.append((COMMAND_LINE, typed))
    return sources


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

    cfg = _normalised(config)
    schema = load_schema(schema_path)
    _fill_defaults(cfg, schema)
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: (list(map(str, e.path)), e.message))
    if errors:
        lines = [
            f"  {_from(_error_sources(e, origins or {}))}{_where(e.absolute_path)}: {_message(e)}"
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
    if (
        error.validator in ("minProperties", "maxProperties")
        and error.path
        and (error.path[-1] == "flag")
    ):
        return "give exactly one of top_fraction and top_count"
    return error.message


def load_config_file(
    path: str | os.PathLike[str], schema_path: str | os.PathLike[str]
) -> dict[str, Any]:
    """The validated config of one file (errors name it)."""
    return load_config_sources([(_display(path), read_config_file(path))], schema_path)


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


def gcmc_arguments(cfg: dict[str, Any]) -> list[str]:
    g = cfg["gcmc"]
    return [
        "--temperature", str(cfg["target"]["temperature_K"]),
        "--pressure", *gcmc_pressures(cfg),
        "--cycles", str(g["cycles"]),
        "--init-cycles", str(g["init_cycles"]),
        "--cutoff", str(g["cutoff_A"]),
        "--net-charge-tolerance", str(g["net_charge_tolerance_e"]),
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
    return args


def model_json(cfg: dict[str, Any], label: str) -> str:
    """The ``model.json`` of the model ``label`` (what a predict job waits for)."""
    return str(modeldir.model_json_path(model_dir(cfg, label)))


def train_model_json(cfg: dict[str, Any]) -> str:
    """The ``model.json`` that ``snakemake train`` writes (last, when the model is complete)."""
    return str(modeldir.model_json_path(cfg["train"]["out"]))


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
