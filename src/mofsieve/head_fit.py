"""Fine-tuning of a model's MLP head alone, its graph trunk frozen
(``mofsieve train --init-from MODEL_DIR --train-only head``).

What for: giving a trained surrogate new crystal descriptors (e.g. the force-field ones of
:mod:`mofsieve.descriptors.energy_grid`) without training its graph layers again. The trunk's
pooled crystal vectors do not change while the head trains, so they are computed once per
member (one forward pass over the training and validation crystals) and the head trains on
them in seconds per epoch, where a whole model takes minutes. The head then reads
``pooled ⊕ descriptors`` (:meth:`mofsieve.model.CrystalRegressor.head_inputs`) exactly as the
whole model does at prediction time.

Partial charges hidden in training (the model's ``charge_dropout``): the trunk's vectors are
computed twice, with the crystal's charges and without (:func:`mofsieve.evaluation.without_charges`:
charges NaN, and the descriptors made from charges NaN, as featurization leaves a crystal that
neither its CIF nor the charge model could charge); each epoch every training crystal takes
the charge-less version with that probability.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from mofsieve.batching import iter_batches
from mofsieve.evaluation import without_charges
from mofsieve.fit import FitSettings, learning_rate, masked_loss, validation_score
from mofsieve.model import CrystalRegressor

log = logging.getLogger(__name__)

HEAD_BATCH_CRYSTALS = 128  # crystals per step: the head alone is cheap, small steps help it
HEAD_PARAMETERS = ("mlp_in.", "mlp_out.")


def head_inputs(
    model: CrystalRegressor, datas: Sequence[Any], batch_atoms: int, device: torch.device
) -> torch.Tensor:
    """What the head reads for each crystal (G×D): frozen trunk, evaluation mode."""
    rows: list[torch.Tensor | None] = [None] * len(datas)
    model.eval()
    with torch.no_grad():
        for group, batch in iter_batches(datas, batch_atoms):
            batch = batch.to(device)
            pooled, _ = model.crystal_vectors(batch)
            inputs = model.head_inputs(pooled, batch)
            for row, i in enumerate(group):
                rows[i] = inputs[row]
    return torch.stack([r for r in rows if r is not None])


def fit_head(
    k: int,
    model: CrystalRegressor,
    settings: FitSettings,
    train_data: Sequence[Any],
    val_data: Sequence[Any],
    y_val: np.ndarray,
    y_mean: Any,
    y_std: Any,
    device: torch.device,
    charged: Sequence[int] = (),
) -> tuple[CrystalRegressor, dict[str, Any]]:
    """Train member ``k``'s ``mlp_in``/``mlp_out`` on its frozen trunk's crystal vectors;
    return it at its best validation epoch, with a history shaped as
    :func:`mofsieve.fit.fit_member`'s. No checkpoint: the whole fit takes a minute or two.
    ``y_mean``, ``y_std``: floats, or one per target (arrays) for a multi-target head, whose
    loss and best epoch are :func:`~mofsieve.fit.fit_member`'s (labelled entries only)."""
    seed = settings.seed + k
    torch.manual_seed(seed)
    model.to(device)
    t0 = time.time()
    x_train = head_inputs(model, train_data, settings.batch_atoms, device)
    dropout = float(getattr(model.config, "charge_dropout", 0.0))
    x_hidden = None
    if dropout > 0:
        hidden = without_charges(train_data, charged)
        x_hidden = head_inputs(model, hidden, settings.batch_atoms, device)
    x_val = head_inputs(model, val_data, settings.batch_atoms, device)
    y_train = torch.cat([d.y_std.reshape(1, -1) for d in train_data]).to(device)
    if y_train.shape[1] == 1:
        y_train = y_train[:, 0]
    log.info("member %d: trunk vectors of %d training and %d validation crystals in %.0f s",
             k, len(train_data), len(val_data), time.time() - t0)  # fmt: skip

    head = [p for name, p in model.named_parameters() if name.startswith(HEAD_PARAMETERS)]
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name.startswith(HEAD_PARAMETERS))
    optimizer = torch.optim.Adam(head, lr=settings.lr, weight_decay=settings.weight_decay)
    generator = torch.Generator().manual_seed(seed)
    history: dict[str, Any] = {"member": k, "seed": seed, "train_only": "head", "epochs": [],
                               "best_epoch": -1, "best_val_mae": float("inf")}  # fmt: skip
    best_state = None
    for epoch in range(settings.epochs):
        lr = learning_rate(settings, epoch / settings.epochs)
        for group in optimizer.param_groups:
            group["lr"] = lr
        t_epoch = time.time()
        x_epoch = x_train
        if x_hidden is not None:
            hide = torch.rand(len(x_train), generator=generator) < dropout
            x_epoch = torch.where(hide.to(device).unsqueeze(1), x_hidden, x_train)
        total = 0.0
        order = torch.randperm(len(x_train), generator=generator).to(device)
        for index in order.split(HEAD_BATCH_CRYSTALS):
            loss = masked_loss(model.head_output(x_epoch[index]), y_train[index], settings.loss)
            if loss is None:
                continue  # no crystal of the batch has a label (several targets only)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(index)
        with torch.no_grad():
            val_pred = model.head_output(x_val).double().cpu().numpy() * y_std + y_mean
        score, record = validation_score(y_val, val_pred, y_std)
        seconds = time.time() - t_epoch
        history["epochs"].append({"epoch": epoch, "lr": lr,
                                  f"train_{settings.loss}_std": total / len(x_train), **record,
                                  "seconds": seconds})  # fmt: skip
        if score < history["best_val_mae"]:
            history["best_val_mae"], history["best_epoch"] = score, epoch
            best_state = {name: t.detach().clone() for name, t in model.state_dict().items()}
        log.debug("member %d head epoch %d: validation score %.4f", k, epoch, score)
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    if best_state is None:
        raise ValueError(f"member {k} finished no epoch")
    model.load_state_dict(best_state)
    log.info("member %d: head trained %d epochs, best validation MAE %.4f at epoch %d",
             k, settings.epochs, history["best_val_mae"], history["best_epoch"])  # fmt: skip
    return model.eval(), history
