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

At the end the ensemble's spread is calibrated on the validation split
(:mod:`mofsieve.calibrate`; ``reliability.png``), when it has enough MOFs.
``--init-from MODEL_DIR`` fine-tunes an existing model instead of training from scratch (a
warm start, :mod:`mofsieve.warm_start`: its architecture, featurization, normalisation, members
and split; fewer epochs and a lower learning rate by default). ``--simulated-labels`` lays a
run's GCMC uptakes (``validation.csv``) over ``--labels``; the merged labels the model saw are
written to ``OUT/labels.csv``.

``--target`` given more than once trains a multi-target model: one output per target on a
shared trunk and hidden layer (:class:`mofsieve.model.CrystalRegressor`), each target
standardised on its own training values, the loss over the labelled entries only (a MOF
with one label trains one output), the split over the MOFs with any label
(:mod:`mofsieve.training_data`), and metrics, calibration, parity and reliability plots per
target (``parity-<target>.png``, ``reliability-<target>.png``; ``test_predictions.csv`` gets
a ``target`` column). ``--simulated-labels`` then need ``--simulated-target``, the target
whose values they are. With ``--init-from`` a
single-target model becomes a multi-target one when ``--target`` names its target and new
ones (:mod:`mofsieve.warm_start`: the source's trunk, a new head; ``--train-only head`` trains
that head alone).

``--loss l1`` trains on the absolute instead of the squared standardised error.
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

from mofsieve.training_data import SIMULATED_COLUMN
from mofsieve.warm_start import FINETUNE_EPOCHS, FINETUNE_LR

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
        action="append",
        help="label column to learn (e.g. co2_uptake_mol_per_kg_298K_0.15bar); give it again "
        "for a multi-target model (one output per target); with --init-from, default and only "
        "choice: the model's target",
    )
    parser.add_argument(
        "--graphs", required=True, nargs="+", help="graph shards or folders of shard-*.h5"
    )
    parser.add_argument("--out", required=True, type=Path, help="model directory to write")
    parser.add_argument(
        "--init-from",
        type=Path,
        metavar="MODEL_DIR",
        help="fine-tune this model (warm start from its members' weights; its architecture, "
        "featurization, normalisation and split; defaults become --epochs "
        f"{FINETUNE_EPOCHS} --lr {FINETUNE_LR:g})",
    )
    parser.add_argument(
        "--simulated-labels",
        type=Path,
        metavar="CSV",
        help="simulated uptakes (a run's validation.csv: mof_id and --simulated-column) that "
        "replace or extend --labels for their MOFs; the merged labels go to OUT/labels.csv",
    )
    parser.add_argument(
        "--simulated-column",
        default=SIMULATED_COLUMN,
        help=f"column of --simulated-labels with the value (default {SIMULATED_COLUMN})",
    )
    parser.add_argument(
        "--simulated-target",
        help="with --simulated-labels and several targets: the target whose values they are "
        "(e.g. the run's ranking target at its pressure)",
    )
    parser.add_argument(
        "--architecture",
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
    parser.add_argument(
        "--descriptor-clip",
        type=float,
        help="clip the standardised descriptors to ±this many standard deviations before the "
        "MLP (default: no clipping); with --init-from only together with added descriptors",
    )
    parser.add_argument(
        "--train-only",
        choices=("all", "head"),
        default="all",
        help="with --init-from: 'head' trains the MLP head alone on the frozen graph layers "
        "(e.g. after --global-features added descriptors to the source's); default all",
    )
    parser.add_argument(
        "--epochs", type=int, help=f"epoch budget per member (default 50; {FINETUNE_EPOCHS} "
        "with --init-from)",
    )  # fmt: skip
    parser.add_argument(
        "--ensemble", type=int, help="number of members K (default 3; with --init-from, the "
        "model's)",
    )  # fmt: skip
    parser.add_argument(
        "--members",
        type=int,
        nargs="+",
        help="train only these members' checkpoints and stop (run members side by side, "
        "e.g. one per core or array task; then run again with --resume to assemble)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--lr",
        type=float,
        help=f"peak learning rate (default 1e-3; {FINETUNE_LR:g} with --init-from)",
    )
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument(
        "--loss",
        choices=("mse", "l1"),  # mofsieve.fit.LOSSES, not imported here: it loads torch
        default="mse",
        help="mse (default): squared error on the standardised target; l1: absolute error "
        "(fits the median, which the MAE rewards; a heavy tail of uptakes pulls it less)",
    )
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
    except FeaturizationMismatch as err:
        log.error("refusing to train: %s", err)
        return 3
    except (ValueError, FileNotFoundError, KeyError, RuntimeError) as err:
        log.error("%s", err)
        return 2
    return 0


def settle_defaults(args: argparse.Namespace) -> None:
    """Defaults that depend on whether this is a fine-tuning run (``--init-from``)."""
    finetune = args.init_from is not None
    if args.epochs is None:
        args.epochs = FINETUNE_EPOCHS if finetune else 50
    if args.lr is None:
        args.lr = FINETUNE_LR if finetune else 1e-3
    if args.ensemble is None:
        args.ensemble = 3  # a fine-tuning run has set the source's count already
    if args.target is None and not getattr(args, "targets", None):
        raise ValueError("--target is needed (the label column to learn)")


def settle_targets(args: argparse.Namespace) -> None:
    """``--target`` given once or more: ``args.targets`` (every one), ``args.target`` (the
    one, or None for a multi-target model); the options a multi-target model cannot take are
    refused."""
    given = args.target if isinstance(args.target, list) else [args.target]
    args.targets = [t for t in given if t is not None]
    args.target = args.targets[0] if len(args.targets) == 1 else None
    if len(args.targets) < 2:
        return
    if len(set(args.targets)) != len(args.targets):
        raise ValueError(f"--target names a column twice: {args.targets}")
    refused = {
        "--gas/--temperature-k/--pressure-bar (each target's conditions are read from its "
        "column name)": any(
            v is not None for v in (args.gas, args.temperature_k, args.pressure_bar)
        ),
    }
    for option, given_here in refused.items():
        if given_here:
            raise ValueError(f"{option}: not with several --target (a multi-target model)")


def model_config(args: argparse.Namespace, shard_globals: tuple[str, ...]) -> Any:
    """The architecture from ``--architecture``, ``--variant`` and the options that override
    it."""
    from mofsieve import model, ocrystalnet

    architecture = getattr(args, "architecture", None) or "aecgcnn"
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
    if getattr(args, "descriptor_clip", None) is not None:
        overrides["descriptor_clip"] = args.descriptor_clip
    if len(getattr(args, "targets", None) or ()) > 1:
        overrides["n_targets"] = len(args.targets)  # one output per target
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
        loss=args.loss,
    )


