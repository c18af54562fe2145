"""`mofsieve predict`: run a shipped or trained model over graph shards.

Writes ``mof_id,prediction,uncertainty,n_atoms`` (ensemble mean and standard deviation, in the
model's unit) atomically, and optionally the attention-pooling weight of every atom to HDF5.
Shards are read one at a time and batched by total atom count, so memory does not grow with
the number of MOFs. Every shard's featurization parameters are checked against the model's
before anything is computed. Atoms the model cannot tell apart (symmetry-equivalent sites,
found exactly by :mod:`mofsieve.symmetry`) are computed once; ``--every-atom`` computes each.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from mofsieve.atomic import atomic_output

log = logging.getLogger(__name__)

COLUMNS = ("mof_id", "prediction", "uncertainty", "n_atoms")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, type=Path, help="model directory (model.json + weights)")
    parser.add_argument("--graphs", required=True, nargs="+", help="graph shards or folders of shard-*.h5")
    parser.add_argument("--out", required=True, type=Path, help="predictions CSV to write")
    parser.add_argument("--attention", type=Path, help="also write per-atom attention-pooling weights (HDF5)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--batch-atoms", type=int, default=8000, help="atoms per batch (at most; a bigger crystal runs alone); on CPU, batches much bigger than the default outgrow the caches and run slower")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--every-atom", action="store_true", help="compute every atom, also those the model cannot tell apart from another (slower; same predictions)")


def run(args: argparse.Namespace) -> int:
    from mofsieve.runtime import configure_cpu
    from mofsieve.store import FeaturizationMismatch, ShardFormatError

    configure_cpu(args.threads)
    try:
        n = predict(args.model, args.graphs, args.out, attention_path=args.attention,
                    device=args.device, batch_atoms=args.batch_atoms,
                    merge_equivalent=not args.every_atom)
    except FeaturizationMismatch as err:
        log.error("refusing to predict: %s", err)
        return 3
    except (ShardFormatError, FileNotFoundError, ValueError) as err:
        log.error("%s", err)
        return 2
    log.info("wrote %d predictions to %s", n, args.out)
    return 0


def select_device(name: str) -> Any:
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def model_featurization(meta: dict[str, Any]) -> Any:
    from mofsieve.store import FeaturizationParams

    f = meta["featurization"]
    return FeaturizationParams(
        cutoff=float(f["cutoff"]),
        max_neighbors=int(f["max_neighbors"]),
        atom_features=str(f["atom_features"]),
        global_feature_names=tuple(f["global_feature_names"]),
    )


class Predictor:
    """An ensemble on a device that turns PyG batches into predictions in the target's unit."""

    def __init__(self, model_dir: Path, device: str = "auto") -> None:
        from mofsieve.model import load_model_dir

        self.device = select_device(device)
        self.members, self.meta = load_model_dir(model_dir, self.device)
        self.params = model_featurization(self.meta)
        self.mean = float(self.meta["normalisation"]["mean"])
        self.std = float(self.meta["normalisation"]["std"])
        self.clip_min = self.meta["target"].get("clip_min")

    def check(self, shard_params: Any, what: str) -> None:
        self.params.check_compatible(shard_params, what=what)

    def __call__(self, batch: Any, atom_weights: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Ensemble mean and standard deviation per graph, and mean per-atom pooling weights."""
        import torch

        batch = batch.to(self.device)
        preds, weights = [], []
        with torch.no_grad():
            for member in self.members:
                out, w = member(batch, return_atom_weights=True)
                preds.append(out.double() * self.std + self.mean)
                if atom_weights and w is not None:
                    weights.append(w.double())
        stacked = torch.stack(preds)
        mean = stacked.mean(0)
        if self.clip_min is not None:
            mean = mean.clamp_min(float(self.clip_min))
        std = stacked.std(0, unbiased=False) if len(preds) > 1 else torch.zeros_like(mean)
        w_mean = torch.stack(weights).mean(0).cpu().numpy() if weights else None
        return mean.cpu().numpy(), std.cpu().numpy(), w_mean


def _fused_note(device: Any) -> str:
    """Whether the fused CPU kernels run (built here on first use), for the log."""
    if device.type != "cpu":
        return ""
    from mofsieve import fused

    return " (fused CPU kernels)" if fused.kernels() is not None else " (PyTorch layers only)"


def merged_graph_data(graph: Any, global_index: Sequence[int], rounds: int) -> tuple[Any, np.ndarray]:
    """PyG Data of ``graph`` with its equivalent atoms merged
    (:func:`mofsieve.symmetry.merge_equivalent_atoms`, ``rounds`` = the model's layers), with
    ``multiplicity`` set, and the row of every atom of ``graph``."""
    import torch

    from mofsieve.symmetry import merge_equivalent_atoms
    from mofsieve.train import graph_to_data

    merged, multiplicity, atom_to_row = merge_equivalent_atoms(graph, rounds)
    data = graph_to_data(merged, global_index)
    data.multiplicity = torch.from_numpy(multiplicity.astype(np.float32))
    return data, atom_to_row


def iter_shard_batches(
    reader: Any, global_index: Sequence[int], batch_atoms: int, merge_rounds: int | None = None
) -> Iterator[tuple[list[int], Any, np.ndarray | None]]:
    """Consecutive graphs of one shard, batched by total atom count.

    With ``merge_rounds`` (the model's number of layers), each graph first has its equivalent
    atoms merged (:func:`merged_graph_data`) and batches are packed by rows; the third item
    maps every atom of the group's graphs, in order, to its row of the batch (None without
    merging).
    """
    from torch_geometric.data import Batch

    from mofsieve.train import graph_to_data, pack_by_atoms

    if merge_rounds is None:
        for group in pack_by_atoms(np.diff(reader.node_ptr), batch_atoms, range(len(reader))):
            datas = [graph_to_data(reader.graph(i), global_index) for i in group]
            yield group, Batch.from_data_list(datas), None
        return
    merged = [merged_graph_data(reader.graph(i), global_index, merge_rounds) for i in range(len(reader))]
    for group in pack_by_atoms([m[0].num_nodes for m in merged], batch_atoms, range(len(reader))):
        yield group, *merged_batch([merged[i] for i in group])


def merged_batch(merged: Sequence[tuple[Any, np.ndarray]]) -> tuple[Any, np.ndarray]:
    """One Batch of :func:`merged_graph_data` results, and the row in it of every atom of
    their graphs, in order."""
    from torch_geometric.data import Batch

    offsets = np.cumsum([0] + [data.num_nodes for data, _ in merged])  # rows, not atoms
    atom_to_row = np.concatenate([to_row + offsets[j] for j, (_, to_row) in enumerate(merged)])
    return Batch.from_data_list([data for data, _ in merged]), atom_to_row


class AttentionWriter:
    """Appends per-atom weights, shard by shard, to an HDF5 file (the caller's temporary path).

    Layout: ``ids`` (G), ``node_ptr`` (G+1), ``weights`` (N, float32, each graph's sum to 1),
    ``atomic_number`` (N), ``frac_coords`` (N×3), ``lattice`` (G×3×3).
    """

    def __init__(self, path: Path) -> None:
        import h5py

        self.h5 = h5py.File(path, "w")
        self.h5.attrs["format"] = "mofsieve-attention"
        self.h5.attrs["format_version"] = 1
        strings = h5py.string_dtype()
        self.h5.create_dataset("ids", (0,), maxshape=(None,), dtype=strings, chunks=(1024,))
        self.h5.create_dataset("node_ptr", data=np.zeros(1, np.int64), maxshape=(None,), chunks=(1024,))
        self.h5.create_dataset("weights", (0,), maxshape=(None,), dtype=np.float32, chunks=(65536,))
        self.h5.create_dataset("atomic_number", (0,), maxshape=(None,), dtype=np.uint8, chunks=(65536,))
        self.h5.create_dataset("frac_coords", (0, 3), maxshape=(None, 3), dtype=np.float64, chunks=(65536, 3))
        self.h5.create_dataset("lattice", (0, 3, 3), maxshape=(None, 3, 3), dtype=np.float64, chunks=(1024, 3, 3))

    def _append(self, name: str, values: np.ndarray) -> None:
        ds = self.h5[name]
        n = ds.shape[0]
        ds.resize(n + len(values), axis=0)
        ds[n:] = values

    def add(self, graphs: Sequence[Any], weights: np.ndarray) -> None:
        ptr = self.h5["node_ptr"]
        start = int(ptr[-1])
        sizes = np.array([g.n_atoms for g in graphs], dtype=np.int64)
        self._append("ids", np.array([g.mof_id for g in graphs], dtype=object))
        self._append("node_ptr", start + np.cumsum(sizes))
        self._append("weights", weights.astype(np.float32))
        self._append("atomic_number", np.concatenate([g.atomic_number for g in graphs]).astype(np.uint8))
        self._append("frac_coords", np.concatenate([g.frac_coords for g in graphs]).astype(np.float64))
        self._append("lattice", np.stack([g.lattice for g in graphs]).astype(np.float64))

    def close(self) -> None:
        self.h5.close()


def predict(
    model_dir: Path,
    graphs: Sequence[str | os.PathLike[str]],
    out: Path,
    attention_path: Path | None = None,
    device: str = "auto",
    batch_atoms: int = 8000,
    merge_equivalent: bool = True,
) -> int:
    """Predict every graph of ``graphs``; returns the number of rows written.

    ``merge_equivalent``: run the model once per set of atoms it cannot tell apart
    (:mod:`mofsieve.symmetry`): the same predictions, fewer atoms computed."""
    from mofsieve.store import ShardReader, read_params, shard_paths

    predictor = Predictor(model_dir, device)
    paths = shard_paths(graphs)
    if not paths:
        raise FileNotFoundError(f"no graph shards in {list(map(str, graphs))}")
    for path in paths:  # refuse before computing anything
        predictor.check(read_params(path), what=f"graphs in {path}")
    if attention_path is not None and predictor.members[0].config.readout != "attention":
        raise ValueError(
            f"--attention needs a model with attention pooling; {model_dir} uses "
            f"{predictor.members[0].config.readout} pooling"
        )
    log.info("%d shard(s), %d ensemble member(s) on %s%s", len(paths), len(predictor.members),
             predictor.device, _fused_note(predictor.device))
    merge_rounds = predictor.members[0].config.num_layers if merge_equivalent else None

    n_rows = 0
    # Both files appear complete or not at all: written under temporary names, renamed at the
    # end (the attention file first, so a ranked CSV never points at missing weights).
    with ExitStack() as stack:
        tmp = stack.enter_context(atomic_output(out))
        writer = None
        if attention_path is not None:
            writer = AttentionWriter(stack.enter_context(atomic_output(attention_path)))
            stack.callback(writer.close)  # before its rename, on success and on error
        with open(tmp, "w", newline="") as fh:
            rows = csv.writer(fh)
            rows.writerow(COLUMNS)
            for path in paths:
                reader = ShardReader(path, in_memory=True)
                names = reader.params.global_feature_names
                global_index = [names.index(n) for n in predictor.params.global_feature_names]
                batches = iter_shard_batches(reader, global_index, batch_atoms, merge_rounds)
                for group, batch, atom_to_row in batches:
                    mean, std, weights = predictor(batch, atom_weights=writer is not None)
                    if weights is not None and atom_to_row is not None:
                        weights = weights[atom_to_row]  # every atom of a set has its weight
                    for j, i in enumerate(group):
                        rows.writerow([reader.ids[i], f"{mean[j]:.6g}", f"{std[j]:.6g}", reader.n_atoms(i)])
                    if writer is not None and weights is not None:
                        writer.add([reader.graph(i) for i in group], weights)
                    n_rows += len(group)
                del reader  # one shard in memory at a time
    return n_rows
