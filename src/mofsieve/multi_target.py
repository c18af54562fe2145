"""The end of a multi-target training run (``mofsieve train --target A --target B …``): the
ensemble evaluated per target, each target calibrated on its own validation MOFs, and the
model directory written (format version 2, :mod:`mofsieve.modeldir`).

Each target is evaluated on the MOFs of the split that have its label (one pass of every
member over each split serves all targets). Besides ``model.json`` (metrics keyed by target
name), the folder gets ``MODEL_CARD.md``, ``split.csv``, ``history.json``,
``test_predictions.csv`` (``mof_id,target,label,prediction,uncertainty``: one row per
labelled MOF and target) and one ``parity-<target>.png`` and ``reliability-<target>.png``
per target, each written atomically.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import replace
from typing import Any

import numpy as np

from mofsieve.modeldir import ModelSpec

log = logging.getLogger(__name__)


def finish_multi_target(
    args: argparse.Namespace,
    members: list[Any],
    histories: list[dict[str, Any]],
    data: Any,
    params: Any,
    config: Any,
    device: Any,
    y_mean: np.ndarray,
    y_std: np.ndarray,
    t_start: float,
    label_sources: dict[str, Any],
    warm: Any = None,
) -> ModelSpec:
    """Evaluate, calibrate and write the multi-target model of ``args.targets``."""
    from mofsieve.evaluation import evaluate_targets
    from mofsieve.metrics import format_metrics
    from mofsieve.model import save_model_dir
    from mofsieve.modelcard import citation_text, target_file_stem, write_model_card
    from mofsieve.modeldir import TargetSpec
    from mofsieve.train import calibrate_at_end, training_record
    from mofsieve.training_data import conditions_from_target

    targets: list[str] = args.targets
    clip_mins = [0.0 if data.non_negative(t) else None for t in range(len(targets))]
    y_val, y_test = data.y("val"), data.y("test")
    evaluations = evaluate_targets(
        members, data.data("test"), y_test, data.data("val"), y_val, args.batch_atoms, device,
        y_mean, y_std, clip_mins, with_charges_hidden=config.use_charge,
    )  # fmt: skip
    metrics: dict[str, Any] = {}
    calibrations = []
    for t, (name, evaluation) in enumerate(zip(targets, evaluations, strict=True)):
        metrics[name] = evaluation.metrics
        log.info("test %s (ensemble of %d): %s", name, len(members),
                 format_metrics(evaluation.metrics["test"]))  # fmt: skip
        calibrations.append(
            calibrate_at_end(
                evaluation, y_val[evaluation.val_rows, t], y_test[evaluation.test_rows, t]
            )  # fmt: skip
        )
    training = training_record(args, histories, data, device, t_start, warm, label_sources)
    labelled = data.y("train"), y_val, y_test
    training["n_labelled_per_target"] = {
        name: {s: int((~np.isnan(y[:, t])).sum()) for s, y in zip(("train", "val", "test"),
                                                                  labelled, strict=True)}
        for t, name in enumerate(targets)
    }  # fmt: skip
    spec = save_model_dir(
        args.out,
        members,
        featurization=replace(
            params, global_feature_names=config.global_features, columns=config.columns
        ),
        targets=[
            TargetSpec(name=name, unit="mol/kg", **conditions_from_target(name), clip_min=clip)
            for name, clip in zip(targets, clip_mins, strict=True)
        ],
        normalisations=[(float(m), float(s)) for m, s in zip(y_mean, y_std, strict=True)],
        calibrations=calibrations,
        variant=args.variant,
        training=training,
        metrics=metrics,
        data_citation=citation_text(args.labels, args.data_citation),
    )
    for name, evaluation, calibration in zip(targets, evaluations, calibrations, strict=True):
        stem = target_file_stem(name)
        t = targets.index(name)
        write_target_plots(args.out, stem, name, y_test[evaluation.test_rows, t],
                           evaluation, calibration)  # fmt: skip
    write_model_card(args.out / "MODEL_CARD.md", spec)
    write_multi_target_outputs(args.out, data, targets, y_test, evaluations, histories)
    log.info("wrote %s", args.out)
    return spec


def write_target_plots(
    out: Any, stem: str, name: str, y_test: np.ndarray, evaluation: Any, calibration: Any
) -> None:
    """``parity-<target>.png`` and, for a calibrated target, ``reliability-<target>.png`` (a
    plot an earlier run left for an uncalibrated target is removed)."""
    from mofsieve.modelcard import parity_plot, reliability_plot

    if len(y_test):
        parity_plot(out / f"parity-{stem}.png", y_test, evaluation.test_mean, name,
                    evaluation.metrics["test"])  # fmt: skip
    if calibration is not None:
        reliability_plot(out / f"reliability-{stem}.png", calibration)
    else:
        (out / f"reliability-{stem}.png").unlink(missing_ok=True)


def write_multi_target_outputs(
    out: Any,
    data: Any,
    targets: list[str],
    y_test: np.ndarray,
    evaluations: list[Any],
    histories: list[dict[str, Any]],
) -> None:
    """``split.csv``, ``test_predictions.csv`` (one row per labelled test MOF and target) and
    ``history.json``."""
    from mofsieve.atomic import write_csv_atomic, write_text_atomic

    write_csv_atomic(
        out / "split.csv", ["mof_id", "split"], ([m, data.split[m]] for m in sorted(data.split))
    )
    test_ids = data.ids["test"]
    rows = []
    for t, (name, e) in enumerate(zip(targets, evaluations, strict=True)):
        for j, row in enumerate(e.test_rows):
            rows.append([test_ids[row], name, f"{y_test[row, t]:.6g}", f"{e.test_mean[j]:.6g}",
                         f"{e.test_spread[j]:.6g}"])  # fmt: skip
    write_csv_atomic(
        out / "test_predictions.csv",
        ["mof_id", "target", "label", "prediction", "uncertainty"],
        rows,
    )
    write_text_atomic(out / "history.json", json.dumps(histories, indent=1) + "\n")
