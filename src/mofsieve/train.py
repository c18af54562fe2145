"""`mofsieve train`: fit an AE-CGCNN (default) or OCrystalNet ensemble on graph shards and a
label CSV (``--architecture``; :mod:`mofsieve.model`, :mod:`mofsieve.ocrystalnet`).

Reads as load → fit → evaluate → write: the labelled graphs and their 80/10/10 split
(:mod:`mofsieve.training_data`), K members fitted with a checkpoint every epoch
(:mod:`mofsieve.fit`; seeds ``seed``…``seed+K-1``, same split; uncertainty = their spread),
the ensemble evaluated on the held-out splits (:mod:`mofsieve.evaluation`), and the model
directory written (:func:`mofsieve.model.save_model_dir`, :mod:`mofsieve.modelcard`):
``model.json``, one weights file per member, ``MODEL_CARD.md``, ``parity.png``,
``split.csv``, ``test_predictions.csv`` and ``history.json``, each written atomically.
``--resume`` continues from the checkpoints (a member that finished goes on if ``--epochs``
or ``--time-budget-min`` now allow more). ``--members`` trains some members' checkpoints only,
so that members can run side by side (one per core, or one per SLURM array task); a last
``--resume`` run without it assembles the ensemble.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


ARCHITECTURES = ("aecgcnn", "ocrystalnet")
DEFAULT_VARIANT = {"aecgcnn": "atten3", "ocrystalnet": "ocrystalnet"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mofsieve.model import VARIANTS
    from mofsieve.ocrystalnet import ATOM_INPUTS
    from mofsieve.ocrystalnet import VARIANTS as OCRYSTALNET_VARIANTS

    parser.add_argument(
        "--labels", required=True, type=Path, help="CSV with mof_id and the target column"
    )
    parser.add_argument(
        "--target",
        required=True,
        help="label column to learn (e.g. co2_uptake_mol_per_kg_298K_0.15bar)",
    )
    parser.add_argument(
        "--graphs", required=True, nargs="+", help="graph shards or folders of shard-*.h5"
    )
    parser.add_argument("--out", required=True, type=Path, help="model directory to write")
    parser.add_argument(
        "--architecture",
        default="aecgcnn",
        choices=ARCHITECTURES,
        help="aecgcnn (default) or ocrystalnet (needs graphs featurized with "
        "--columns reverse_edges,orbital_neighbour_sum)",
    )
    parser.add_argument(
        "--variant",
        choices=sorted(VARIANTS) + sorted(OCRYSTALNET_VARIANTS),
        help="aecgcnn: a Table I column (default atten3, AE-CGCNN); ocrystalnet: ocrystalnet "
        "(default) or de-ocrystalnet (with the shards' global descriptors)",
    )
    parser.add_argument(
        "--atom-input",
        choices=ATOM_INPUTS,
        help="ocrystalnet: the atom input (default ofm+cfid; the others are its ablations)",
    )
    parser.add_argument(
        "--readout", choices=("mean", "sum", "attention"), help="override the variant's readout"
    )
    parser.add_argument(
        "--global-features",
        nargs="*",
        help="shard global descriptors for the MLP (de- variant: default all in the shards)",
    )
    parser.add_argument(
        "--no-charge",
        action="store_true",
        help="do not use partial charges even if the variant does",
    )
    parser.add_argument(
        "--charge-dropout", type=float, help="share of training crystals whose charges are hidden"
    )
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--ensemble", type=int, default=3, help="number of members K (default 3)")
    parser.add_argument(
        "--members",
        type=int,
        nargs="+",
        help="train only these members' checkpoints and stop (run members side by side, "
        "e.g. one per core or array task; then run again with --resume to assemble)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument(
        "--lr-schedule",
        choices=("cosine", "constant"),
        default="cosine",
        help="cosine decay of the learning rate to 0 over --epochs (default) or constant",
    )
    parser.add_argument(
        "--batch-atoms", type=int, default=3000, help="atoms per training batch (at most)"
    )
    parser.add_argument(
        "--max-atoms-train",
        type=int,
        help="leave training crystals with more atoms out (validation/test keep all)",
    )
    parser.add_argument(
        "--select-max-atoms",
        type=int,
        help="pick the best epoch on validation crystals of at most this many atoms "
        "(cheaper per-epoch validation; final metrics use the whole split)",
    )
    parser.add_argument(
        "--train-fraction-used",
        type=float,
        default=1.0,
        help="use only this share of the training split (quick ablations)",
    )
    parser.add_argument(
        "--time-budget-min",
        type=float,
        help="stop a member after this many minutes (keeps its best epoch)",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--checkpoint-dir", type=Path, help="default: OUT/checkpoints")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoints")
    parser.add_argument(
        "--data-citation",
        type=Path,
        help="a SOURCE.md to quote in the card (default: SOURCE.md beside --labels)",
    )
    parser.add_argument("--gas", default=None)
    parser.add_argument("--temperature-k", type=float, default=None)
    parser.add_argument("--pressure-bar", type=float, default=None)


def run(args: argparse.Namespace) -> int:
    from mofsieve.featurization_params import FeaturizationMismatch
    from mofsieve.runtime import configure_cpu

    configure_cpu(args.threads)
    try:
        train(args)
    except (FeaturizationMismatch, ValueError, FileNotFoundError, KeyError, RuntimeError) as err:
        log.error("%s", err)
        return 2
    return 0


def model_config(args: argparse.Namespace, shard_globals: tuple[str, ...]) -> Any:
    """The architecture from ``--architecture``, ``--variant`` and the options that override
    it."""
    from mofsieve import model, ocrystalnet

    architecture = getattr(args, "architecture", "aecgcnn")
    family = ocrystalnet if architecture == "ocrystalnet" else model
    if args.variant is None:
        args.variant = DEFAULT_VARIANT[architecture]
    if args.variant not in family.VARIANTS:
        raise ValueError(
            f"--variant {args.variant} is not a variant of {architecture} "
            f"(choose from {sorted(family.VARIANTS)})"
        )
    overrides: dict[str, Any] = {}
    if getattr(args, "atom_input", None):
        if architecture != "ocrystalnet":
            raise ValueError("--atom-input is an option of --architecture ocrystalnet")
        overrides["atom_input"] = args.atom_input
    if args.readout:
        overrides["readout"] = args.readout
    if args.no_charge:
        overrides["use_charge"] = False
    if args.charge_dropout is not None:
        overrides["charge_dropout"] = args.charge_dropout
    if args.global_features is not None:
        overrides["global_features"] = tuple(args.global_features)
    elif args.variant.startswith("de-"):
        if not shard_globals:
            raise ValueError(
                f"variant {args.variant} needs global descriptors but the shards have none"
            )
        overrides["global_features"] = shard_globals
    config = family.variant_config(args.variant, **overrides)
    missing = [n for n in config.global_features if n not in shard_globals]
    if missing:
        raise ValueError(
            f"the shards lack global features {missing} (they have {list(shard_globals)})"
        )
    return config


def fit_settings(args: argparse.Namespace) -> Any:
    from mofsieve.fit import FitSettings

    return FitSettings(
        epochs=args.epochs,
        lr=args.lr,
        weight_decay=args.weight_decay,
        lr_schedule=args.lr_schedule,
        batch_atoms=args.batch_atoms,
        time_budget_min=args.time_budget_min,
        select_max_atoms=args.select_max_atoms,
        seed=args.seed,
        resume=args.resume,
    )


def train(args: argparse.Namespace) -> None:
    import torch

    from mofsieve.batching import iter_batches, select_device
    from mofsieve.evaluation import evaluate_ensemble
    from mofsieve.fit import fit_member
    from mofsieve.metrics import format_metrics
    from mofsieve.model import build_model
    from mofsieve.store import ShardReader, shard_paths
    from mofsieve.training_data import load_training_set, read_labels, shard_featurization

    t_start = time.time()
    device = select_device(args.device)
    ckpt_dir: Path = args.checkpoint_dir or args.out / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)

    # load
    labels = read_labels(args.labels, args.target)
    if not labels:
        raise ValueError(f"no values in column {args.target!r} of {args.labels}")
    readers = [ShardReader(p, in_memory=True) for p in shard_paths(args.graphs)]
    if not readers:
        raise FileNotFoundError(f"no graph shards in {args.graphs}")
    params = shard_featurization(readers)
    config = model_config(args, params.global_feature_names)
    global_index = [params.global_feature_names.index(n) for n in config.global_features]
    lacking = [c for c in config.columns if c not in params.columns]
    if lacking:
        raise ValueError(
            f"the shards lack the graph column(s) {lacking} that {type(config).__name__} needs "
            f"(they have {list(params.columns)}); featurize with `mofsieve featurize --columns "
            f"{','.join(config.columns)} …`"
        )
    data = load_training_set(
        labels, readers, global_index, args.seed, args.train_fraction_used, args.max_atoms_train,
        columns=config.columns,
    )  # fmt: skip
    y_train = data.y("train")
    y_mean, y_std = float(y_train.mean()), float(y_train.std() or 1.0)
    for d in data.datas.values():
        d.y_std = (d.y - y_mean) / y_std
    train_data, val_data, test_data = data.data("train"), data.data("val"), data.data("test")
    y_val, y_test = data.y("val"), data.y("test")
    # descriptor standardisation from the training split (the same for every member)
    probe = build_model(config)
    rows = [probe.raw_descriptors(batch) for _, batch in iter_batches(train_data, 50000)]
    descriptor_stats = torch.cat(rows) if rows and rows[0] is not None else None

    # fit
    settings = fit_settings(args)
    if args.members:
        bad = [k for k in args.members if not 0 <= k < args.ensemble]
        if bad:
            raise ValueError(
                f"--members {bad} outside 0..{args.ensemble - 1} (--ensemble {args.ensemble})"
            )
    fitted = [
        fit_member(k, config, settings, train_data, val_data, y_val, y_mean, y_std,
                   descriptor_stats, device, ckpt_dir)
        for k in (args.members or range(args.ensemble))
    ]  # fmt: skip
    if args.members:
        log.info(
            "trained members %s into %s; run again with --resume (without --members) to "
            "assemble the ensemble",
            args.members,
            ckpt_dir,
        )
        return
    members = [model for model, _ in fitted]
    histories = [history for _, history in fitted]

    # evaluate
    clip_min = 0.0 if data.non_negative() else None  # uptake cannot be negative
    metrics, test_pred, test_unc = evaluate_ensemble(
        members, test_data, y_test, val_data, y_val, args.batch_atoms, device, y_mean, y_std,
        clip_min, with_charges_hidden=config.use_charge,
    )  # fmt: skip
    log.info("test (ensemble of %d): %s", len(members), format_metrics(metrics["test"]))

    # write
    write_model(args, members, histories, data, params, config, metrics, device, y_mean, y_std,
                clip_min, t_start)  # fmt: skip
    write_outputs(args.out, data, y_test, test_pred, test_unc, histories, args.target,
                  metrics["test"])  # fmt: skip
    log.info("wrote %s", args.out)


def write_model(
    args: argparse.Namespace,
    members: list[Any],
    histories: list[dict[str, Any]],
    data: Any,
    params: Any,
    config: Any,
    metrics: dict[str, Any],
    device: Any,
    y_mean: float,
    y_std: float,
    clip_min: float | None,
    t_start: float,
) -> Any:
    """Weights and ``model.json`` (the training record in it), then the model card."""
    from mofsieve.fit import lr_restarts
    from mofsieve.model import save_model_dir
    from mofsieve.modelcard import citation_text, write_model_card
    from mofsieve.modeldir import TargetSpec
    from mofsieve.training_data import SPLIT_FRACTIONS, conditions_from_target

    conditions = conditions_from_target(args.target)
    seconds_per_epoch = [h["seconds"] for hist in histories for h in hist["epochs"]]
    training = {
        "labels": str(args.labels),
        "labels_sha1": hashlib.sha1(args.labels.read_bytes()).hexdigest(),
        "graphs": data.shard_paths,
        "n_labelled_with_graph": len(data.datas),
        "n_labelled_without_graph": len(data.no_graph),
        "split": {
            "seed": args.seed,
            "fractions": list(SPLIT_FRACTIONS),
            "n_train": len(data.ids["train"]),
            "n_train_used": len(data.train_ids),
            "n_val": len(data.ids["val"]),
            "n_test": len(data.ids["test"]),
            "file": "split.csv",
        },
        "max_atoms_train": args.max_atoms_train,
        "select_max_atoms": args.select_max_atoms,
        "n_train_over_atom_cap": data.n_over_atom_cap,
        "train_fraction_used": args.train_fraction_used,
        "epochs": args.epochs,
        "time_budget_min_per_member": args.time_budget_min,
        "ensemble": args.ensemble,
        "optimizer": {
            "name": "Adam",
            "lr": args.lr,
            "weight_decay": args.weight_decay,
            "schedule": args.lr_schedule,
        },
        "loss": "MSE on standardised target",
        "batch_atoms": args.batch_atoms,
        "threads": args.threads,
        "device": str(device),
        "best_epochs": [h["best_epoch"] for h in histories],
        "lr_restarts": [lr_restarts(h) for h in histories],
        "epochs_run": [len(h["epochs"]) for h in histories],
        "seconds_per_epoch_mean": float(np.mean(seconds_per_epoch)) if seconds_per_epoch else None,
        "wall_seconds": time.time() - t_start,
    }
    spec = save_model_dir(
        args.out,
        members,
        featurization=replace(
            params, global_feature_names=config.global_features, columns=config.columns
        ),
        target=TargetSpec(
            name=args.target,
            unit="mol/kg",
            gas=args.gas or conditions["gas"],
            temperature_K=args.temperature_k or conditions["temperature_K"],
            pressure_bar=args.pressure_bar or conditions["pressure_bar"],
            clip_min=clip_min,
        ),
        normalisation_mean=y_mean,
        normalisation_std=y_std,
        variant=args.variant,
        training=training,
        metrics=metrics,
        data_citation=citation_text(args.labels, args.data_citation),
    )
    write_model_card(args.out / "MODEL_CARD.md", spec)
    return spec


def write_outputs(
    out: Path,
    data: Any,
    y_test: np.ndarray,
    test_pred: np.ndarray,
    test_unc: np.ndarray,
    histories: list[dict[str, Any]],
    target: str,
    test_metrics: dict[str, Any],
) -> None:
    """``split.csv``, ``test_predictions.csv``, ``history.json`` and ``parity.png``."""
    from mofsieve.atomic import write_csv_atomic, write_text_atomic
    from mofsieve.modelcard import parity_plot

    write_csv_atomic(
        out / "split.csv", ["mof_id", "split"], ([m, data.split[m]] for m in sorted(data.split))
    )
    write_csv_atomic(
        out / "test_predictions.csv",
        ["mof_id", "label", "prediction", "uncertainty"],
        (
            [mof_id, f"{y:.6g}", f"{p:.6g}", f"{u:.6g}"]
            for mof_id, y, p, u in zip(data.ids["test"], y_test, test_pred, test_unc, strict=True)
        ),
    )
    write_text_atomic(out / "history.json", json.dumps(histories, indent=1) + "\n")
    parity_plot(out / "parity.png", y_test, test_pred, target, test_metrics)
