"""The fit loop of one ensemble member, with a checkpoint every epoch.

Adam, MSE (or, ``loss="l1"``, the mean absolute error) on the standardised target, cosine (or constant) learning rate over the epoch or
time budget, best epoch on the validation MAE. Every epoch writes the member's checkpoint
atomically; a run resumed from it goes on where it stopped, and a finished member goes on
when the epoch or time budget has grown (a warm restart, recorded by :func:`lr_restarts`).
A fine-tuned member (``train --init-from``) starts from the weights of its source member
(``init_state``: every parameter and buffer, descriptor scaling and BatchNorm statistics
included) instead of a random initialisation.

A multi-target member (``y_mean``/``y_std`` one per target, labels G×T with NaN where a MOF
has no label) minimises the mean squared (or absolute) standardised error over the labelled
entries only (:func:`masked_loss`), and its best epoch is the one with the lowest mean over targets of the
validation MAE divided by the target's standard deviation (:func:`validation_score`: each
target counts alike whatever its scale).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mofsieve.atomic import atomic_output
from mofsieve.batching import iter_batches
from mofsieve.evaluation import predict_standardised
from mofsieve.metrics import regression_metrics
from mofsieve.model import CrystalRegressor, build_model

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitSettings:
    epochs: int = 50
    lr: float = 1e-3
    weight_decay: float = 5e-4
    lr_schedule: str = "cosine"  # or "constant"
    batch_atoms: int = 3000
    time_budget_min: float | None = None  # per member; keeps its best epoch
    select_max_atoms: int | None = None  # best epoch picked on val crystals up to this size
    seed: int = 0
    resume: bool = False
    loss: str = "mse"  # or "l1": see LOSSES


# The training losses on the standardised target. MSE is the default; L1 fits the conditional
# median, which is what the MAE the models are judged by rewards, and a heavy upper tail
# (uptakes at 16 bar) pulls it less.
LOSSES = ("mse", "l1")


def checkpoint_path(ckpt_dir: Path, k: int) -> Path:
    return ckpt_dir / f"member-{k}.ckpt.pt"


def lr_restarts(history: dict[str, Any]) -> list[int]:
    """Epochs (from 0) where the learning rate went up: a finished member resumed with a
    longer budget (a warm restart of the cosine schedule)."""
    epochs = history["epochs"]
    return [
        b["epoch"]
        for a, b in zip(epochs[:-1], epochs[1:], strict=True)
        if b["lr"] > 1.5 * a["lr"] and b["lr"] > 1e-5
    ]


def learning_rate(settings: FitSettings, progress: float) -> float:
    if settings.lr_schedule == "cosine":
        return 0.5 * settings.lr * (1 + math.cos(math.pi * progress))
    return settings.lr


def masked_loss(
    prediction: torch.Tensor, y_std: torch.Tensor, kind: str = "mse"
) -> torch.Tensor | None:
    """The training loss (``kind``: one of :data:`LOSSES`) on the standardised target; for
    several targets (G×T) the mean over the labelled (non-NaN) entries only, so that a missing
    label sends no gradient to its output (None when the batch has no labelled entry)."""
    if kind not in LOSSES:
        raise ValueError(f"loss {kind!r}: choose from {list(LOSSES)}")
    if prediction.dim() > 1:
        labelled = ~torch.isnan(y_std)
        if not bool(labelled.any()):
            return None
        # indexing (not multiplying by a mask) keeps NaN labels out of the graph altogether
        prediction, y_std = prediction[labelled], y_std[labelled]
    error = prediction - y_std
    return (error**2).mean() if kind == "mse" else error.abs().mean()


def validation_score(
    y: np.ndarray, prediction: np.ndarray, y_std: Any
) -> tuple[float, dict[str, Any]]:
    """(what picks the best epoch, what the history records) for validation labels and
    predictions in the target's unit: the MAE for one target; for several (G×T, NaN where
    unlabelled) the mean over targets of MAE / the target's std, with each target's MAE and
    Spearman."""
    if prediction.ndim == 1:
        vm = regression_metrics(y, prediction)
        return vm["mae"], {"val_mae": vm["mae"], "val_spearman": vm["spearman"]}
    maes, rhos, scaled = [], [], []
    for t in range(prediction.shape[1]):
        labelled = ~np.isnan(y[:, t])
        if not labelled.any():  # no validation label of this target: it cannot choose
            maes.append(float("nan"))
            rhos.append(float("nan"))
            continue
        vm = regression_metrics(y[labelled, t], prediction[labelled, t])
        maes.append(vm["mae"])
        rhos.append(vm["spearman"])
        scaled.append(vm["mae"] / float(np.asarray(y_std)[t]))
    score = float(np.mean(scaled))
    return score, {"val_mae": maes, "val_spearman": rhos, "val_score": score}


def _format_score(record: dict[str, Any]) -> str:
    if isinstance(record["val_mae"], list):
        maes = " ".join(f"{v:.4f}" for v in record["val_mae"])
        rhos = " ".join(f"{v:.4f}" for v in record["val_spearman"])
        return f"val MAE/std {record['val_score']:.4f}  MAE {maes}  Spearman {rhos}"
    return f"val MAE {record['val_mae']:.4f}  Spearman {record['val_spearman']:.4f}"


def fit_member(
    k: int,
    config: Any,
    settings: FitSettings,
    train_data: Sequence[Any],
    val_data: Sequence[Any],
    y_val: np.ndarray,
    y_mean: Any,
    y_std: Any,
    descriptor_stats: torch.Tensor | None,
    device: torch.device,
    ckpt_dir: Path,
    init_state: dict[str, torch.Tensor] | None = None,
) -> tuple[CrystalRegressor, dict[str, Any]]:
    """Train member ``k`` (or resume it), return it at its best validation epoch.

    ``init_state``: start from these weights (a warm start) rather than a random
    initialisation; a checkpoint to resume from takes precedence. ``y_mean``, ``y_std``:
    floats, or one per target (arrays) for a multi-target model."""
    seed = settings.seed + k
    select = [
        i
        for i, d in enumerate(val_data)
        if not settings.select_max_atoms or d.num_nodes <= settings.select_max_atoms
    ]
    select_data = [val_data[i] for i in select]
    y_select = y_val[select]
    ckpt_path = checkpoint_path(ckpt_dir, k)
    torch.manual_seed(seed)
    model = build_model(config)
    if init_state is not None:
        model.load_state_dict(init_state)  # strict: the same architecture, or an error
    elif descriptor_stats is not None:
        model.fit_descriptor_scaling(descriptor_stats)
    model.to(device)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    history: dict[str, Any] = {
        "member": k,
        "seed": seed,
        "epochs": [],
        "best_epoch": -1,
        "best_val_mae": float("inf"),
    }
    best_state = None
    start_epoch = 0
    if settings.resume and ckpt_path.is_file():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=True)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        best_state = ckpt["best_state"]
        history = json.loads(ckpt["history"])
        start_epoch = int(ckpt["epoch"]) + 1
        log.info(
            "member %d: resumed after epoch %d (best val MAE %.4f at epoch %d)",
            k,
            start_epoch - 1,
            history["best_val_mae"],
            history["best_epoch"],
        )
        # A finished member goes on only if the epochs or the time budget now allow more
        # (a warm restart: the cosine schedule picks up where the longer budget puts it).
    budget_s = 60 * settings.time_budget_min if settings.time_budget_min else None
    for epoch in range(start_epoch, settings.epochs):
        # Progress through the schedule is epochs or time, whichever runs out first, so that a
        # time-limited run still ends with a decayed learning rate. Time spent is the sum of
        # the recorded epochs, so that a run resumed with the same budget finds it spent
        # exactly as the run that wrote the checkpoint did.
        spent = sum(e["seconds"] for e in history["epochs"])
        progress = epoch / settings.epochs
        if budget_s:
            if spent >= budget_s:
                log.info(
                    "member %d: time budget of %.0f min spent, stopping after %d epochs",
                    k,
                    settings.time_budget_min,
                    epoch,
                )
                break
            progress = max(progress, spent / budget_s)
        lr = learning_rate(settings, progress)
        for group in optimizer.param_groups:
            group["lr"] = lr
        t0 = time.time()
        rng = np.random.default_rng(seed * 100003 + epoch)
        torch.manual_seed(seed * 100003 + epoch)
        train_loss = _train_epoch(
            model, optimizer, train_data, settings.batch_atoms, rng, device, settings.loss
        )
        val_pred = (
            predict_standardised(model, select_data, settings.batch_atoms, device) * y_std + y_mean
        )
        score, record = validation_score(y_select, val_pred, y_std)
        seconds = time.time() - t0
        history["epochs"].append(
            {
                "epoch": epoch,
                "lr": lr,
                f"train_{settings.loss}_std": train_loss,
                **record,
                "seconds": seconds,
            }  # fmt: skip
        )
        # (several targets: "best_val_mae" holds the mean MAE/std over targets)
        improved = score < history["best_val_mae"]
        if improved:
            history["best_val_mae"], history["best_epoch"] = score, epoch
            best_state = {name: t.detach().clone() for name, t in model.state_dict().items()}
        log.info(
            "member %d epoch %3d/%d  lr %.2e  train %s %.4f  %s  %5.1fs%s",
            k,
            epoch + 1,
            settings.epochs,
            lr,
            settings.loss,
            train_loss,
            _format_score(record),
            seconds,
            "  *" if improved else "",
        )
        save_checkpoint(ckpt_path, model, optimizer, best_state, history, epoch, finished=False)
    if best_state is None:
        raise ValueError(f"member {k} finished no epoch")
    save_checkpoint(
        ckpt_path,
        model,
        optimizer,
        best_state,
        history,
        len(history["epochs"]) - 1,
        finished=True,
    )
    model.load_state_dict(best_state)
    return model.eval(), history


def _train_epoch(
    model: CrystalRegressor,
    optimizer: torch.optim.Optimizer,
    train_data: Sequence[Any],
    batch_atoms: int,
    rng: np.random.Generator,
    device: torch.device,
    loss_kind: str = "mse",
) -> float:
    """One pass over the training data in a random order; the mean standardised loss
    (:func:`masked_loss`)."""
    model.train()
    total, count = 0.0, 0
    order = rng.permutation(len(train_data))
    for _, batch in iter_batches(train_data, batch_atoms, order):
        if batch.num_graphs < 2:
            continue  # BatchNorm needs more than one value per channel in training mode
        batch = batch.to(device)
        loss = masked_loss(model(batch), batch.y_std, loss_kind)
        if loss is None:
            continue  # no MOF of the batch has a label (several targets only)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item() * batch.num_graphs
        count += batch.num_graphs
    return total / max(count, 1)


def save_checkpoint(
    path: Path,
    model: CrystalRegressor,
    optimizer: torch.optim.Optimizer,
    best_state: dict[str, torch.Tensor] | None,
    history: dict[str, Any],
    epoch: int,
    finished: bool,
) -> None:
    """Model, optimizer, best state and history, written atomically."""
    with atomic_output(path) as tmp:
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "best_state": best_state,
                "history": json.dumps(history),
                "epoch": epoch,
                "finished": finished,
            },
            tmp,
        )
