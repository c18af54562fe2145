"""Train the per-atom charge model on graph shards whose CIFs carry partial charges.

``python -m mofsieve.charge_training --graphs DIR... --out models/charges`` reads every
crystal whose atoms all have a charge and whose cell is neutral (|Σq| ≤ 0.01 e), splits them
80/10/10 **by CSD refcode family** (``KEJQAR`` and ``KEJQAR01`` land on the same side, so
the test split measures charges of frameworks the model has not seen in another refinement),
trains :class:`mofsieve.charge_net.ChargeNet` on the per-atom L1 error with Adam and a cosine
schedule over a time budget, keeps the state of the best validation MAE, and writes the model
folder of :mod:`mofsieve.charge_model` with a card of the test-split errors.
"""

from __future__ import annotations

import argparse
import logging
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mofsieve.atomic import atomic_output, write_csv_atomic, write_text_atomic
from mofsieve.batching import pack_by_atoms
from mofsieve.charge_model import ChargeModelSpec, write_spec
from mofsieve.charge_net import ChargeNet
from mofsieve.store import ShardReader, read_params, shard_paths

log = logging.getLogger(__name__)

NEUTRAL_TOLERANCE = 0.01  # e per cell: CIFs with a charged cell are not training material
SPLIT_NAMES = ("train", "val", "test")


@dataclass
class ChargeData:
    """Every usable crystal of some shards, concatenated (the edge arrays of all graphs)."""

    ids: list[str]
    node_ptr: np.ndarray
    edge_ptr: np.ndarray
    atomic_number: np.ndarray
    charge: np.ndarray
    edge_src: np.ndarray
    edge_dst: np.ndarray
    edge_dist: np.ndarray

    def n_atoms(self) -> np.ndarray:
        return np.diff(self.node_ptr)

    def batch(self, graphs: list[int]) -> tuple[torch.Tensor, ...]:
        """``(z, edge_index, edge_dist, batch, charge)`` of some graphs as one batch."""
        z, q, src, dst, dist, owner = [], [], [], [], [], []
        offset = 0
        for k, g in enumerate(graphs):
            a, b = self.node_ptr[g], self.node_ptr[g + 1]
            e0, e1 = self.edge_ptr[g], self.edge_ptr[g + 1]
            z.append(self.atomic_number[a:b])
            q.append(self.charge[a:b])
            src.append(self.edge_src[e0:e1].astype(np.int64) + offset)
            dst.append(self.edge_dst[e0:e1].astype(np.int64) + offset)
            dist.append(self.edge_dist[e0:e1])
            owner.append(np.full(b - a, k, dtype=np.int64))
            offset += b - a
        return (
            torch.from_numpy(np.concatenate(z).astype(np.int64)),
            torch.from_numpy(np.stack([np.concatenate(src), np.concatenate(dst)])),
            torch.from_numpy(np.concatenate(dist).astype(np.float32)),
            torch.from_numpy(np.concatenate(owner)),
            torch.from_numpy(np.concatenate(q).astype(np.float32)),
        )


def load_charge_data(inputs: list[str]) -> tuple[ChargeData, int]:
    """The crystals of the shards with a charge on every atom and a neutral cell; how many
    crystals were left out."""
    ids: list[str] = []
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("z", "q", "src", "dst", "dist")}
    n_nodes, n_edges = [0], [0]
    left_out = 0
    for path in shard_paths(inputs):
        for graph in ShardReader(path, in_memory=True):
            q = graph.charge.astype(np.float64)
            if not np.isfinite(q).all() or abs(q.sum()) > NEUTRAL_TOLERANCE:
                left_out += 1
                continue
            ids.append(graph.mof_id)
            parts["z"].append(graph.atomic_number)
            parts["q"].append(graph.charge.astype(np.float32))
            parts["src"].append(graph.edge_src)
            parts["dst"].append(graph.edge_dst)
            parts["dist"].append(graph.edge_dist.astype(np.float32))
            n_nodes.append(graph.n_atoms)
            n_edges.append(graph.edge_src.shape[0])
    data = ChargeData(
        ids,
        np.cumsum(n_nodes),
        np.cumsum(n_edges),
        *(np.concatenate(parts[k]) for k in ("z", "q", "src", "dst", "dist")),
    )
    return data, left_out


