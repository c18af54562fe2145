"""The screening run's ``config.yaml``: validation, defaults and what the rules derive from it.

The Snakemake rules hold no logic of their own; everything a rule needs to know beyond file
names (which models a target needs, the arguments of ``rank`` and ``gcmc``, the number of
shards in a manifest) is computed here, where it can be tested without Snakemake.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import shlex
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

WORKING_CAPACITY = "working_capacity"


class ConfigError(ValueError):
    """config.yaml breaks the schema or contradicts itself; the message names the key."""


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


def validate_config(config: dict[str, Any], schema_path: str | os.PathLike[str]) -> dict[str, Any]:
    """A validated copy of ``config`` with defaults filled in; raises :class:`ConfigError`."""
    import jsonschema

    cfg = copy.deepcopy(dict(config))
    if isinstance(cfg.get("models"), dict):
        cfg["models"] = {pressure_key(k): v for k, v in cfg["models"].items()}
    schema = load_schema(schema_path)
    _fill_defaults(cfg, schema)
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: (list(map(str, e.path)), e.message))
    if errors:
        lines = [f"  {_where(e.absolute_path)}: {_message(e)}" for e in errors]
        raise ConfigError("config.yaml does not match its schema:\n" + "\n".join(lines))

    pressure = cfg["target"]["pressure"]
    if pressure == WORKING_CAPACITY:
        if len(cfg["models"]) < 2:
            raise ConfigError(
                "target.pressure: working_capacity needs models at two pressures, "
                f"models has only {sorted(cfg['models'])}"
            )
    elif pressure_key(pressure) not in cfg["models"]:
        raise ConfigError(
            f"target.pressure: no model for {pressure} bar; models has "
            f"{sorted(cfg['models'], key=float)} (add one under models)"
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
    with open(path) as fh:
        return validate_config(yaml.safe_load(fh) or {}, schema_path)


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


def shell_words(words: list[str]) -> str:
    """Words quoted for a shell command line (input paths may hold spaces)."""
    return shlex.join(words)


def flag_arguments(cfg: dict[str, Any]) -> str:
    flag = cfg["flag"]
    if "top_count" in flag:
        return f"--top-count {int(flag['top_count'])}"
    return f"--top-fraction {float(flag['top_fraction'])!r}"


def gcmc_arguments(cfg: dict[str, Any]) -> str:
    g = cfg["gcmc"]
    return shlex.join(
        [
            "--temperature", str(cfg["target"]["temperature_K"]),
            "--pressure", *gcmc_pressures(cfg),
            "--cycles", str(g["cycles"]),
            "--init-cycles", str(g["init_cycles"]),
            "--cutoff", str(g["cutoff_A"]),
            "--net-charge-tolerance", str(g["net_charge_tolerance_e"]),
            "--time-limit", g["time_limit"],
        ]
    )  # fmt: skip


def model_featurization(model_dirs: list[str]) -> dict[str, Any]:
    """Featurization parameters the models were trained with (from their model.json).

    Global features are the union over the models; cutoff and neighbour count must agree.
    Models not trained yet (no model.json) add nothing, so the featurizer's defaults apply.
    """
    merged: dict[str, Any] = {}
    names: list[str] = []
    for directory in model_dirs:
        path = Path(directory) / "model.json"
        if not path.is_file():
            continue
        meta = json.loads(path.read_text())
        params = meta.get("featurization") or meta.get("featurization_params") or {}
        for key in ("cutoff", "max_neighbors"):
            if key in params:
                if key in merged and float(merged[key]) != float(params[key]):
                    raise ConfigError(
                        f"models disagree on featurization {key} ({merged[key]} vs "
                        f"{params[key]} in {path}): one graph set cannot serve both"
                    )
                merged[key] = params[key]
        extra = params.get("global_feature_names", [])
        if isinstance(extra, str):
            extra = json.loads(extra) if extra.startswith("[") else extra.split(",")
        names.extend(n for n in extra if n and n not in names)
    if names:
        merged["global_feature_names"] = names
    return merged


def featurize_arguments(cfg: dict[str, Any]) -> str:
    params = model_featurization([model_dir(cfg, label) for label in model_labels(cfg)])
    args: list[str] = []
    if "cutoff" in params:
        args += ["--cutoff", str(params["cutoff"])]
    if "max_neighbors" in params:
        args += ["--max-neighbors", str(params["max_neighbors"])]
    if params.get("global_feature_names"):
        args += ["--global-features", ",".join(params["global_feature_names"])]
    return shlex.join(args)


def attention_pooling(model_dirs: list[str]) -> bool:
    """True when every model exists and pools atoms with attention (so it has per-atom weights
    for the report); mean- or sum-pooling models have none to give."""
    for directory in model_dirs:
        path = Path(directory) / "model.json"
        if not path.is_file():
            return False
        init = json.loads(path.read_text()).get("init", {})
        if init.get("readout") != "attention":
            return False
    return True


def report_attention_argument(cfg: dict[str, Any]) -> str:
    label = model_labels(cfg)[0]
    if not attention_pooling([model_dir(cfg, label) for label in model_labels(cfg)]):
        return ""
    return f"--attention {run_dir(cfg)}/predictions/{label}"


@lru_cache(maxsize=8)
def _n_shards_cached(path: str, mtime_ns: int, size: int) -> int:
    n = 0
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or "shard" not in header:
            raise ConfigError(f"{path} is not a manifest (no shard column)")
        col = header.index("shard")
        for row in reader:
            shard = int(row[col])
            if shard >= n:
                n = shard + 1
    return n


def shard_ids(manifest: str | os.PathLike[str]) -> list[str]:
    """``00000``…: the shard numbers of a manifest as they appear in file names."""
    st = os.stat(manifest)
    return [f"{k:05d}" for k in range(_n_shards_cached(str(manifest), st.st_mtime_ns, st.st_size))]
