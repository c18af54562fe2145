"""`mofsieve calibrate`: turn a model's ensemble spread into a calibrated standard deviation.

A small ensemble's spread is not a standard deviation: two members can agree by chance (spread
≈ 0 where the error is not), and on average they agree far more closely than either is to the
label. Calibration fits, on the model's validation split only,

    σ = sqrt((scale·spread)² + (floor + relative·|prediction|)²)     (mol/kg for uptakes)

in three nested forms (``scale``; ``scale+floor``; ``scale+floor+relative``): each by maximum
Gaussian likelihood of the validation errors, then multiplied by the one factor that makes the
central 90 % interval (±1.645 σ) cover 90 % of the validation MOFs (σ is homogeneous in the
three numbers, so that keeps the fitted shape). ``--method auto`` picks the form with the lowest
held-out negative log-likelihood in a 5-fold cross-validation *within* the validation split, so
the test split never takes part in a choice; its coverage is measured afterwards.

The result goes into ``model.json`` (``calibration``, through :mod:`mofsieve.modeldir`), the
reliability plot (``reliability.png``: observed vs nominal coverage of central 10–90 %
intervals, validation and test) and the model card; ``mofsieve predict`` then writes σ as
``uncertainty``. ``mofsieve train`` calibrates a new model the same way at its end.

A multi-target model is calibrated per target, each on its own validation MOFs (those of the
split with that target's label, read from the label column of the target's name), into that
target's entry of ``model.json`` and ``reliability-<target>.png``; ``--target`` calibrates one
of them, without it every one.
"""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mofsieve.modeldir import CALIBRATION_METHODS, Calibration, ModelSpec

log = logging.getLogger(__name__)

AUTO = "auto"
NOMINAL_COVERAGES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
TARGET_COVERAGE = 0.9
MIN_VALIDATION = 20  # fewer validation MOFs cannot place a 90 % quantile
CV_FOLDS = 5
CV_SEED = 0
TINY = 1e-9  # σ below this would make a Gaussian likelihood infinite (a spread of exactly 0)

# which of (scale, floor, relative) each method fits
FREE_PARAMETERS: Mapping[str, tuple[bool, bool, bool]] = {
    "scale": (True, False, False),
    "scale+floor": (True, True, False),
    "scale+floor+relative": (True, True, True),
}


@dataclass(frozen=True)
class HeldOut:
    """Labels, ensemble means and raw spreads of one held-out split."""

    y: np.ndarray
    prediction: np.ndarray
    spread: np.ndarray

    def __post_init__(self) -> None:
        if not len(self.y) == len(self.prediction) == len(self.spread):
            raise ValueError("labels, predictions and spreads differ in length")

    def __len__(self) -> int:
        return len(self.y)

    def take(self, index: np.ndarray) -> HeldOut:
        return HeldOut(self.y[index], self.prediction[index], self.spread[index])


def interval_z(coverage: float) -> float:
    """Half-width in σ of the central Gaussian interval holding ``coverage`` (0.9 → 1.645)."""
    from scipy.stats import norm

    return float(norm.ppf(0.5 + coverage / 2))


def _sigma(params: Sequence[float], data: HeldOut) -> np.ndarray:
    scale, floor, relative = params
    return np.sqrt((scale * data.spread) ** 2 + (floor + relative * np.abs(data.prediction)) ** 2)


def coverage(params: Sequence[float], data: HeldOut, level: float = TARGET_COVERAGE) -> float:
    """Share of ``data`` whose label lies within the central ``level`` interval."""
    inside = np.abs(data.y - data.prediction) <= interval_z(level) * _sigma(params, data)
    return float(np.mean(inside))


def mean_nll(params: Sequence[float], data: HeldOut) -> float:
    """Mean Gaussian negative log-likelihood of the errors of ``data`` under σ."""
    sigma = np.maximum(_sigma(params, data), TINY)
    err = data.y - data.prediction
    return float(np.mean(0.5 * np.log(2 * np.pi * sigma**2) + err**2 / (2 * sigma**2)))


def fit_method(data: HeldOut, method: str) -> tuple[float, float, float]:
    """(scale, floor, relative) of ``method`` fitted to ``data``: maximum likelihood, then the
    common factor that puts 90 % of ``data`` inside ±1.645 σ."""
    from scipy.optimize import minimize

    free = np.array(FREE_PARAMETERS[method])
    abs_err = np.abs(data.y - data.prediction)
    typical_err = max(float(np.median(abs_err)), TINY)
    typical_spread = max(float(np.median(data.spread)), TINY)
    typical_pred = max(float(np.median(np.abs(data.prediction))), TINY)
    # starting points on the scale of the data (log parameters, the fit stays positive)
    guess = np.log([typical_err / typical_spread, typical_err, typical_err / typical_pred])

    def full(log_free: np.ndarray) -> np.ndarray:
        params = np.zeros(3)
        params[free] = np.exp(log_free)
        return params

    best: Any = None
    for shift in (0.0, -2.0, 2.0):
        start = guess[free] + shift * np.arange(free.sum())  # spread the terms apart too
        result = minimize(
            lambda x: mean_nll(full(x), data),
            start,
            method="Nelder-Mead",
            options={"maxiter": 4000, "xatol": 1e-7, "fatol": 1e-10},
        )
        if best is None or result.fun < best.fun:
            best = result
    params = full(best.x)
    ratio = abs_err / np.maximum(_sigma(params, data), TINY)
    quantile = float(np.quantile(ratio, TARGET_COVERAGE, method="higher"))
    # a hair wider, so that the MOF on the quantile stays inside after rounding
    factor = quantile * (1 + 1e-9) / interval_z(TARGET_COVERAGE)
    scale, floor, relative = (float(v) for v in params * factor)
    return scale, floor, relative


