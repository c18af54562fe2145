"""The model directory: the one reader and writer of ``model.json``.

A model directory holds ``model.json`` (architecture class and its ``init`` arguments, format
version, featurization parameters, target name/unit/conditions, target normalisation, weights
files, training record, metrics and, once calibrated, the calibration of its uncertainty), one
weights file per ensemble member and ``MODEL_CARD.md``. A single-target model may also carry
gradient-boosted trees blended with its graph network (``booster``: :class:`BoosterSpec`, the
files written by :mod:`mofsieve.booster`).

A multi-target model (``mofsieve train --target A --target B``: one output per target) is
format version 2: ``targets`` lists each target with its own ``clip_min``, ``normalisation``
and ``calibration`` (metrics are keyed by target name), in place of version 1's ``target``,
``normalisation`` and ``calibration``, so that a reader of version 1 refuses it by its
version. Its :class:`ModelSpec` answers the single-target questions (``target``,
``normalisation_mean``, ``calibration``…) only for the output chosen by
:meth:`ModelSpec.select`. Everything that needs to know about a model without running it — the
Snakemake rules, ``rank``, ``featurize --model`` — reads it through :func:`read_model`,
which checks the format version and returns a typed :class:`ModelSpec`. No torch here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mofsieve.atomic import atomic_output
from mofsieve.featurization_params import FeaturizationMismatch, FeaturizationParams

MODEL_JSON = "model.json"
MODEL_FORMAT_VERSION = 1  # one target
MULTI_TARGET_FORMAT_VERSION = 2  # ``targets``: one output per target
ARCHITECTURES = ("AECGCNN", "OCrystalNet")
READOUTS = ("attention", "mean", "sum")  # the models' pooling of atoms into a crystal
READOUTS_WITH_ATOM_WEIGHTS = ("attention",)  # readouts whose per-atom weights are learned


CALIBRATION_METHODS = ("scale", "scale+floor", "scale+floor+relative")


class ModelDirError(ValueError):
    """A model directory is missing, of another format version, or lacks what a model needs."""


@dataclass(frozen=True)
class TargetSpec:
    """What a model predicts: the label column, its unit and the conditions it holds for."""

    name: str
    unit: str
    gas: str | None = None
    temperature_K: float | None = None
    pressure_bar: float | None = None
    clip_min: float | None = None  # predictions below are clipped (uptake cannot be negative)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "unit": self.unit,
            "conditions": {
                "gas": self.gas,
                "temperature_K": self.temperature_K,
                "pressure_bar": self.pressure_bar,
            },
            "clip_min": self.clip_min,
        }


@dataclass(frozen=True)
class Calibration:
    """How ``predict`` turns the ensemble spread into ``uncertainty``, a standard deviation in
    the target's unit: ``σ = sqrt((scale·spread)² + (floor + relative·|prediction|)²)``.

    Fitted on the validation split by :mod:`mofsieve.calibrate`; ``method`` names the free
    parameters (the others are 0). ``details`` holds what the card shows (selection scores,
    reliability curves); predictions use only the three numbers."""

    method: str
    scale: float
    floor: float = 0.0
    relative: float = 0.0
    fitted_on: str = "validation"
    n_validation: int = 0
    coverage_90_validation: float | None = None
    n_test: int = 0
    coverage_90_test: float | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in CALIBRATION_METHODS:
            raise ValueError(
                f"calibration method {self.method!r}; known: {list(CALIBRATION_METHODS)}"
            )
        for name in ("scale", "floor", "relative"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0.0 <= value < float("inf")):
                raise ValueError(f"calibration {name} must be a finite number ≥ 0, not {value!r}")

    def sigma(self, spread: Any, prediction: Any) -> Any:
        """σ for ensemble spreads and predictions (floats or NumPy arrays alike: no NumPy
        import here, so that ``rank`` and the workflow stay light)."""
        return (
            (self.scale * spread) ** 2 + (self.floor + self.relative * abs(prediction)) ** 2
        ) ** 0.5

    def formula(self) -> str:
        """σ with the fitted numbers, e.g. ``sqrt((1.77·spread)² + (0.23 + 0.17·|prediction|)²)``."""
        if self.method == "scale":
            return f"{self.scale:.4g}·spread"
        floor = f"{self.floor:.4g}"
        if self.relative:
            floor = f"({floor} + {self.relative:.4g}·|prediction|)"
        return f"sqrt(({self.scale:.4g}·spread)² + {floor}²)"

    def describe(self) -> str:
        """One line for logs."""
        return (
            f"calibrated σ = {self.formula()} ({self.method}, fitted on {self.n_validation} "
            f"{self.fitted_on} MOFs)"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "scale": self.scale,
            "floor": self.floor,
            "relative": self.relative,
            "fitted_on": self.fitted_on,
            "n_validation": self.n_validation,
            "coverage_90_validation": self.coverage_90_validation,
            "n_test": self.n_test,
            "coverage_90_test": self.coverage_90_test,
            **dict(self.details),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Calibration:
        own = {
            "method", "scale", "floor", "relative", "fitted_on", "n_validation",
            "coverage_90_validation", "n_test", "coverage_90_test",
        }  # fmt: skip

        def optional(key: str) -> float | None:
            return None if d.get(key) is None else float(d[key])

        return cls(
            method=str(d["method"]),
            scale=float(d["scale"]),
            floor=float(d.get("floor", 0.0)),
            relative=float(d.get("relative", 0.0)),
            fitted_on=str(d.get("fitted_on", "validation")),
            n_validation=int(d.get("n_validation", 0)),
            coverage_90_validation=optional("coverage_90_validation"),
            n_test=int(d.get("n_test", 0)),
            coverage_90_test=optional("coverage_90_test"),
            details={k: v for k, v in d.items() if k not in own},
        )


@dataclass(frozen=True)
class BoosterSpec:
    """Gradient-boosted trees blended with the graph network (:mod:`mofsieve.booster`).

    The prediction is ``(1 − weight)·graph network + weight·mean of the trees of files``;
    ``elements`` are the atomic numbers whose atom fractions are features (recorded so that
    a later change of the default list cannot silently reorder an old model's features);
    ``rounds``, ``params`` and ``seeds`` are how the trees were grown, so that fine-tuning can
    grow them again on new labels. ``details`` holds what the card shows."""

    files: tuple[str, ...]
    sha256: tuple[str, ...]  # of each file: LightGBM aborts the process on a damaged model
    weight: float
    elements: tuple[int, ...]
    rounds: int
    params: Mapping[str, Any]
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.files or not all(isinstance(f, str) and f for f in self.files):
            raise ValueError("booster files must be a non-empty list of file names")
        if len(self.sha256) != len(self.files):
            raise ValueError("booster needs one sha256 per file")
        if not (isinstance(self.weight, int | float) and 0.0 <= self.weight <= 1.0):
            raise ValueError(f"booster weight must be within [0, 1], not {self.weight!r}")
        if not (isinstance(self.rounds, int) and self.rounds > 0):
            raise ValueError(f"booster rounds must be a positive integer, not {self.rounds!r}")

    def to_json(self) -> dict[str, Any]:
        return {
            "files": list(self.files),
            "sha256": list(self.sha256),
            "weight": self.weight,
            "elements": list(self.elements),
            "rounds": self.rounds,
            "params": dict(self.params),
            **dict(self.details),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> BoosterSpec:
        own = {"files", "sha256", "weight", "elements", "rounds", "params"}
        return cls(
            files=tuple(d["files"]),
            sha256=tuple(d["sha256"]),
            weight=float(d["weight"]),
            elements=tuple(int(z) for z in d["elements"]),
            rounds=int(d["rounds"]),
            params=dict(d["params"]),
            details={k: v for k, v in d.items() if k not in own},
        )


@dataclass(frozen=True)
class ModelSpec:
    """What callers need to know about a model directory (``model.json`` parsed and checked).

    ``targets``, ``normalisations`` (mean, std) and ``calibrations`` hold one entry per model
    output; ``output`` is the one that ``target``, ``normalisation_mean``,
    ``normalisation_std`` and ``calibration`` describe: 0 for a single-target model, None for
    a multi-target model until :meth:`select` chooses one (they raise until then, so that no
    caller takes the first target by accident)."""

    directory: Path
    architecture: str
    init: Mapping[str, Any]
    weights: tuple[str, ...]
    featurization: FeaturizationParams
    targets: tuple[TargetSpec, ...]
    normalisations: tuple[tuple[float, float], ...]
    calibrations: tuple[Calibration | None, ...]  # None: ``uncertainty`` is the raw spread
    output: int | None = 0
    variant: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)  # the whole model.json
    booster: BoosterSpec | None = None  # trees blended with the graph network

    @property
    def is_multi_target(self) -> bool:
        return len(self.targets) > 1

    @property
    def target_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.targets)

    def select(self, name: str | None) -> ModelSpec:
        """This spec with the output of target ``name`` chosen (None: a single-target model's
        one output); :class:`ModelDirError` listing the targets when ``name`` is none of them
        or a multi-target model is given no name."""
        if name is None:
            if self.is_multi_target:
                raise ModelDirError(
                    f"{self.directory} predicts {len(self.targets)} targets "
                    f"{list(self.target_names)}: choose one with --target"
                )
            return replace(self, output=0)
        if name not in self.target_names:
            raise ModelDirError(
                f"--target {name}: {self.directory} predicts {list(self.target_names)}"
            )
        return replace(self, output=self.target_names.index(name))

    def _chosen(self) -> int:
        if self.output is None:
            raise ModelDirError(
                f"{self.directory} predicts {list(self.target_names)}: a target must be chosen "
                "(ModelSpec.select, --target)"
            )
        return self.output

    @property
    def target(self) -> TargetSpec:
        return self.targets[self._chosen()]

    @property
    def normalisation_mean(self) -> float:
        return self.normalisations[self._chosen()][0]

    @property
    def normalisation_std(self) -> float:
        return self.normalisations[self._chosen()][1]

    @property
    def calibration(self) -> Calibration | None:
        return self.calibrations[self._chosen()]

    @property
    def readout(self) -> str:
        return str(self.init.get("readout", "mean"))

    @property
    def has_atom_weights(self) -> bool:
        """Whether the readout gives per-atom weights (attention pooling) for the report."""
        return self.readout in READOUTS_WITH_ATOM_WEIGHTS

    @property
    def num_layers(self) -> int:
        return int(self.init["num_layers"])

    @property
    def merges_equivalent_atoms(self) -> bool:
        """Whether predict may run the model once per set of atoms it cannot tell apart
        (:mod:`mofsieve.symmetry`): AE-CGCNN; OCrystalNet's directed-edge states and OFM
        inputs are outside what the colour refinement compares."""
        return self.architecture == "AECGCNN"

    @property
    def uncertainty_meaning(self) -> str:
        """What the ``uncertainty`` column of this model's predictions is, for logs."""
        if self.calibration is None:
            return (
                "uncertainty = raw ensemble spread (uncalibrated: no probability meaning; "
                "`mofsieve calibrate` fits one)"
            )
        return f"uncertainty = {self.calibration.describe()}"

    def weight_paths(self) -> list[Path]:
        return [self.directory / name for name in self.weights]

    def booster_paths(self) -> list[Path]:
        return [] if self.booster is None else [self.directory / f for f in self.booster.files]

    def check_graphs(self, params: FeaturizationParams, what: str = "graphs") -> None:
        """Raise :class:`FeaturizationMismatch` unless graphs made with ``params`` fit."""
        self.featurization.check_compatible(params, what=what)


def model_json_path(model_dir: str | os.PathLike[str]) -> Path:
    return Path(model_dir) / MODEL_JSON


def has_model(model_dir: str | os.PathLike[str]) -> bool:
    """True when ``model_dir`` holds a ``model.json`` (a model not trained yet has none)."""
    return model_json_path(model_dir).is_file()


def _required(meta: Mapping[str, Any], path: Path, *keys: str) -> Any:
    value: Any = meta
    for depth, key in enumerate(keys):
        if not isinstance(value, Mapping) or key not in value:
            raise ModelDirError(f"{path}: no {'.'.join(keys[: depth + 1])} (not a mofsieve model)")
        value = value[key]
    return value


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _target_from_json(entry: Any, path: Path, where: str) -> TargetSpec:
    if not isinstance(entry, Mapping):
        raise ModelDirError(f"{path}: {where} must be an object (not a mofsieve model)")
    for key in ("name", "unit"):
        if key not in entry:
            raise ModelDirError(f"{path}: no {where}.{key} (not a mofsieve model)")
    conditions = entry.get("conditions") or {}
    return TargetSpec(
        name=str(entry["name"]),
        unit=str(entry["unit"]),
        gas=conditions.get("gas"),
        temperature_K=_number(conditions.get("temperature_K")),
        pressure_bar=_number(conditions.get("pressure_bar")),
        clip_min=_number(entry.get("clip_min")),
    )


def _calibration_from_json(value: Any, path: Path, where: str) -> Calibration | None:
    if value is None:  # absent in models written before calibration
        return None
    try:
        return Calibration.from_json(value)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ModelDirError(f"{path}: {where} is malformed ({err})") from None


def _normalisation_from_json(value: Any, path: Path, where: str) -> tuple[float, float]:
    try:
        return float(value["mean"]), float(value["std"])
    except (KeyError, TypeError, ValueError) as err:
        raise ModelDirError(f"{path}: {where} is missing or malformed ({err})") from None


def _multi_targets(
    meta: Mapping[str, Any], path: Path
) -> tuple[tuple[TargetSpec, ...], tuple[tuple[float, float], ...], tuple[Calibration | None, ...]]:
    """The ``targets`` of a version-2 (multi-target) ``model.json``, checked."""
    entries = meta.get("targets")
    if not isinstance(entries, list) or len(entries) < 2:
        raise ModelDirError(
            f"{path}: format version {MULTI_TARGET_FORMAT_VERSION} needs a list of at least two "
            "targets"
        )
    targets = tuple(_target_from_json(e, path, f"targets[{i}]") for i, e in enumerate(entries))
    names = [t.name for t in targets]
    if len(set(names)) != len(names):
        raise ModelDirError(f"{path}: a target appears twice in {names}")
    n_outputs = meta.get("init", {}).get("n_targets")
    if n_outputs != len(targets):
        raise ModelDirError(
            f"{path}: init.n_targets is {n_outputs!r} but {len(targets)} targets are listed"
        )
    normalisations = tuple(
        _normalisation_from_json(e.get("normalisation"), path, f"targets[{i}].normalisation")
        for i, e in enumerate(entries)
    )
    calibrations = tuple(
        _calibration_from_json(e.get("calibration"), path, f"targets[{i}].calibration")
        for i, e in enumerate(entries)
    )
    return targets, normalisations, calibrations


def parse_model_json(meta: Mapping[str, Any], path: Path) -> ModelSpec:
    """A :class:`ModelSpec` from the parsed ``model.json`` at ``path`` (checked)."""
    architecture = meta.get("class")
    if architecture not in ARCHITECTURES:
        raise ModelDirError(
            f"{path}: model class {architecture!r}; this mofsieve knows {list(ARCHITECTURES)}"
        )
    version = meta.get("format_version")
    if version not in (MODEL_FORMAT_VERSION, MULTI_TARGET_FORMAT_VERSION):
        raise ModelDirError(
            f"{path}: model format version {version!r}; this mofsieve reads versions "
            f"{MODEL_FORMAT_VERSION} (one target) and {MULTI_TARGET_FORMAT_VERSION} (several)"
        )
    init = _required(meta, path, "init")
    weights = _required(meta, path, "weights")
    if not isinstance(weights, list) or not weights or not all(isinstance(w, str) for w in weights):
        raise ModelDirError(f"{path}: weights must be a non-empty list of file names")
    try:
        featurization = FeaturizationParams.from_json(_required(meta, path, "featurization"))
    except (KeyError, TypeError, ValueError) as err:
        raise ModelDirError(f"{path}: featurization is incomplete or malformed ({err})") from None
    if version == MULTI_TARGET_FORMAT_VERSION:
        targets, normalisations, calibrations = _multi_targets(meta, path)
        output = None
    else:
        targets = (_target_from_json(_required(meta, path, "target"), path, "target"),)
        normalisations = (
            (
                float(_required(meta, path, "normalisation", "mean")),
                float(_required(meta, path, "normalisation", "std")),
            ),
        )
        calibrations = (_calibration_from_json(meta.get("calibration"), path, "calibration"),)
        output = 0
    booster = _booster_from_json(meta.get("booster"), path)
    if booster is not None and version == MULTI_TARGET_FORMAT_VERSION:
        raise ModelDirError(f"{path}: a booster is blended with one target, not several")
    return ModelSpec(
        directory=path.parent,
        architecture=str(architecture),
        init=dict(init),
        weights=tuple(weights),
        featurization=featurization,
        targets=targets,
        normalisations=normalisations,
        calibrations=calibrations,
        output=output,
        variant=meta.get("variant"),
        metadata=dict(meta),
        booster=booster,
    )


def _booster_from_json(value: Any, path: Path) -> BoosterSpec | None:
    if value is None:
        return None
    try:
        return BoosterSpec.from_json(value)
    except (KeyError, TypeError, ValueError) as err:
        raise ModelDirError(f"{path}: booster is incomplete or malformed ({err})") from None


def read_model(model_dir: str | os.PathLike[str]) -> ModelSpec:
    """Read and check ``MODEL_DIR/model.json``; :class:`ModelDirError` says what is wrong."""
    path = model_json_path(model_dir)
    if not path.is_file():
        raise ModelDirError(f"no {MODEL_JSON} in {model_dir} (not a trained mofsieve model)")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ModelDirError(f"{path} is not valid JSON ({err})") from None
    if not isinstance(meta, dict):
        raise ModelDirError(f"{path} does not hold a JSON object")
    return parse_model_json(meta, path)


def write_model_json(
    model_dir: str | os.PathLike[str],
    *,
    architecture: str,
    init: Mapping[str, Any],
    weights: Sequence[str],
    featurization: FeaturizationParams,
    target: TargetSpec,
    normalisation_mean: float,
    normalisation_std: float,
    **extra: Any,
) -> ModelSpec:
    """Write ``model.json`` atomically (last, after the weights) and return it as read back."""
    meta: dict[str, Any] = {
        "class": architecture,
        "format_version": MODEL_FORMAT_VERSION,
        "init": dict(init),
        "weights": list(weights),
        "target": target.to_json(),
        "normalisation": {"mean": normalisation_mean, "std": normalisation_std},
        "featurization": featurization.to_json(),
        **extra,
    }
    return _write_meta(model_json_path(model_dir), meta)


def write_multi_target_model_json(
    model_dir: str | os.PathLike[str],
    *,
    architecture: str,
    init: Mapping[str, Any],
    weights: Sequence[str],
    featurization: FeaturizationParams,
    targets: Sequence[TargetSpec],
    normalisations: Sequence[tuple[float, float]],
    calibrations: Sequence[Calibration | None] | None = None,
    **extra: Any,
) -> ModelSpec:
    """Write a multi-target (format version 2) ``model.json`` atomically and return it as read
    back: one ``targets`` entry per output, in output order, each with its normalisation and
    calibration."""
    calibrations = list(calibrations) if calibrations is not None else [None] * len(targets)
    if not len(targets) == len(normalisations) == len(calibrations):
        raise ValueError("targets, normalisations and calibrations differ in length")
    entries = []
    for target, (mean, std), calibration in zip(targets, normalisations, calibrations, strict=True):
        entry = {**target.to_json(), "normalisation": {"mean": mean, "std": std}}
        if calibration is not None:
            entry["calibration"] = calibration.to_json()
        entries.append(entry)
    units = {t.unit for t in targets}
    meta: dict[str, Any] = {
        "class": architecture,
        "format_version": MULTI_TARGET_FORMAT_VERSION,
        "init": dict(init),
        "weights": list(weights),
        "targets": entries,
        # one unit for the whole model where the targets share it (what `rank` reads)
        **({"unit": units.pop()} if len(units) == 1 else {}),
        "featurization": featurization.to_json(),
        **extra,
    }
    return _write_meta(model_json_path(model_dir), meta)


def set_calibration(
    model_dir: str | os.PathLike[str], calibration: Calibration | None, target: str | None = None
) -> ModelSpec:
    """Record (or, with None, remove) the calibration of ``target`` (None: a single-target
    model's one target) in ``model.json``, everything else kept as it is; written
    atomically, returned as read back with that target chosen."""
    spec = read_model(model_dir).select(target)
    meta = dict(spec.metadata)
    if spec.is_multi_target:
        entries = [dict(e) for e in meta["targets"]]
        entry = entries[spec.output or 0]
        entry.pop("calibration", None)
        if calibration is not None:
            entry["calibration"] = calibration.to_json()
        meta["targets"] = entries
    else:
        meta.pop("calibration", None)
        if calibration is not None:
            meta["calibration"] = calibration.to_json()
    return _write_meta(model_json_path(model_dir), meta).select(spec.target.name)


def write_boosted_model_json(
    model_dir: str | os.PathLike[str],
    source: ModelSpec,
    booster: BoosterSpec,
    calibration: Calibration | None,
    metrics: Mapping[str, Any],
) -> ModelSpec:
    """``model.json`` of ``model_dir``: the single-target model ``source``'s, with ``booster``
    and the calibration and metrics of the blend in place of its own; written atomically,
    last (the graph network's weights and the trees' files must be in ``model_dir`` already:
    ``model.json`` names only what exists). Returned as read back."""
    if source.is_multi_target:
        raise ModelDirError(f"{source.directory} predicts several targets: a booster blends one")
    missing = [f for f in (*source.weights, *booster.files) if not (Path(model_dir) / f).is_file()]
    if missing:
        raise ModelDirError(f"{model_dir} lacks {missing}: model.json would name missing files")
    meta = {k: v for k, v in source.metadata.items() if k not in ("booster", "calibration")}
    meta["booster"] = booster.to_json()
    if calibration is not None:
        meta["calibration"] = calibration.to_json()
    meta["metrics"] = dict(metrics)
    return _write_meta(model_json_path(model_dir), meta)


def _write_meta(path: Path, meta: Mapping[str, Any]) -> ModelSpec:
    spec = parse_model_json(meta, path)  # never write what could not be read back
    text = json.dumps(meta, indent=2) + "\n"
    with atomic_output(path) as tmp:
        tmp.write_text(text)
    return spec


def union_featurization(specs: Sequence[ModelSpec]) -> FeaturizationParams | None:
    """One featurization that serves every model of ``specs`` (global features and optional
    graph columns: the union), or None for no models; :class:`FeaturizationMismatch` if their
    graphs cannot be shared."""
    if not specs:
        return None
    first = specs[0].featurization
    names: list[str] = []
    columns: list[str] = []
    for spec in specs:
        f = spec.featurization
        for key in ("cutoff", "max_neighbors", "atom_features", "charges"):
            if getattr(f, key) != getattr(first, key):
                raise FeaturizationMismatch(
                    f"models disagree on featurization {key} ({getattr(first, key)!r} in "
                    f"{specs[0].directory} vs {getattr(f, key)!r} in {spec.directory}): one "
                    "graph set cannot serve both"
                )
        names.extend(n for n in f.global_feature_names if n not in names)
        columns.extend(c for c in f.columns if c not in columns)
    return FeaturizationParams(
        cutoff=first.cutoff,
        max_neighbors=first.max_neighbors,
        atom_features=first.atom_features,
        global_feature_names=tuple(names),
        columns=tuple(columns),
        charges=first.charges,
    )
