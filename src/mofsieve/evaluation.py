"""An ensemble on held-out graphs: predictions in the target's unit and their metrics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from mofsieve.batching import iter_batches
from mofsieve.metrics import regression_metrics


def predict_standardised(
    model: Any, datas: Sequence[Any], batch_atoms: int, device: torch.device
) -> np.ndarray:
    """One member's standardised predictions for ``datas`` (evaluation mode, no gradients):
    (G,), or G×T for a multi-target model."""
    n_targets = getattr(model.config, "n_targets", 1)
    out = np.empty((len(datas), n_targets) if n_targets > 1 else len(datas), dtype=np.float64)
    model.eval()
    with torch.no_grad():
        for group, batch in iter_batches(datas, batch_atoms):
            out[group] = model(batch.to(device)).double().cpu().numpy()
    return out


def ensemble_predictions(
    members: Sequence[Any],
    datas: Sequence[Any],
    batch_atoms: int,
    device: torch.device,
    y_mean: float,
    y_std: float,
) -> np.ndarray:
    """K×G predictions in the target's unit (before any clipping)."""
    return np.stack(
        [predict_standardised(m, datas, batch_atoms, device) * y_std + y_mean for m in members]
    )


def without_charges(datas: Sequence[Any], charged: Sequence[int] = ()) -> list[Any]:
    """Copies of ``datas`` as featurization makes crystals without partial charges: charges
    NaN, and the global descriptors at positions ``charged``
    (:func:`mofsieve.descriptors.energy_grid.charged_globals`, made
    from charges) NaN too."""
    out = [d.clone() for d in datas]
    for d in out:
        d.charge = torch.full_like(d.charge, float("nan"))
        if charged and getattr(d, "global_features", None) is not None:
            d.global_features = d.global_features.clone()
            d.global_features[:, list(charged)] = float("nan")
    return out


@dataclass(frozen=True)
class Evaluation:
    """Metrics (``test``, ``val``, ``test_members``, ``test_without_charges``) and the
    ensemble mean (clipped as predict clips it) and raw spread of the test and validation
    splits (the spreads are what calibration scales). For one target of a multi-target
    model: of the MOFs of each split with that target's label, ``test_rows`` and
    ``val_rows`` (their positions in the split)."""

    metrics: dict[str, Any]
    test_mean: np.ndarray
    test_spread: np.ndarray
    val_mean: np.ndarray
    val_spread: np.ndarray
    test_rows: np.ndarray | None = None
    val_rows: np.ndarray | None = None


def _evaluation(
    test_preds: np.ndarray,
    y_test: np.ndarray,
    val_preds: np.ndarray,
    y_val: np.ndarray,
    hidden_preds: np.ndarray | None,
    clip_min: float | None,
) -> Evaluation:
    """An :class:`Evaluation` from K×G member predictions of the test and validation splits
    (and of the test split with charges hidden, or None)."""

    def clip(values: np.ndarray) -> np.ndarray:
        # as `mofsieve predict` does: the ensemble mean (or a member's value) is clipped
        return values if clip_min is None else np.clip(values, clip_min, None)

    test_mean, test_spread = clip(test_preds.mean(0)), test_preds.std(0)
    val_mean, val_spread = clip(val_preds.mean(0)), val_preds.std(0)
    metrics: dict[str, Any] = {
        "test": regression_metrics(y_test, test_mean),
        "val": regression_metrics(y_val, val_mean),
        "test_members": [regression_metrics(y_test, clip(p)) for p in test_preds],
        "test_without_charges": (
            regression_metrics(y_test, clip(hidden_preds.mean(0)))
            if hidden_preds is not None
            else None
        ),
    }
    return Evaluation(metrics, test_mean, test_spread, val_mean, val_spread)


def _charged(members: Sequence[Any]) -> list[int]:
    from mofsieve.descriptors.energy_grid import charged_globals

    return list(charged_globals(getattr(members[0].config, "global_features", ())))


def evaluate_ensemble(
    members: Sequence[Any],
    test_data: Sequence[Any],
    y_test: np.ndarray,
    val_data: Sequence[Any],
    y_val: np.ndarray,
    batch_atoms: int,
    device: torch.device,
    y_mean: float,
    y_std: float,
    clip_min: float | None,
    with_charges_hidden: bool,
) -> Evaluation:
    """The ensemble on the test and validation splits (:class:`Evaluation`)."""

    def predict(datas: Sequence[Any]) -> np.ndarray:
        return ensemble_predictions(members, datas, batch_atoms, device, y_mean, y_std)

    hidden = predict(without_charges(test_data, _charged(members))) if with_charges_hidden else None
    return _evaluation(predict(test_data), y_test, predict(val_data), y_val, hidden, clip_min)


def evaluate_targets(
    members: Sequence[Any],
    test_data: Sequence[Any],
    y_test: np.ndarray,
    val_data: Sequence[Any],
    y_val: np.ndarray,
    batch_atoms: int,
    device: torch.device,
    y_mean: np.ndarray,
    y_std: np.ndarray,
    clip_mins: Sequence[float | None],
    with_charges_hidden: bool,
) -> list[Evaluation]:
    """A multi-target ensemble on the test and validation splits (labels G×T, NaN where a
    MOF lacks one): one :class:`Evaluation` per target, over the MOFs with its label, from
    one pass of each member over each split."""

    def predict(datas: Sequence[Any]) -> np.ndarray:  # K×G×T
        return ensemble_predictions(members, datas, batch_atoms, device, y_mean, y_std)

    test_preds, val_preds = predict(test_data), predict(val_data)
    hidden = predict(without_charges(test_data, _charged(members))) if with_charges_hidden else None
    evaluations = []
    for t, clip_min in enumerate(clip_mins):
        te, va = np.flatnonzero(~np.isnan(y_test[:, t])), np.flatnonzero(~np.isnan(y_val[:, t]))
        e = _evaluation(
            test_preds[:, te, t], y_test[te, t], val_preds[:, va, t], y_val[va, t],
            None if hidden is None else hidden[:, te, t], clip_min,
        )  # fmt: skip
        evaluations.append(replace(e, test_rows=te, val_rows=va))
    return evaluations