def cross_validate(data: HeldOut, method: str, folds: int = CV_FOLDS) -> dict[str, float]:
    """Held-out mean NLL and 90 % coverage of ``method`` over ``folds`` folds of ``data``."""
    order = np.random.default_rng(CV_SEED).permutation(len(data))
    nll, covered = [], []
    for part in np.array_split(order, folds):
        rest = np.setdiff1d(order, part)
        params = fit_method(data.take(rest), method)
        nll.append(mean_nll(params, data.take(part)) * len(part))
        covered.append(coverage(params, data.take(part)) * len(part))
    return {"nll": float(sum(nll) / len(data)), "coverage_90": float(sum(covered) / len(data))}


def usable_methods(data: HeldOut) -> list[str]:
    """The methods ``data`` can fit: a spread of 0 everywhere (one member) leaves no scale."""
    if np.any(data.spread > 0):
        return list(CALIBRATION_METHODS)
    return [m for m in CALIBRATION_METHODS if m != "scale"]


def fit_calibration(validation: HeldOut, test: HeldOut | None, method: str = AUTO) -> Calibration:
    """The calibration of ``method`` (or the best by cross-validated NLL on ``validation``),
    fitted on all of ``validation``, with its coverage on ``validation`` and ``test``."""
    if len(validation) < MIN_VALIDATION:
        raise ValueError(
            f"{len(validation)} validation MOFs with a label and a graph; calibration needs "
            f"at least {MIN_VALIDATION}"
        )
    candidates = usable_methods(validation)
    if method != AUTO and method not in candidates:
        raise ValueError(f"method {method!r} cannot be fitted here (usable: {candidates})")
    selection = {m: cross_validate(validation, m) for m in candidates}  # test never used
    chosen = min(candidates, key=lambda m: selection[m]["nll"]) if method == AUTO else method
    params = fit_method(validation, chosen)
    have_test = test is not None and len(test) > 0
    reliability: dict[str, Any] = {
        "nominal": list(NOMINAL_COVERAGES),
        "validation": [coverage(params, validation, q) for q in NOMINAL_COVERAGES],
        "test": [coverage(params, test, q) for q in NOMINAL_COVERAGES] if have_test else None,
    }
    scale, floor, relative = params
    spread_term = scale * validation.spread
    rest_term = floor + relative * np.abs(validation.prediction)
    details = {
        "selection": {
            "by": "lowest 5-fold cross-validated Gaussian NLL within the validation split"
            if method == AUTO
            else "given (--method)",
            "cross_validation": selection,
        },
        "reliability": reliability,
        # how much the members' disagreement still decides σ, for the card
        "spread_dominates_validation": float(np.mean(spread_term > rest_term)),
        "spearman_abs_error_spread_validation": _spearman(
            np.abs(validation.y - validation.prediction), validation.spread
        ),
        "nll_validation": mean_nll(params, validation),
        "nll_test": mean_nll(params, test) if have_test else None,
    }
    return Calibration(
        method=chosen,
        scale=scale,
        floor=floor,
        relative=relative,
        fitted_on="validation",
        n_validation=len(validation),
        coverage_90_validation=coverage(params, validation),
        n_test=len(test) if have_test else 0,
        coverage_90_test=coverage(params, test) if have_test else None,
        details=details,
    )


def _spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    from mofsieve.metrics import spearman

    value = spearman(a, b) if len(a) > 2 else float("nan")
    return None if math.isnan(value) else value


def record_calibration(
    model_dir: Path, calibration: Calibration | None, target: str | None = None
) -> ModelSpec:
    """Write the reliability plot, ``model.json``'s calibration and the card (in this order:
    ``model.json`` is the record, the card and plot are drawn from it); ``target``: which
    target of a multi-target model."""
    from mofsieve.modelcard import reliability_plot, target_file_stem, write_model_card
    from mofsieve.modeldir import set_calibration

    plot = model_dir / (
        "reliability.png" if target is None else f"reliability-{target_file_stem(target)}.png"
    )
    if calibration is not None:
        reliability_plot(plot, calibration)
    else:
        plot.unlink(missing_ok=True)
    spec = set_calibration(model_dir, calibration, target)
    if {"training", "metrics"} <= set(spec.metadata):
        write_model_card(model_dir / "MODEL_CARD.md", spec)
    else:  # not made by `mofsieve train`: no record to write a card from
        log.warning("%s has no training record: model.json calibrated, no card written", model_dir)
    return spec


