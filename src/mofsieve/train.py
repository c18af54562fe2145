"""`mofsieve train`: fit an AE-CGCNN ensemble on graph shards and a label CSV.

80/10/10 split by seed over the labelled graphs, standardised targets, Adam (lr 1e-3,
weight decay 5e-4), MSE loss, best epoch on the validation MAE, K ensemble members (seeds
``seed``…``seed+K-1``, same split; uncertainty = their spread). Every epoch writes a
checkpoint per member; ``--resume`` continues from them (a member that finished goes on if
``--epochs`` or ``--time-budget-min`` now allow more). ``--members`` trains some members'
checkpoints only, so that members can run side by side (one per core, or one per SLURM array
task); a last ``--resume`` run without it assembles the ensemble. The model directory gets
``model.json``, one weights file per member, ``MODEL_CARD.md``, ``parity.png``, ``split.csv``
and ``test_predictions.csv``.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
TOP_FRACTION = 0.1


# ---------------------------------------------------------------------------------------------
# CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mofsieve.model import VARIANTS

    parser.add_argument("--labels", required=True, type=Path, help="CSV with mof_id and the target column")
    parser.add_argument("--target", required=True, help="label column to learn (e.g. co2_uptake_mol_per_kg_298K_0.15bar)")
    parser.add_argument("--graphs", required=True, nargs="+", help="graph shards or folders of shard-*.h5")
    parser.add_argument("--out", required=True, type=Path, help="model directory to write")
    parser.add_argument("--variant", default="atten3", choices=sorted(VARIANTS), help="Table I column (default: atten3, AE-CGCNN)")
    parser.add_argument("--readout", choices=("mean", "sum", "attention"), help="override the variant's readout")
    parser.add_argument("--global-features", nargs="*", help="shard global descriptors for the MLP (de- variant: default all in the shards)")
    parser.add_argument("--no-charge", action="store_true", help="do not use partial charges even if the variant does")
    parser.add_argument("--charge-dropout", type=float, help="share of training crystals whose charges are hidden")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--ensemble", type=int, default=3, help="number of members K (default 3)")
    parser.add_argument("--members", type=int, nargs="+",
                        help="train only these members' checkpoints and stop (run members side by side, "
                             "e.g. one per core or array task; then run again with --resume to assemble)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--lr-schedule", choices=("cosine", "constant"), default="cosine",
                        help="cosine decay of the learning rate to 0 over --epochs (default) or constant")
    parser.add_argument("--batch-atoms", type=int, default=3000, help="atoms per training batch (at most)")
    parser.add_argument("--max-atoms-train", type=int, help="leave training crystals with more atoms out (validation/test keep all)")
    parser.add_argument("--select-max-atoms", type=int,
                        help="pick the best epoch on validation crystals of at most this many atoms "
                             "(cheaper per-epoch validation; final metrics use the whole split)")
    parser.add_argument("--train-fraction-used", type=float, default=1.0, help="use only this share of the training split (quick ablations)")
    parser.add_argument("--time-budget-min", type=float, help="stop a member after this many minutes (keeps its best epoch)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--checkpoint-dir", type=Path, help="default: OUT/checkpoints")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoints")
    parser.add_argument("--data-citation", type=Path, help="a SOURCE.md to quote in the card (default: SOURCE.md beside --labels)")
    parser.add_argument("--gas", default=None)
    parser.add_argument("--temperature-k", type=float, default=None)
    parser.add_argument("--pressure-bar", type=float, default=None)


def run(args: argparse.Namespace) -> int:
    from mofsieve.runtime import configure_cpu
    from mofsieve.store import FeaturizationMismatch

    configure_cpu(args.threads)
    try:
        train(args)
    except (FeaturizationMismatch, ValueError, FileNotFoundError, KeyError) as err:
        log.error("%s", err)
        return 2
    return 0


# ---------------------------------------------------------------------------------------------
# Data


def read_labels(path: Path, target: str) -> dict[str, float]:
    """mof_id → target for the rows that have a finite value in ``target``."""
    labels: dict[str, float] = {}
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or "mof_id" not in reader.fieldnames:
            raise ValueError(f"{path} has no mof_id column")
        if target not in reader.fieldnames:
            raise KeyError(f"{path} has no column {target!r} (columns: {reader.fieldnames})")
        for row in reader:
            value = row[target].strip()
            if value == "":
                continue
            y = float(value)
            if math.isfinite(y):
                if row["mof_id"] in labels:
                    raise ValueError(f"{path}: mof_id {row['mof_id']} appears twice")
                labels[row["mof_id"]] = y
    return labels


def make_split(ids: Sequence[str], seed: int) -> dict[str, str]:
    """mof_id → train/val/test, 80/10/10, a permutation of the sorted ids by ``seed``."""
    ordered = sorted(ids)
    perm = np.random.default_rng(seed).permutation(len(ordered))
    n_train = int(round(SPLIT_FRACTIONS[0] * len(ordered)))
    n_val = int(round(SPLIT_FRACTIONS[1] * len(ordered)))
    split = {}
    for rank, idx in enumerate(perm):
        split[ordered[idx]] = "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
    return split


def graph_to_data(graph: Any, global_index: Sequence[int] | None, y: float | None = None) -> Any:
    """A lean PyG Data for the model (no images, no coordinates: training does not need them)."""
    import torch
    from torch_geometric.data import Data

    data = Data(
        z=torch.from_numpy(graph.atomic_number.astype(np.int64)),
        charge=torch.from_numpy(graph.charge.astype(np.float32)),
        lattice=torch.from_numpy(graph.lattice.astype(np.float32)).unsqueeze(0),
        edge_index=torch.from_numpy(np.stack([graph.edge_src, graph.edge_dst]).astype(np.int64)),
        edge_dist=torch.from_numpy(graph.edge_dist.astype(np.float32)),
        num_nodes=graph.n_atoms,
    )
    if global_index:
        values = np.asarray(graph.global_features, dtype=np.float32)[list(global_index)]
        data.global_features = torch.from_numpy(values).unsqueeze(0)
    if y is not None:
        data.y = torch.tensor([y], dtype=torch.float32)
    return data


def pack_by_atoms(n_atoms: Sequence[int], batch_atoms: int, order: Sequence[int]) -> list[list[int]]:
    """Consecutive groups of ``order`` whose atoms add up to at most ``batch_atoms`` (a crystal
    bigger than that gets a batch of its own)."""
    batches: list[list[int]] = []
    current: list[int] = []
    total = 0
    for idx in order:
        n = int(n_atoms[idx])
        if current and total + n > batch_atoms:
            batches.append(current)
            current, total = [], 0
        current.append(int(idx))
        total += n
    if current:
        batches.append(current)
    return batches


def iter_batches(datas: Sequence[Any], batch_atoms: int, order: Sequence[int] | None = None) -> Iterator[tuple[list[int], Any]]:
    from torch_geometric.data import Batch

    order = range(len(datas)) if order is None else order
    n_atoms = [d.num_nodes for d in datas]
    for group in pack_by_atoms(n_atoms, batch_atoms, order):
        yield group, Batch.from_data_list([datas[i] for i in group])


# ---------------------------------------------------------------------------------------------
# Metrics


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def top_recall(y_true: np.ndarray, y_pred: np.ndarray, fraction: float = TOP_FRACTION) -> float:
    """Share of the true top ``fraction`` that is also in the predicted top ``fraction``."""
    k = max(1, int(round(fraction * len(y_true))))
    true_top = set(np.argsort(-y_true, kind="stable")[:k].tolist())
    pred_top = set(np.argsort(-y_pred, kind="stable")[:k].tolist())
    return len(true_top & pred_top) / k


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    err = y_pred - y_true
    ss_tot = float(np.sum((y_true - y_true.mean()) ** 2))
    return {
        "n": int(len(y_true)),
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "r2": float(1.0 - np.sum(err**2) / ss_tot) if ss_tot > 0 else float("nan"),
        "spearman": spearman(y_true, y_pred) if len(y_true) > 1 else float("nan"),
        "top10_recall": top_recall(y_true, y_pred),
    }


# ---------------------------------------------------------------------------------------------
# Training


def conditions_from_target(target: str) -> dict[str, Any]:
    """Gas, temperature and pressure read from a column name like ``co2_uptake_…_298K_0.15bar``."""
    gas = "CO2" if "co2" in target.lower() else None
    t = re.search(r"(\d+(?:\.\d+)?)K", target)
    p = re.search(r"(\d+(?:\.\d+)?)bar", target)
    return {
        "gas": gas,
        "temperature_K": float(t.group(1)) if t else None,
        "pressure_bar": float(p.group(1)) if p else None,
    }


def citation_text(args: argparse.Namespace) -> str | None:
    source = args.data_citation or (args.labels.parent / "SOURCE.md")
    if not source.is_file():
        return None
    text = source.read_text()
    match = re.search(r"^## Origin, licence, citation\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    return (match.group(1) if match else text).strip()


def predict_standardised(model: Any, datas: Sequence[Any], batch_atoms: int, device: Any) -> np.ndarray:
    import torch

    out = np.empty(len(datas), dtype=np.float64)
    model.eval()
    with torch.no_grad():
        for group, batch in iter_batches(datas, batch_atoms):
            out[group] = model(batch.to(device)).double().cpu().numpy()
    return out


def _select_device(name: str) -> Any:
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def train(args: argparse.Namespace) -> None:
    import torch

    from mofsieve.model import AECGCNN, save_model_dir, variant_config
    from mofsieve.store import ShardReader, shard_paths

    t_start = time.time()
    device = _select_device(args.device)
    out: Path = args.out
    ckpt_dir: Path = args.checkpoint_dir or out / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)

    labels = read_labels(args.labels, args.target)
    if not labels:
        raise ValueError(f"no values in column {args.target!r} of {args.labels}")
    readers = [ShardReader(p, in_memory=True) for p in shard_paths(args.graphs)]
    if not readers:
        raise FileNotFoundError(f"no graph shards in {args.graphs}")
    params = readers[0].params
    for reader in readers[1:]:
        params.check_compatible(reader.params, what=str(reader.path))

    overrides: dict[str, Any] = {}
    if args.readout:
        overrides["readout"] = args.readout
    if args.no_charge:
        overrides["use_charge"] = False
    if args.charge_dropout is not None:
        overrides["charge_dropout"] = args.charge_dropout
    if args.global_features is not None:
        overrides["global_features"] = tuple(args.global_features)
    elif args.variant.startswith("de-"):
        overrides["global_features"] = tuple(params.global_feature_names)
        if not params.global_feature_names:
            raise ValueError(f"variant {args.variant} needs global descriptors but the shards have none")
    config = variant_config(args.variant, **overrides)
    missing = [n for n in config.global_features if n not in params.global_feature_names]
    if missing:
        raise ValueError(f"the shards lack global features {missing} (they have {list(params.global_feature_names)})")
    global_index = [params.global_feature_names.index(n) for n in config.global_features]
    model_params = replace(params, global_feature_names=config.global_features)

    # Every labelled graph, once, as lean Data; ids without a graph are reported, not fatal.
    datas: dict[str, Any] = {}
    n_atoms: dict[str, int] = {}
    for reader in readers:
        for i, mof_id in enumerate(reader.ids):
            if mof_id in labels and mof_id not in datas:
                graph = reader.graph(i)
                datas[mof_id] = graph_to_data(graph, global_index, labels[mof_id])
                n_atoms[mof_id] = graph.n_atoms
        reader._cache = None  # the Data hold what training needs; free the shard arrays
    no_graph = sorted(set(labels) - set(datas))
    if no_graph:
        log.warning("%d labelled MOFs have no graph (featurization failures?), e.g. %s",
                    len(no_graph), no_graph[:3])
    split = make_split(list(datas), args.seed)
    ids = {s: sorted(i for i, v in split.items() if v == s) for s in ("train", "val", "test")}
    train_ids = ids["train"]
    if args.train_fraction_used < 1.0:
        keep = np.random.default_rng(args.seed + 7).permutation(len(train_ids))
        keep = np.sort(keep[: int(round(args.train_fraction_used * len(train_ids)))])
        train_ids = [train_ids[i] for i in keep]
    n_capped = 0
    if args.max_atoms_train:
        before = len(train_ids)
        train_ids = [i for i in train_ids if n_atoms[i] <= args.max_atoms_train]
        n_capped = before - len(train_ids)
    if len(train_ids) < 2 or not ids["val"]:
        raise ValueError(f"too few labelled graphs to train ({len(datas)})")
    log.info("%d labelled graphs: %d train used (%d over the atom cap left out), %d val, %d test",
             len(datas), len(train_ids), n_capped, len(ids["val"]), len(ids["test"]))

    y_train = np.array([labels[i] for i in train_ids])
    y_mean, y_std = float(y_train.mean()), float(y_train.std() or 1.0)
    for d in datas.values():
        d.y_std = (d.y - y_mean) / y_std
    train_data = [datas[i] for i in train_ids]
    val_data = [datas[i] for i in ids["val"]]
    test_data = [datas[i] for i in ids["test"]]
    y_val = np.array([labels[i] for i in ids["val"]])
    y_test = np.array([labels[i] for i in ids["test"]])

    # Descriptor standardisation from the training split (same for every member).
    probe = AECGCNN(config)
    descriptor_rows = []
    for _, batch in iter_batches(train_data, 50000):
        raw = probe.raw_descriptors(batch)
        if raw is not None:
            descriptor_rows.append(raw)
    descriptor_stats = torch.cat(descriptor_rows) if descriptor_rows else None

    if args.members:
        bad = [k for k in args.members if not 0 <= k < args.ensemble]
        if bad:
            raise ValueError(f"--members {bad} outside 0..{args.ensemble - 1} (--ensemble {args.ensemble})")
        for k in args.members:
            train_member(args, k, config, train_data, val_data, y_val, y_mean, y_std, descriptor_stats,
                         device, ckpt_dir)
        log.info("trained members %s into %s; run again with --resume (without --members) to "
                 "assemble the ensemble", args.members, ckpt_dir)
        return

    members = []
    histories = []
    for k in range(args.ensemble):
        model, history = train_member(
            args, k, config, train_data, val_data, y_val, y_mean, y_std, descriptor_stats,
            device, ckpt_dir,
        )
        members.append(model)
        histories.append(history)

    # Ensemble on the test split.
    preds = np.stack([
        predict_standardised(m, test_data, args.batch_atoms, device) * y_std + y_mean for m in members
    ])
    if _non_negative(labels):
        preds = np.clip(preds, 0.0, None)  # uptake cannot be negative; predict clips the same way
    test_pred = preds.mean(0)
    test_unc = preds.std(0)
    metrics = regression_metrics(y_test, test_pred)
    member_metrics = [regression_metrics(y_test, p) for p in preds]
    if config.use_charge:
        # CIFs without partial charges (e.g. the core-mof package's) are what users often have.
        uncharged = [d.clone() for d in test_data]
        for d in uncharged:
            d.charge = torch.full_like(d.charge, float("nan"))
        p_nq = np.stack([
            predict_standardised(m, uncharged, args.batch_atoms, device) * y_std + y_mean
            for m in members
        ]).mean(0)
        metrics_no_charge = regression_metrics(y_test, np.clip(p_nq, 0.0, None) if _non_negative(labels) else p_nq)
    else:
        metrics_no_charge = None
    val_preds = np.stack([
        predict_standardised(m, val_data, args.batch_atoms, device) * y_std + y_mean for m in members
    ]).mean(0)
    val_metrics = regression_metrics(y_val, val_preds)
    log.info("test (ensemble of %d): %s", len(members), _fmt(metrics))

    seconds_per_epoch = [h["seconds"] for hist in histories for h in hist["epochs"]]
    meta = {
        "target": {
            "name": args.target,
            "unit": "mol/kg",
            "conditions": {
                **conditions_from_target(args.target),
                **({"gas": args.gas} if args.gas else {}),
                **({"temperature_K": args.temperature_k} if args.temperature_k else {}),
                **({"pressure_bar": args.pressure_bar} if args.pressure_bar else {}),
            },
            "clip_min": 0.0 if _non_negative(labels) else None,
        },
        "normalisation": {"mean": y_mean, "std": y_std},
        "featurization": {
            "cutoff": model_params.cutoff,
            "max_neighbors": model_params.max_neighbors,
            "atom_features": model_params.atom_features,
            "global_feature_names": list(model_params.global_feature_names),
        },
        "variant": args.variant,
        "training": {
            "labels": str(args.labels),
            "labels_sha1": _sha1(args.labels),
            "graphs": [str(r.path) for r in readers],
            "n_labelled_with_graph": len(datas),
            "n_labelled_without_graph": len(no_graph),
            "split": {
                "seed": args.seed, "fractions": list(SPLIT_FRACTIONS),
                "n_train": len(ids["train"]), "n_train_used": len(train_ids),
                "n_val": len(ids["val"]), "n_test": len(ids["test"]),
                "file": "split.csv",
            },
            "max_atoms_train": args.max_atoms_train,
            "select_max_atoms": args.select_max_atoms,
            "n_train_over_atom_cap": n_capped,
            "train_fraction_used": args.train_fraction_used,
            "epochs": args.epochs,
            "time_budget_min_per_member": args.time_budget_min,
            "ensemble": args.ensemble,
            "optimizer": {"name": "Adam", "lr": args.lr, "weight_decay": args.weight_decay,
                          "schedule": args.lr_schedule},
            "loss": "MSE on standardised target",
            "batch_atoms": args.batch_atoms,
            "threads": args.threads,
            "device": str(device),
            "best_epochs": [h["best_epoch"] for h in histories],
            "lr_restarts": [lr_restarts(h) for h in histories],
            "epochs_run": [len(h["epochs"]) for h in histories],
            "seconds_per_epoch_mean": float(np.mean(seconds_per_epoch)) if seconds_per_epoch else None,
            "wall_seconds": time.time() - t_start,
        },
        "metrics": {"test": metrics, "val": val_metrics, "test_members": member_metrics,
                    "test_without_charges": metrics_no_charge},
        "data_citation": citation_text(args),
    }
    save_model_dir(out, members, meta)
    with open(out / "split.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["mof_id", "split"])
        for mof_id in sorted(split):
            writer.writerow([mof_id, split[mof_id]])
    with open(out / "test_predictions.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["mof_id", "label", "prediction", "uncertainty"])
        for mof_id, y, p, u in zip(ids["test"], y_test, test_pred, test_unc, strict=True):
            writer.writerow([mof_id, f"{y:.6g}", f"{p:.6g}", f"{u:.6g}"])
    (out / "history.json").write_text(json.dumps(histories, indent=1) + "\n")
    parity_plot(out / "parity.png", y_test, test_pred, args.target, metrics)
    write_model_card(out / "MODEL_CARD.md", json.loads((out / "model.json").read_text()))
    log.info("wrote %s", out)


def lr_restarts(history: dict[str, Any]) -> list[int]:
    """Epochs (from 0) where the learning rate went up: a finished member resumed with a
    longer budget (a warm restart of the cosine schedule)."""
    epochs = history["epochs"]
    return [b["epoch"] for a, b in zip(epochs[:-1], epochs[1:], strict=True) if b["lr"] > 1.5 * a["lr"] and b["lr"] > 1e-5]


def _non_negative(labels: dict[str, float]) -> bool:
    return min(labels.values()) >= 0.0


def _sha1(path: Path) -> str:
    import hashlib

    return hashlib.sha1(path.read_bytes()).hexdigest()


def _fmt(m: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in m.items())


def train_member(
    args: argparse.Namespace, k: int, config: Any, train_data: Sequence[Any], val_data: Sequence[Any],
    y_val: np.ndarray, y_mean: float, y_std: float, descriptor_stats: Any, device: Any,
    ckpt_dir: Path,
) -> tuple[Any, dict[str, Any]]:
    """Train member ``k`` (or resume it), return it at its best validation epoch."""
    import torch

    from mofsieve.model import AECGCNN

    seed = args.seed + k
    select = [i for i, d in enumerate(val_data)
              if not args.select_max_atoms or d.num_nodes <= args.select_max_atoms]
    select_data = [val_data[i] for i in select]
    y_select = y_val[select]
    ckpt_path = ckpt_dir / f"member-{k}.ckpt.pt"
    torch.manual_seed(seed)
    model = AECGCNN(config)
    if descriptor_stats is not None:
        model.fit_descriptor_scaling(descriptor_stats)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    history: dict[str, Any] = {"member": k, "seed": seed, "epochs": [], "best_epoch": -1,
                               "best_val_mae": float("inf")}
    best_state = None
    start_epoch = 0
    if args.resume and ckpt_path.is_file():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=True)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        best_state = ckpt["best_state"]
        history = json.loads(ckpt["history"])
        start_epoch = int(ckpt["epoch"]) + 1
        log.info("member %d: resumed after epoch %d (best val MAE %.4f at epoch %d)",
                 k, start_epoch - 1, history["best_val_mae"], history["best_epoch"])
        # A finished member goes on only if --epochs or --time-budget-min now allow more
        # (a warm restart: the cosine schedule picks up where the longer budget puts it).
    budget_s = 60 * args.time_budget_min if args.time_budget_min else None
    for epoch in range(start_epoch, args.epochs):
        # Progress through the schedule is epochs or time, whichever runs out first, so that a
        # time-limited run still ends with a decayed learning rate.
        # Time spent is the sum of the recorded epochs, so that a run resumed with the same
        # budget finds it spent exactly as the run that wrote the checkpoint did.
        spent = sum(e["seconds"] for e in history["epochs"])
        progress = epoch / args.epochs
        if budget_s:
            if spent >= budget_s:
                log.info("member %d: time budget of %.0f min spent, stopping after %d epochs",
                         k, args.time_budget_min, epoch)
                break
            progress = max(progress, spent / budget_s)
        lr = args.lr
        if args.lr_schedule == "cosine":
            lr = 0.5 * args.lr * (1 + math.cos(math.pi * progress))
        for group in optimizer.param_groups:
            group["lr"] = lr
        t0 = time.time()
        rng = np.random.default_rng(seed * 100003 + epoch)
        torch.manual_seed(seed * 100003 + epoch)
        model.train()
        total, count = 0.0, 0
        order = rng.permutation(len(train_data))
        for _, batch in iter_batches(train_data, args.batch_atoms, order):
            if batch.num_graphs < 2:
                continue  # BatchNorm needs more than one value per channel in training mode
            batch = batch.to(device)
            loss = torch.nn.functional.mse_loss(model(batch), batch.y_std)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * batch.num_graphs
            count += batch.num_graphs
        val_pred = predict_standardised(model, select_data, args.batch_atoms, device) * y_std + y_mean
        vm = regression_metrics(y_select, val_pred)
        seconds = time.time() - t0
        history["epochs"].append({"epoch": epoch, "lr": lr, "train_mse_std": total / max(count, 1),
                                  "val_mae": vm["mae"], "val_spearman": vm["spearman"],
                                  "seconds": seconds})
        improved = vm["mae"] < history["best_val_mae"]
        if improved:
            history["best_val_mae"], history["best_epoch"] = vm["mae"], epoch
            best_state = {name: t.detach().clone() for name, t in model.state_dict().items()}
        log.info("member %d epoch %3d/%d  lr %.2e  train mse %.4f  val MAE %.4f  Spearman %.4f  %5.1fs%s",
                 k, epoch + 1, args.epochs, lr, total / max(count, 1), vm["mae"], vm["spearman"],
                 seconds, "  *" if improved else "")
        _save_checkpoint(ckpt_path, model, optimizer, best_state, history, epoch, finished=False)
    if best_state is None:
        raise ValueError(f"member {k} finished no epoch")
    _save_checkpoint(ckpt_path, model, optimizer, best_state, history,
                     len(history["epochs"]) - 1, finished=True)
    model.load_state_dict(best_state)
    return model.eval(), history


def _save_checkpoint(path: Path, model: Any, optimizer: Any, best_state: Any, history: dict[str, Any],
                     epoch: int, finished: bool) -> None:
    import torch

    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "best_state": best_state, "history": json.dumps(history), "epoch": epoch,
                "finished": finished}, tmp)
    tmp.replace(path)


# ---------------------------------------------------------------------------------------------
# Report


def parity_plot(path: Path, y_true: np.ndarray, y_pred: np.ndarray, target: str, metrics: dict[str, float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=120)
    hi = float(max(np.max(y_true), np.max(y_pred))) * 1.05
    ax.plot([0, hi], [0, hi], color="0.6", lw=1)
    ax.scatter(y_true, y_pred, s=5, alpha=0.5, edgecolors="none")
    ax.set_xlim(0, hi)
    ax.set_ylim(0, hi)
    ax.set_xlabel("GCMC uptake (mol/kg)")
    ax.set_ylabel("predicted uptake (mol/kg)")
    ax.set_title(target, fontsize=8)
    ax.text(0.04, 0.96, f"test n={metrics['n']}\nMAE {metrics['mae']:.3f}\nSpearman {metrics['spearman']:.3f}"
            f"\nR² {metrics['r2']:.3f}", transform=ax.transAxes, va="top", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def architecture_sentence(init: dict[str, Any], variant: str) -> str:
    conv = "CGCNN convolution" if init["conv"] == "cgcnn" else "softmax neighbour attention"
    if init["heads"] > 1:
        how = "attention" if init["head_combine"] == "attention" else "averaging"
        conv += f" with {init['heads']} heads combined by {how}"
    if init["edge_update"]:
        conv += ", with edge convolution"
    if init["use_charge"]:
        charges = (
            "used when the CIF has them (hidden from "
            f"{init['charge_dropout']:.0%} of training crystals so that CIFs without charges work)"
        )
    else:
        charges = "not used"
    return (
        f"Variant `{variant}`: {init['num_layers']} layers of {conv}; atom features "
        f"{init['atom_dim']}; {init['readout']} readout; MLP with {init['mlp_hidden']} hidden units. "
        f"Partial charges: {charges}. Cell descriptors (lattice lengths/angles, volume per atom, "
        f"density): {'yes' if init['use_cell'] else 'no'}. Shard global descriptors: "
        f"{', '.join(init['global_features']) or 'none'}."
    )


def write_model_card(path: Path, meta: dict[str, Any]) -> None:
    t = meta["target"]
    c = t["conditions"]
    tr = meta["training"]
    m = meta["metrics"]["test"]
    v = meta["metrics"]["val"]
    init = meta["init"]
    members = meta["metrics"]["test_members"]
    nq = meta["metrics"].get("test_without_charges")
    spe = tr.get("seconds_per_epoch_mean")
    lines = [
        f"# Model card: {meta['variant']} surrogate for `{t['name']}`",
        "",
        f"Predicts {c.get('gas')} uptake at {c.get('temperature_K')} K and {c.get('pressure_bar')} bar "
        f"in {t['unit']} (pure gas, rigid framework, as the GCMC labels were computed) from a MOF's "
        "crystal graph. An ensemble of "
        f"{len(meta['weights'])} AE-CGCNN members; `uncertainty` is their standard deviation.",
        "",
        "## Intended use",
        "Ranking large sets of MOF CIFs to pick candidates for GCMC; not a replacement for it. "
        "Outside the chemistry of CoRE MOF 2019 (e.g. hypothetical or flexible frameworks) "
        "predictions are extrapolations.",
        "",
        "## Test metrics (held-out split, never used for training or model selection)",
        "",
        "| set | n | MAE (mol/kg) | RMSE | R² | Spearman | top-10 % recall |",
        "|---|---|---|---|---|---|---|",
        f"| test, ensemble | {m['n']} | {m['mae']:.3f} | {m['rmse']:.3f} | {m['r2']:.3f} | "
        f"{m['spearman']:.3f} | {m['top10_recall']:.3f} |",
        *[f"| test, member {k} | {mm['n']} | {mm['mae']:.3f} | {mm['rmse']:.3f} | {mm['r2']:.3f} | "
          f"{mm['spearman']:.3f} | {mm['top10_recall']:.3f} |" for k, mm in enumerate(members)],
        *([f"| test, ensemble, charges hidden | {nq['n']} | {nq['mae']:.3f} | {nq['rmse']:.3f} | "
           f"{nq['r2']:.3f} | {nq['spearman']:.3f} | {nq['top10_recall']:.3f} |"] if nq else []),
        f"| validation, ensemble | {v['n']} | {v['mae']:.3f} | {v['rmse']:.3f} | {v['r2']:.3f} | "
        f"{v['spearman']:.3f} | {v['top10_recall']:.3f} |",
        "",
        "Parity plot of the test split: `parity.png`. Test predictions: `test_predictions.csv`. "
        "The row with charges hidden is the same test split predicted as if the CIFs had no "
        "`_atom_site_charge` (NaN charges), which is what CIFs from the `core-mof` package look like.",
        "",
        "## Architecture",
        "",
        architecture_sentence(init, meta["variant"]),
        "",
        "Implementation notes: every layer computes `W·(v_i ⊕ v_j ⊕ e)` as `W_i v_i + W_j v_j + "
        "W_e e` (node terms once per atom); attention heads share the message projection and "
        "differ in their scores, so a layer aggregates once however many heads it has; in the "
        "head-attention layer the softmax over heads is computed from each atom's features. The "
        "Gaussian expansion of distances (0–8 Å, step 0.2 Å) runs inside the model.",
        "",
        "## Training",
        "",
        f"- Labels: `{Path(tr['labels']).name}` (sha1 {tr['labels_sha1'][:12]}), column `{t['name']}`; "
        f"{tr['n_labelled_with_graph']} labelled MOFs with a graph "
        f"({tr['n_labelled_without_graph']} labelled MOFs could not be featurized).",
        f"- Split: 80/10/10 by seed {tr['split']['seed']}: {tr['split']['n_train']} train, "
        f"{tr['split']['n_val']} validation, {tr['split']['n_test']} test (`split.csv`).",
        "- Cell-size cap for training only: "
        + (f"crystals with more than {tr['max_atoms_train']} atoms in the unit cell were left out of "
           f"training ({tr['n_train_over_atom_cap']} of the training split); validation and test keep every size."
           if tr.get("max_atoms_train") else "none."),
        f"- Training crystals used: {tr['split']['n_train_used']}"
        + (f" (a {tr['train_fraction_used']:.0%} subsample)" if tr.get("train_fraction_used", 1) < 1 else "") + ".",
        f"- Adam, lr {tr['optimizer']['lr']} ({tr['optimizer']['schedule']} schedule), weight decay "
        f"{tr['optimizer']['weight_decay']}, MSE on the standardised target (mean {meta['normalisation']['mean']:.4f}, "
        f"std {meta['normalisation']['std']:.4f} mol/kg), batches of at most {tr['batch_atoms']} atoms.",
        f"- Epoch budget {tr['epochs']} per member"
        + (f" and a time budget of {tr['time_budget_min_per_member']:g} min per member (the cosine "
           "schedule follows whichever runs out first)" if tr.get("time_budget_min_per_member") else "")
        + f"; epochs run {tr['epochs_run']}; best (validation MAE) epochs {tr['best_epochs']} "
        "(epochs counted from 0).",
        *([f"- Warm restarts: training was resumed with a longer budget after the schedule had "
           f"decayed, so the learning rate rose again at epochs {tr['lr_restarts']} per member."]
          if any(tr.get("lr_restarts") or []) else []),
        f"- Measured: {spe:.0f} s per epoch (training + validation) on {tr['threads']} CPU threads ({tr['device']})."
        if spe else "- Seconds per epoch: not measured.",
        f"- Predictions are clipped at {t['clip_min']} mol/kg (uptake cannot be negative)." if t.get("clip_min") is not None else "",
        "",
        "## Featurization (graphs must match; `mofsieve predict` refuses others)",
        "",
        f"cutoff {meta['featurization']['cutoff']} Å, {meta['featurization']['max_neighbors']} nearest neighbours, "
        f"atom features `{meta['featurization']['atom_features']}`, global features "
        f"{meta['featurization']['global_feature_names'] or 'none'}.",
        "",
        "## Data and citations",
        "",
        meta.get("data_citation") or "(no data citation given)",
        "",
        "Model: Cong, G. et al., AE-CGCNN (attention-enhanced crystal graph CNN); "
        "Xie, T. & Grossman, J. C., Phys. Rev. Lett. 120, 145301 (2018) (CGCNN).",
        "",
    ]
    path.write_text("\n".join(line for line in lines) + "\n")
