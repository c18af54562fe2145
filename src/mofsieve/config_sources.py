"""Where a screening run's config comes from, and how its sources combine.

A run's config comes from several sources, lowest precedence first: the workflow's
``config.yaml``, each ``--configfile`` in the order given, then ``--config key=value``.
A later source overrides an earlier one key by key (``target: {pressure: 16}`` keeps
``config.yaml``'s ``gas`` and ``temperature_K``), except for the keys in
:data:`REPLACED_WHOLE`, where a later source's value replaces the whole object (``models``
is the list of models to choose from: a working capacity uses the highest and lowest
pressure in it), and the keys of a choice (:data:`CHOICES`), where giving one drops the
others (``flag``'s ``top_fraction`` or ``top_count``). Which source gave each key is kept
(:data:`Origins`) so that :mod:`mofsieve.config`'s validation can name it in its errors.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

COMMAND_LINE = "--config"
# top-level keys whose value a later source replaces as a whole instead of merging into
REPLACED_WHOLE = ("models",)
# keys of which a config holds one: a later source that gives one drops the others
CHOICES: dict[tuple[str, ...], tuple[str, ...]] = {("flag",): ("top_fraction", "top_count")}

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


def where(path: Any) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def load_schema(path: str | os.PathLike[str]) -> dict[str, Any]:
    with open(path) as fh:
        return yaml.safe_load(fh)


def display_name(path: str | os.PathLike[str]) -> str:
    """A config file's name as a user would type it: relative below the working directory."""
    rel = os.path.relpath(path)
    return str(path) if rel.startswith("..") else rel


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The keys of a YAML (or JSON) config file; :class:`ConfigError` naming it if unreadable."""
    try:
        with open(path) as fh:
            values = yaml.safe_load(fh)
    except OSError as err:
        raise ConfigError(f"{display_name(path)}: cannot be read ({err.strerror})") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{display_name(path)}: not valid YAML ({err})") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(
            f"{display_name(path)}: holds a {type(values).__name__}, not a mapping of config keys"
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
                    f"{COMMAND_LINE}: {where(path)}: {value!r} is not valid YAML ({problem})"
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


def normalised(values: Mapping[str, Any]) -> dict[str, Any]:
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
            choice = CHOICES.get(here, ())
            if any(k in value for k in choice):  # top_count replaces top_fraction
                for k in choice:
                    merged[key].pop(k, None)
                    _forget(origins, (*here, k))
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
    whole (a ``models`` map is the complete list of models) and one key of a choice drops
    the others: ``flag: {top_count: 100}`` over ``flag: {top_fraction: 0.05, skip_checks:
    [coordination]}`` is ``{skip_checks: [coordination], top_count: 100}``.
    """
    merged: dict[str, Any] = {}
    origins: Origins = {}
    for name, values in sources:
        _merge_into(merged, normalised(values), (), name, origins)
    return merged, origins


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
        (display_name(p), read_config_file(p)) for p in [*map(str, own), *given]
    ]
    if settings.config:
        typed = command_line_values(settings.config, load_schema(schema_path))
        sources.append((COMMAND_LINE, typed))
    return sources


def simulate_charge_arguments(cfg: Mapping[str, Any]) -> list[str]:
    """``--charges`` and ``--charge-model`` for ``gcmc.charges`` and ``gcmc.charge_model``,
    the same words for ``mofsieve simulate`` and ``mofsieve gcmc`` (validated config).

    ``charge_model: ""`` is the model shipped with mofsieve, named by its absolute path: a
    relative ``models/charges`` would be looked for below wherever the run starts.
    """
    from mofsieve.charge_model import DEFAULT_CHARGE_MODEL_DIR

    g = cfg["gcmc"]
    model = str(g["charge_model"]) or str(DEFAULT_CHARGE_MODEL_DIR)
    return ["--charges", str(g["charges"]), "--charge-model", model]