# ---------------------------------------------------------------------------------------------
# The verb


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model", type=Path, metavar="MODEL_DIR", help="model directory to calibrate"
    )
    parser.add_argument(
        "--graphs", required=True, nargs="+", help="graph shards or folders holding the "
        "model's validation and test MOFs (featurized as the model needs)",
    )  # fmt: skip
    parser.add_argument(
        "--labels", required=True, type=Path, help="CSV with mof_id and the target column"
    )
    parser.add_argument(
        "--target",
        help="label column (default: the model's target); for a multi-target model, the "
        "target to calibrate (default: every one, each from its own column)",
    )
    parser.add_argument(
        "--method",
        default=AUTO,
        choices=(AUTO, *CALIBRATION_METHODS),
        help="form of σ (default auto: the lowest cross-validated NLL on the validation split)",
    )
    parser.add_argument("--batch-atoms", type=int, default=8000, help="atoms per batch (at most)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))


def run(args: argparse.Namespace) -> int:
    from mofsieve.featurization_params import FeaturizationMismatch
    from mofsieve.modeldir import ModelDirError
    from mofsieve.runtime import configure_cpu
    from mofsieve.store import ShardFormatError

    configure_cpu(args.threads)
    try:
        calibrations = calibrate_targets(
            args.model, args.graphs, args.labels, args.target, args.method, args.batch_atoms,
            args.device,
        )  # fmt: skip
    except FeaturizationMismatch as err:
        log.error("refusing to calibrate: %s", err)
        return 3
    except (ModelDirError, ShardFormatError, FileNotFoundError, KeyError, ValueError) as err:
        log.error("%s", err)
        return 2
    for name, calibration in calibrations.items():
        log.info("wrote the calibration of %s into %s: %s", name, args.model,
                 calibration.describe())  # fmt: skip
    return 0


def calibrate_targets(
    model_dir: Path,
    graphs: Sequence[str],
    labels_path: Path,
    target: str | None = None,
    method: str = AUTO,
    batch_atoms: int = 8000,
    device: str = "auto",
) -> dict[str, Calibration]:
    """Calibrate a single-target model (``target``: its label column), or the targets of a
    multi-target model (``target``: one of them; None: each); target name → calibration."""
    from mofsieve.modeldir import read_model

    spec = read_model(model_dir)
    if not spec.is_multi_target:
        cal = calibrate_model_dir(model_dir, graphs, labels_path, target, method, batch_atoms,
                                  device)  # fmt: skip
        return {spec.target.name: cal}
    names = [spec.select(target).target.name] if target else list(spec.target_names)
    return {
        name: calibrate_model_dir(
            model_dir, graphs, labels_path, name, method, batch_atoms, device
        )  # fmt: skip
        for name in names
    }


def calibrate_model_dir(
    model_dir: Path,
    graphs: Sequence[str],
    labels_path: Path,
    target: str | None = None,
    method: str = AUTO,
    batch_atoms: int = 8000,
    device: str = "auto",
) -> Calibration:
    """Predict the model's validation and test splits (``split.csv``), fit the calibration on
    validation, measure it on test, and record it in the model directory. A multi-target
    model: ``target`` (required) is the target to calibrate and its label column."""
    from mofsieve.modeldir import read_model
    from mofsieve.predict import Predictor, predict_ids
    from mofsieve.training_data import read_labels, read_split

    multi = read_model(model_dir).is_multi_target
    predictor = Predictor(model_dir, device, target if multi else None)
    target = target or predictor.spec.target.name
    labels = read_labels(labels_path, target)
    split = read_split(model_dir / "split.csv")
    ids = {
        name: sorted(m for m, s in split.items() if s == part and m in labels)
        for name, part in (("validation", "val"), ("test", "test"))
    }
    if not ids["validation"]:
        raise ValueError(f"no validation MOF of {model_dir / 'split.csv'} has a {target!r} label")
    raw = predict_ids(predictor, graphs, set(ids["validation"]) | set(ids["test"]), batch_atoms)
    held_out = {}
    for name, wanted in ids.items():
        have = [m for m in wanted if m in raw]
        if len(have) < len(wanted):
            log.warning("%d of the %d labelled %s MOFs have no graph in %s, e.g. %s",
                        len(wanted) - len(have), len(wanted), name, list(graphs),
                        sorted(set(wanted) - set(have))[:3])  # fmt: skip
        held_out[name] = HeldOut(
            y=np.array([labels[m] for m in have]),
            prediction=np.array([raw[m][0] for m in have]),
            spread=np.array([raw[m][1] for m in have]),
        )
    calibration = fit_calibration(held_out["validation"], held_out["test"], method)
    log.info("90 %% interval coverage: validation %.3f (n=%d), test %s (n=%d)",
             calibration.coverage_90_validation, calibration.n_validation,
             _fmt(calibration.coverage_90_test), calibration.n_test)  # fmt: skip
    record_calibration(model_dir, calibration, target if multi else None)
    return calibration


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