def refcode_family(mof_id: str) -> str:
    """The CSD refcode letters of a CoRE name (``KEJQAR01_clean`` → ``KEJQAR``)."""
    match = re.match(r"[A-Za-z]+", mof_id)
    return (match.group(0) if match else mof_id).upper()


def family_split(ids: list[str], seed: int, fractions=(0.8, 0.1, 0.1)) -> np.ndarray:
    """Split label (0 train, 1 val, 2 test) per crystal; whole refcode families per side."""
    families = sorted({refcode_family(m) for m in ids})
    order = np.random.default_rng(seed).permutation(len(families))
    bounds = np.cumsum(fractions)[:-1] * len(families)
    side = np.searchsorted(bounds, np.arange(len(families)), side="right")
    family_side = {families[i]: int(side[k]) for k, i in enumerate(order)}
    return np.array([family_side[refcode_family(m)] for m in ids], dtype=np.int64)


def predict_graphs(
    network: ChargeNet, data: ChargeData, graphs: list[int], batch_atoms: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(predicted, true, atomic number)`` per atom of ``graphs``."""
    network.eval()
    pred, true, z_all = [], [], []
    with torch.inference_mode():
        for chunk in pack_by_atoms(data.n_atoms(), batch_atoms, graphs):
            z, edge_index, dist, owner, q = data.batch(chunk)
            pred.append(network(z, edge_index, dist, owner, len(chunk)).numpy())
            true.append(q.numpy())
            z_all.append(z.numpy())
    return np.concatenate(pred), np.concatenate(true), np.concatenate(z_all)


def train(
    data: ChargeData,
    split: np.ndarray,
    init: dict[str, float | int],
    epochs: int,
    time_budget_s: float,
    batch_atoms: int,
    lr: float,
    seed: int,
    val_graphs_max: int = 400,
) -> tuple[ChargeNet, dict[str, object]]:
    """Fit on the train split; the state of the best validation MAE; the training record."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    network = ChargeNet(**init)
    optimizer = torch.optim.Adam(network.parameters(), lr=lr)
    train_graphs = np.flatnonzero(split == 0)
    val_graphs = np.flatnonzero(split == 1)
    val_graphs = sorted(rng.choice(val_graphs, min(val_graphs_max, len(val_graphs)), False))
    n_atoms = data.n_atoms()
    steps_per_epoch = len(pack_by_atoms(n_atoms, batch_atoms, train_graphs))
    total_steps = epochs * steps_per_epoch
    start = time.monotonic()
    best = (math.inf, -1, None)
    history = []
    step = 0
    for epoch in range(epochs):
        network.train()
        batches = pack_by_atoms(n_atoms, batch_atoms, rng.permutation(train_graphs))
        losses = []
        for chunk in batches:
            # Cosine over whichever runs out first, the steps or the time budget.
            progress = max(step / total_steps, (time.monotonic() - start) / time_budget_s)
            for group in optimizer.param_groups:
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
            z, edge_index, dist, owner, q = data.batch(chunk)
            optimizer.zero_grad()
            loss = (network(z, edge_index, dist, owner, len(chunk)) - q).abs().mean()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            step += 1
            if progress >= 1.0:
                break
        pred, true, _ = predict_graphs(network, data, val_graphs, batch_atoms)
        val_mae = float(np.abs(pred - true).mean())
        history.append({"epoch": epoch, "train_mae": float(np.mean(losses)), "val_mae": val_mae})
        log.info(
            "epoch %d: train MAE %.4f, validation MAE %.4f e (%.0f s)",
            epoch,
            np.mean(losses),
            val_mae,
            time.monotonic() - start,
        )
        if val_mae < best[0]:
            best = (val_mae, epoch, {k: v.clone() for k, v in network.state_dict().items()})
        if progress >= 1.0:
            break
    network.load_state_dict(best[2])
    record = {
        "epochs_run": len(history),
        "best_epoch": best[1],
        "steps": step,
        "seconds": time.monotonic() - start,
        "history": history,
        "n_val_graphs_for_selection": len(val_graphs),
    }
    return network, record


def test_metrics(pred: np.ndarray, true: np.ndarray, z: np.ndarray, baseline: np.ndarray):
    """Per-atom errors overall and per element (elements with ≥ 50 test atoms)."""
    from ase.data import chemical_symbols

    err = np.abs(pred - true)
    per_element = {}
    for element in np.unique(z):
        mask = z == element
        if mask.sum() >= 50:
            per_element[chemical_symbols[int(element)]] = {
                "n": int(mask.sum()),
                "mae": float(err[mask].mean()),
                "mae_element_mean": float(np.abs(baseline[element] - true[mask]).mean()),
            }
    return {
        "n_atoms": int(err.size),
        "mae": float(err.mean()),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "pearson_r": float(np.corrcoef(pred, true)[0, 1]),
        "share_over_0.1e": float((err > 0.1).mean()),
        "mae_element_mean_baseline": float(np.abs(baseline[z] - true).mean()),
        "per_element": per_element,
    }


def model_card(spec: ChargeModelSpec, n_split: dict[str, int], left_out: int) -> str:
    test = spec.metrics["test"]
    t = spec.training
    rows = "\n".join(
        f"| {el} | {m['n']} | {m['mae']:.4f} | {m['mae_element_mean']:.4f} |"
        for el, m in sorted(test["per_element"].items(), key=lambda kv: -kv[1]["n"])
    )
    return f"""# Model card: per-atom partial charges for GCMC (`models/charges`)

Predicts one partial charge per framework atom (e) from the crystal graph (12 nearest
neighbours within {spec.cutoff} Å, periodic), with the cell made exactly neutral: the network
gives raw charges and a softness per atom, and the cell's excess is taken back in proportion
to softness. Used by `mofsieve charges`, `mofsieve simulate --charges model|cif_or_model` and
the GCMC hand-off for CIFs without charges (e.g. the `core-mof` package's).

## Intended use
Electrostatics of rigid frameworks in CO2 GCMC screening, where a CIF has no charges. Trained
on the charges of the CoRE MOF 2019 CIFs below, which are EQeq charges (Open Babel's EQeq with
the cell handling of `mofsieve.eqeq` reproduces them at r = 1.000 on the MOFs checked in
`tests/test_eqeq.py`): the model gives EQeq-like charges in milliseconds, also for elements
Open Babel's EQeq has no data for, and with the labels' own charge scheme. Frameworks unlike
the training set (elements never seen are refused) are extrapolations. Not a replacement for
DDEC/REPEAT charges of a final candidate.

## Test metrics (MOFs held out of training by refcode family)

| set | atoms | MAE (e) | RMSE (e) | Pearson r | share of atoms with error > 0.1 e |
|---|---|---|---|---|---|
| test | {test["n_atoms"]} | {test["mae"]:.4f} | {test["rmse"]:.4f} | {test["pearson_r"]:.4f} | {test["share_over_0.1e"]:.4f} |

Baseline (every atom gets its element's mean training charge): MAE
{test["mae_element_mean_baseline"]:.4f} e. Validation MAE (model selection, {t["n_val_graphs_for_selection"]} MOFs):
{spec.metrics["val_selection_mae"]:.4f} e.

Per element (≥ 50 test atoms):

| element | atoms | MAE (e) | element-mean baseline MAE (e) |
|---|---|---|---|
{rows}

## Training

- Data: the CIFs of `../shared/data/core2019-co2/cifs.tar.xz` (CoRE MOF 2019 with partial charges,
  `_atom_site_charge`), featurized with `mofsieve featurize`; crystals without a charge on
  every atom or with |net charge| > {NEUTRAL_TOLERANCE} e left out ({left_out}).
- Split 80/10/10 by refcode family (seed {t["seed"]}): {n_split["train"]} train, {n_split["val"]}
  validation, {n_split["test"]} test crystals (`split.csv`).
- Network: {spec.init}; L1 loss per atom; Adam lr {t["lr"]} with a cosine schedule over
  {t["epochs"]} epochs or {t["time_budget_min"]} min, whichever ends first; batches of at most
  {t["batch_atoms"]} atoms; best validation epoch {t["best_epoch"]} of {t["epochs_run"]}
  ({t["seconds"] / 60:.1f} min on {t["threads"]} CPU thread(s)).
- Command: `{t["command"]}`

## Data and citations
- Structures and charges: CoRE MOF 2019, Chung, Y. G. et al. J. Chem. Eng. Data 64, 5985 (2019),
  doi:10.1021/acs.jced.9b00835 (CC BY 4.0); the charged copies are from the GitHub repository
  `zakariyyabrewster/CGCNN_MOF`, `test_datasets/CoRE2019/`, commit 0682190.
- Network: crystal graph convolutions of Xie, T. & Grossman, J. C., Phys. Rev. Lett. 120, 145301
  (2018); charge neutrality by distributing the excess over atoms, as in message-passing
  charge models for MOFs (e.g. Raza, A. et al., J. Phys. Chem. C 124, 19070 (2020)).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--graphs", nargs="+", required=True, help="shard files or folders")
    parser.add_argument("--out", type=Path, required=True, help="model folder to write")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--time-budget-min", type=float, default=45.0)
    parser.add_argument("--batch-atoms", type=int, default=6000)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--atom-dim", type=int, default=64)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)


def run(args: argparse.Namespace, argv: list[str]) -> int:
    torch.set_num_threads(args.threads)
    data, left_out = load_charge_data(args.graphs)
    split = family_split(data.ids, args.seed)
    n_split = {name: int((split == k).sum()) for k, name in enumerate(SPLIT_NAMES)}
    log.info("%d crystals (%s), %d left out", len(data.ids), n_split, left_out)
    init = {"atom_dim": args.atom_dim, "num_layers": args.layers}
    network, record = train(
        data,
        split,
        init,
        args.epochs,
        args.time_budget_min * 60.0,
        args.batch_atoms,
        args.lr,
        args.seed,
    )
    train_atoms = np.concatenate(
        [np.arange(data.node_ptr[g], data.node_ptr[g + 1]) for g in np.flatnonzero(split == 0)]
    )
    baseline = np.zeros(256)
    z_train, q_train = data.atomic_number[train_atoms], data.charge[train_atoms]
    for element in np.unique(z_train):
        baseline[element] = q_train[z_train == element].mean()
    test_graphs = list(np.flatnonzero(split == 2))
    pred, true, z = predict_graphs(network, data, test_graphs, args.batch_atoms)
    metrics = {
        "test": test_metrics(pred, true, z, baseline),
        "val_selection_mae": record["history"][record["best_epoch"]]["val_mae"],
    }
    log.info("test MAE %.4f e over %d atoms", metrics["test"]["mae"], metrics["test"]["n_atoms"])
    record.update(
        seed=args.seed,
        lr=args.lr,
        epochs=args.epochs,
        time_budget_min=args.time_budget_min,
        batch_atoms=args.batch_atoms,
        threads=args.threads,
        command="python -m mofsieve.charge_training " + " ".join(argv),
        split={"method": "refcode family", **n_split},
    )
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_output(args.out / "weights.pt") as tmp:
        torch.save(network.state_dict(), tmp)
    params = read_params(shard_paths(args.graphs)[0])
    spec = ChargeModelSpec(
        init=init,
        cutoff=params.cutoff,
        max_neighbors=params.max_neighbors,
        elements=tuple(int(e) for e in np.unique(z_train)),
        weights="weights.pt",
        metrics=metrics,
        training=record,
    )
    write_csv_atomic(
        args.out / "split.csv",
        ("mof_id", "split"),
        ([m, SPLIT_NAMES[s]] for m, s in zip(data.ids, split, strict=True)),
    )
    write_text_atomic(args.out / "MODEL_CARD.md", model_card(spec, n_split, left_out))
    write_spec(args.out, spec)
    return 0


def main(argv: list[str] | None = None) -> int:
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m mofsieve.charge_training", description=__doc__)
    add_arguments(parser)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return run(parser.parse_args(argv), argv)


if __name__ == "__main__":
    raise SystemExit(main())