def train(args: argparse.Namespace) -> None:
    from mofsieve.batching import select_device
    from mofsieve.evaluation import evaluate_ensemble
    from mofsieve.fit import fit_member
    from mofsieve.metrics import format_metrics
    from mofsieve.store import ShardReader, shard_paths
    from mofsieve.training_data import load_training_set, shard_featurization
    from mofsieve.warm_start import load_warm_start

    t_start = time.time()
    settle_targets(args)
    if args.simulated_target is not None and args.simulated_labels is None:
        raise ValueError("--simulated-target names the target of --simulated-labels: give both")
    if args.train_only == "head" and (args.init_from is None or args.members):
        raise ValueError(
            "--train-only head needs --init-from (a trained graph trunk to keep) and trains "
            "every member at once (no --members: the head alone takes minutes)"
        )
    warm = load_warm_start(args) if args.init_from is not None else None  # may add targets
    multi = len(args.targets) > 1
    settle_defaults(args)
    device = select_device(args.device)

    # load
    labels, label_sources, simulated_ids = training_labels(args)
    readers = [ShardReader(p, in_memory=True) for p in shard_paths(args.graphs)]
    if not readers:
        raise FileNotFoundError(f"no graph shards in {args.graphs}")
    if warm is not None:
        params, config = warm.check_graphs(readers), warm.config  # shard by shard
    else:
        params = shard_featurization(readers)
        config = model_config(args, params.global_feature_names)
        lacking = [c for c in config.columns if c not in params.columns]
        if lacking:
            raise ValueError(
                f"the shards lack the graph column(s) {lacking} that {type(config).__name__} "
                f"needs (they have {list(params.columns)}); featurize with `mofsieve featurize "
                f"--columns {','.join(config.columns)} …`"
            )
    ckpt_dir: Path = args.checkpoint_dir or args.out / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    data = load_training_set(
        labels, readers, config.global_features, args.seed, args.train_fraction_used,
        args.max_atoms_train, columns=config.columns,
        inherited_split=warm.split if warm is not None else None,
        always_train=simulated_ids,
    )  # fmt: skip
    if warm is not None:
        # the weights were trained on this standardisation: it cannot change (added targets:
        # their training labels')
        y_mean, y_std = warm.normalisation(data.y("train"))
        log.info("fine-tuning on %d training MOFs, %d of them outside %s's split",
                 len(data.train_ids), len(data.new_train_ids), warm.directory)  # fmt: skip
    elif multi:
        y_mean, y_std = target_normalisation(data.y("train"), args.targets)
    else:
        y_train = data.y("train")
        y_mean, y_std = float(y_train.mean()), float(y_train.std() or 1.0)
    for d in data.datas.values():
        d.y_std = standardised(d.y, y_mean, y_std)
    train_data, val_data, test_data = data.data("train"), data.data("val"), data.data("test")
    y_val, y_test = data.y("val"), data.y("test")
    descriptor_stats = None if warm is not None else descriptor_statistics(config, train_data)
    if warm is not None and warm.added_globals:
        warm.set_added_scaling(*added_scaling(config, train_data, len(warm.added_globals)))

    # fit
    settings = fit_settings(args)
    if args.members:
        bad = [k for k in args.members if not 0 <= k < args.ensemble]
        if bad:
            raise ValueError(
                f"--members {bad} outside 0..{args.ensemble - 1} (--ensemble {args.ensemble})"
            )
    if args.train_only == "head":
        fitted = [fit_warm_head(k, warm, config, settings, train_data, val_data, y_val, y_mean,
                                y_std, device) for k in range(args.ensemble)]  # fmt: skip
    else:
        fitted = [
            fit_member(k, config, settings, train_data, val_data, y_val, y_mean, y_std,
                       descriptor_stats, device, ckpt_dir,
                       init_state=warm.states[k] if warm is not None else None)
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

    if multi:
        from mofsieve.multi_target import finish_multi_target

        finish_multi_target(args, members, histories, data, params, config, device, y_mean,
                            y_std, t_start, label_sources, warm)  # fmt: skip
        return

    # evaluate
    if warm is not None:
        clip_min = warm.spec.target.clip_min
    else:
        clip_min = 0.0 if data.non_negative() else None  # uptake cannot be negative
    evaluation = evaluate_ensemble(
        members, test_data, y_test, val_data, y_val, args.batch_atoms, device, y_mean, y_std,
        clip_min, with_charges_hidden=config.use_charge,
    )  # fmt: skip
    metrics = evaluation.metrics
    log.info("test (ensemble of %d): %s", len(members), format_metrics(metrics["test"]))
    if warm is not None and len(test_data):
        metrics["test_before_finetune"] = source_test_metrics(
            warm.directory, test_data, y_test, args.batch_atoms, device, clip_min
        )
        log.info("test, the model before fine-tuning: %s",
                 format_metrics(metrics["test_before_finetune"]))  # fmt: skip
    booster = None
    if warm is not None and warm.spec.booster is not None:
        from mofsieve.booster import finetune_trees

        args.out.mkdir(parents=True, exist_ok=True)
        evaluation, booster = finetune_trees(warm.spec, args.graphs, data, evaluation, args.out,
                                             args.threads or 1)  # fmt: skip
        metrics = evaluation.metrics
        log.info("test (blend with the trees): %s", format_metrics(metrics["test"]))
    calibration = calibrate_at_end(evaluation, y_val, y_test)

    # write
    write_model(args, members, histories, data, params, config, metrics, device, y_mean, y_std,
                clip_min, t_start, calibration, warm, label_sources, booster)  # fmt: skip
    write_outputs(args.out, data, y_test, evaluation.test_mean, evaluation.test_spread,
                  histories, args.target, metrics["test"])  # fmt: skip
    log.info("wrote %s", args.out)


def target_normalisation(y_train: np.ndarray, targets: list[str]) -> tuple[Any, Any]:
    """Mean and std (arrays, one per target) of the training labels G×T, each over the MOFs
    with that label; a target without any training label is an error."""
    counts = (~np.isnan(y_train)).sum(0)
    empty = [t for t, n in zip(targets, counts, strict=True) if n == 0]
    if empty:
        raise ValueError(f"no training MOF has a label of {empty}")
    y_mean = np.nanmean(y_train, axis=0)
    y_std = np.nanstd(y_train, axis=0)
    y_std[~(y_std > 0)] = 1.0
    return y_mean, y_std


def standardised(y: Any, y_mean: Any, y_std: Any) -> Any:
    """A Data's label standardised: by floats (one target) or per target (arrays)."""
    if isinstance(y_mean, np.ndarray):
        import torch

        mean = torch.as_tensor(y_mean, dtype=y.dtype)
        return (y - mean) / torch.as_tensor(y_std, dtype=y.dtype)
    return (y - y_mean) / y_std


def training_labels(
    args: argparse.Namespace,
) -> tuple[dict[str, Any], dict[str, Any], frozenset[str]]:
    """mof_id → label from ``--labels``, with ``--simulated-labels`` laid over them (then
    written to ``OUT/labels.csv``, which becomes the labels the model records), where they
    came from for ``model.json``, and the simulated ids (training always keeps those).
    Several targets: mof_id → one value per target (NaN where it has none)."""
    from mofsieve.training_data import (
        merge_simulated_labels,
        read_label_columns,
        read_labels,
        read_simulated,
        write_labels,
    )

    if len(args.targets) > 1:
        labels: dict[str, Any] = read_label_columns(args.labels, args.targets)
        counts = {t: sum(1 for v in labels.values() if not np.isnan(v[i]))
                  for i, t in enumerate(args.targets)}  # fmt: skip
        empty = [t for t, n in counts.items() if n == 0]
        if empty:
            raise ValueError(f"no values in column(s) {empty} of {args.labels}")
    else:
        labels = read_labels(args.labels, args.target)
        if not labels:
            raise ValueError(f"no values in column {args.target!r} of {args.labels}")
    original = {"path": str(args.labels), "sha1": _sha1(args.labels), "n": len(labels)}
    if args.simulated_labels is None:
        return labels, {"original": original}, frozenset()
    column = simulated_target_column(args)
    simulated = read_simulated(args.simulated_labels, args.simulated_column)
    if not simulated:
        raise ValueError(
            f"no finite values in column {args.simulated_column!r} of {args.simulated_labels}"
        )
    merged = merge_simulated_labels(labels, simulated, column)
    merged_path = write_labels(args.out / "labels.csv", args.targets, merged)
    log.info("%d simulated labels of %s from %s (%d replacing a label, %d new) merged into %s",
             len(simulated), args.targets[column or 0], args.simulated_labels,
             merged.n_replacing, merged.n_added, merged_path)  # fmt: skip
    sources = {
        "original": original,
        "simulated": {
            "path": str(args.simulated_labels),
            "sha1": _sha1(args.simulated_labels),
            "column": args.simulated_column,
            "target": args.targets[column or 0],
            "n_used": len(simulated),
            "n_replacing": merged.n_replacing,
            "n_added": merged.n_added,
        },
        "merged": str(merged_path),
    }
    return merged.labels, sources, frozenset(simulated)


def simulated_target_column(args: argparse.Namespace) -> int | None:
    """Which target ``--simulated-labels`` gives values of: None for a single-target model,
    the index of ``--simulated-target`` among several (which it must name)."""
    name = args.simulated_target
    if name is not None and name not in args.targets:
        raise ValueError(f"--simulated-target {name}: the model's targets are {args.targets}")
    if len(args.targets) == 1:
        return None
    if name is None:
        raise ValueError(
            f"--simulated-labels of a model with several targets {args.targets}: name the "
            "one whose uptakes were simulated with --simulated-target"
        )
    return args.targets.index(name)


def _sha1(path: Path) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def descriptor_statistics(config: Any, train_data: list[Any]) -> Any:
    """Raw descriptors of the training split, for their standardisation (the same for every
    member), or None for a model without descriptors."""
    import torch

    from mofsieve.batching import iter_batches
    from mofsieve.model import build_model

    probe = build_model(config)
    rows = [probe.raw_descriptors(batch) for _, batch in iter_batches(train_data, 50000)]
    return torch.cat(rows) if rows and rows[0] is not None else None


def added_scaling(config: Any, train_data: list[Any], n_added: int) -> tuple[Any, Any]:
    """Mean and standard deviation over the training split of the last ``n_added`` global
    descriptors (those a fine-tuning run adds), as :meth:`fit_descriptor_scaling` sets them."""
    from mofsieve.model import descriptor_scaling

    return descriptor_scaling(descriptor_statistics(config, train_data)[:, -n_added:])


def fit_warm_head(
    k: int, warm: Any, config: Any, settings: Any, train_data: list[Any], val_data: list[Any],
    y_val: np.ndarray, y_mean: float, y_std: float, device: Any,
) -> tuple[Any, dict[str, Any]]:  # fmt: skip
    """Member ``k`` of the source with its head trained again (:mod:`mofsieve.head_fit`)."""
    from mofsieve.descriptors.energy_grid import charged_globals
    from mofsieve.head_fit import fit_head
    from mofsieve.model import build_model

    model = build_model(config)
    model.load_state_dict(warm.states[k])
    return fit_head(k, model, settings, train_data, val_data, y_val, y_mean, y_std, device,
                    charged=charged_globals(config.global_features))  # fmt: skip


def _first_globals(data: Any, count: int) -> Any:
    """A copy of one crystal's Data with only its first ``count`` global descriptors."""
    lean = data.clone()
    lean.global_features = data.global_features[:, :count]
    return lean


def source_test_metrics(
    source: Path, test_data: list[Any], y_test: np.ndarray, batch_atoms: int, device: Any,
    clip_min: float | None,
) -> dict[str, Any]:  # fmt: skip
    """The test metrics of the model a fine-tuning run started from, on this run's test split
    and labels (so the card compares like with like)."""
    from mofsieve.evaluation import ensemble_predictions
    from mofsieve.metrics import regression_metrics
    from mofsieve.model import load_model_dir

    members, spec = load_model_dir(source, device)
    n_source = len(spec.featurization.global_feature_names)
    if test_data and getattr(test_data[0], "global_features", None) is not None:
        if test_data[0].global_features.shape[1] > n_source:  # descriptors added to its head
            test_data = [_first_globals(d, n_source) for d in test_data]
    mean = ensemble_predictions(members, test_data, batch_atoms, device,
                                spec.normalisation_mean, spec.normalisation_std).mean(0)  # fmt: skip
    return regression_metrics(y_test, mean if clip_min is None else np.clip(mean, clip_min, None))


def calibrate_at_end(evaluation: Any, y_val: np.ndarray, y_test: np.ndarray) -> Any:
    """The calibration of the new model on its validation split, or None (with a warning)
    when that split is too small to place a 90 % quantile."""
    from mofsieve.calibrate import MIN_VALIDATION, HeldOut, fit_calibration

    if len(y_val) < MIN_VALIDATION:
        log.warning("validation split of %d MOFs (< %d): the model stays uncalibrated "
                    "(uncertainty = raw ensemble spread)", len(y_val), MIN_VALIDATION)  # fmt: skip
        return None
    calibration = fit_calibration(
        HeldOut(y_val, evaluation.val_mean, evaluation.val_spread),
        HeldOut(y_test, evaluation.test_mean, evaluation.test_spread),
    )
    log.info("%s; 90 %% interval coverage: validation %.3f, test %s", calibration.describe(),
             calibration.coverage_90_validation, calibration.coverage_90_test)  # fmt: skip
    return calibration


def training_record(
    args: argparse.Namespace,
    histories: list[dict[str, Any]],
    data: Any,
    device: Any,
    t_start: float,
    warm: Any = None,
    label_sources: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``model.json``'s ``training``: labels, graphs, split, options and what the fit took."""
    from mofsieve.fit import lr_restarts
    from mofsieve.training_data import SPLIT_FRACTIONS

    seconds_per_epoch = [h["seconds"] for hist in histories for h in hist["epochs"]]
    label_sources = label_sources or {}
    labels_used = Path(label_sources.get("merged", args.labels))
    split: dict[str, Any] = {
        "seed": args.seed,
        "fractions": list(SPLIT_FRACTIONS),
        "n_train": len(data.ids["train"]),
        "n_train_used": len(data.train_ids),
        "n_val": len(data.ids["val"]),
        "n_test": len(data.ids["test"]),
        "file": "split.csv",
    }
    if warm is not None:  # the source's split, new labelled MOFs in training
        source_split = warm.spec.metadata.get("training", {}).get("split", {})
        split["seed"] = source_split.get("seed")
        split["inherited_from"] = str(warm.directory)
        split["n_new_train"] = len(data.new_train_ids)
    training = {
        "labels": str(labels_used),
        "labels_sha1": _sha1(labels_used),
        **({"label_sources": label_sources} if "simulated" in label_sources else {}),
        **({"init_from": warm.record(len(data.new_train_ids))} if warm is not None else {}),
        "graphs": data.shard_paths,
        "n_labelled_with_graph": len(data.datas),
        "n_labelled_without_graph": len(data.no_graph),
        "split": split,
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
        "loss": loss_description(args.loss, several=args.target is None),
        **({"train_only": "head"} if args.train_only == "head" else {}),
        "batch_atoms": args.batch_atoms,
        "threads": args.threads,
        "device": str(device),
        "best_epochs": [h["best_epoch"] for h in histories],
        "lr_restarts": [lr_restarts(h) for h in histories],
        "epochs_run": [len(h["epochs"]) for h in histories],
        "seconds_per_epoch_mean": float(np.mean(seconds_per_epoch)) if seconds_per_epoch else None,
        "wall_seconds": time.time() - t_start,
    }
    return training


def loss_description(kind: str, several: bool) -> str:
    """``training.loss`` of ``model.json`` (the MSE wording is the one earlier models carry)."""
    error = {"mse": "squared", "l1": "absolute"}[kind]
    if not several:
        return "MSE on standardised target" if kind == "mse" else "MAE on standardised target"
    return (
        f"mean over the labelled entries of the {error} standardised errors (one output per "
        "target; a MOF without a target's label sends no gradient to its output)"
    )


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
    calibration: Any = None,
    warm: Any = None,
    label_sources: dict[str, Any] | None = None,
    booster: dict[str, Any] | None = None,
) -> Any:
    """Weights and ``model.json`` (the training record and calibration in it, and the entry
    of trees already written into ``args.out``), then the reliability plot and the model card."""
    from mofsieve.model import save_model_dir
    from mofsieve.modelcard import citation_text, reliability_plot, write_model_card
    from mofsieve.modeldir import TargetSpec
    from mofsieve.training_data import conditions_from_target

    conditions = conditions_from_target(args.target)
    training = training_record(args, histories, data, device, t_start, warm, label_sources)
    if warm is not None:
        target = replace(warm.spec.target, clip_min=clip_min)
    else:
        target = TargetSpec(
            name=args.target,
            unit="mol/kg",
            gas=args.gas or conditions["gas"],
            temperature_K=args.temperature_k or conditions["temperature_K"],
            pressure_bar=args.pressure_bar or conditions["pressure_bar"],
            clip_min=clip_min,
        )
    spec = save_model_dir(
        args.out,
        members,
        featurization=replace(
            params, global_feature_names=config.global_features, columns=config.columns
        ),
        target=target,
        normalisation_mean=y_mean,
        normalisation_std=y_std,
        variant=warm.spec.variant if warm is not None else args.variant,
        training=training,
        metrics=metrics,
        data_citation=citation_text(args.labels, args.data_citation),
        **({"calibration": calibration.to_json()} if calibration is not None else {}),
        **({"booster": booster} if booster is not None else {}),
    )
    if calibration is not None:
        reliability_plot(args.out / "reliability.png", calibration)
    else:  # a plot left by an earlier run into this folder would describe another model
        (args.out / "reliability.png").unlink(missing_ok=True)
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
