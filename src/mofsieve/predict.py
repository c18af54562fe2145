"""`mofsieve predict`: run a shipped or trained model over CIFs or graph shards.

``mofsieve predict --model M INPUT...`` takes CIF files, folders, globs and tar archives as
``featurize`` does, featurizes them exactly as the model's ``model.json`` says, and predicts;
CIFs that cannot be used go to a failures CSV with their reason. ``--graphs`` predicts shards
featurized before (their featurization parameters are checked against the model's first).

Writes ``mof_id,prediction,uncertainty,n_atoms`` (ensemble mean and uncertainty, in the model's
unit) atomically: ``uncertainty`` is the calibrated standard deviation σ when ``model.json``
records a calibration (:mod:`mofsieve.calibrate`), else the raw spread of the members (the log
says which), and optionally every atom's readout weight (``--attention``, the
format of :mod:`mofsieve.attention`: learned attention-pooling weights, or uniform weights for
mean/sum pooling, with the readout recorded). Shards are read one at a time and batched by
total atom count, so memory does not grow with the number of MOFs. Atoms the model cannot tell
apart (symmetry-equivalent sites, found exactly by :mod:`mofsieve.symmetry`) are computed
once by AE-CGCNN models; ``--every-atom`` computes each (OCrystalNet models always do).

A multi-target model (``mofsieve train --target A --target B``) writes the output of
``--target NAME`` (the same columns; without it the error lists the targets); for a
single-target model ``--target`` may be given and must name its target. Working capacity
from a multi-target model is two predict runs, one per target, of the same model.

``--out-dir`` writes one ``shard-K.csv`` (and ``attention-K.h5``) per graph shard
``shard-K.h5`` instead, each complete or absent, so that one job loads the model once for
several shards (the workflow's ``predict.shards_per_job``). The last log line sets the time
spent predicting against the process's whole life (imports, model, kernels: its start-up).
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import re
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from mofsieve.atomic import atomic_output

log = logging.getLogger(__name__)

COLUMNS = ("mof_id", "prediction", "uncertainty", "n_atoms")
CIF_SHARD_SIZE = 1000  # CIFs featurized (and held in memory) at a time for INPUT predictions
SHARD_NAME = re.compile(r"^shard-(\d+)\.h5$")  # a graph shard; --out-dir keeps its number


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs",
        nargs="*",
        metavar="INPUT",
        help="CIF files, folders (recursive), globs, tar archives, or core-mof:DATASET (featurized as the model needs)",
    )
    parser.add_argument(
        "--model", required=True, type=Path, help="model directory (model.json + weights)"
    )
    parser.add_argument(
        "--graphs", nargs="+", help="instead of INPUT: graph shards or folders of shard-*.h5"
    )
    parser.add_argument(
        "--target",
        help="the target to write: needed for a multi-target model (one of its targets); "
        "optional for a single-target model, and then must be its target",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", type=Path, help="predictions CSV to write")
    where.add_argument(
        "--out-dir",
        type=Path,
        help="with --graphs: shard-K.csv in this folder for each graph shard shard-K.h5, each "
        "written once its shard is done (one model load for every shard)",
    )
    parser.add_argument(
        "--failures",
        type=Path,
        help="with INPUT: CSV of the CIFs that could not be used (default: OUT's name with -failures.csv)",
    )
    parser.add_argument(
        "--keep-graphs",
        type=Path,
        help="with INPUT: keep the graph shards in this folder (default: a temporary folder)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=0,
        help="with INPUT: featurization processes (default: every core allotted)",
    )
    parser.add_argument(
        "--attention",
        type=Path,
        help="also write every atom's readout weight (HDF5): this file with --out; with "
        "--out-dir, attention-K.h5 in this folder for each shard",
    )
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument(
        "--batch-atoms",
        type=int,
        default=8000,
        help="atoms per batch (at most; a bigger crystal runs alone); on CPU, batches much bigger than the default outgrow the caches and run slower",
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--every-atom", action="store_true", help="compute every atom, also those the model cannot tell apart from another (slower; same predictions)")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from mofsieve.featurization_params import FeaturizationMismatch
    from mofsieve.manifest import InputError
    from mofsieve.modeldir import ModelDirError
    from mofsieve.runtime import configure_cpu
    from mofsieve.store import ShardFormatError

    configure_cpu(args.threads)
    if bool(args.inputs) == bool(args.graphs):
        log.error("give either INPUT… (CIFs, folders, archives) or --graphs (shards), not both")
        return 2
    if args.out_dir is not None and args.inputs:
        log.error("--out-dir takes --graphs (it names its outputs after the graph shards)")
        return 2
    options = dict(
        target=args.target,
        attention_path=args.attention,
        device=args.device,
        batch_atoms=args.batch_atoms,
        merge_equivalent=not args.every_atom,
    )
    try:
        if args.inputs:
            failures = args.failures or args.out.with_name(f"{args.out.stem}-failures.csv")
            n = predict_cifs(args.model, args.inputs, args.out, failures, args.keep_graphs,
                             args.jobs, **options)  # fmt: skip
        elif args.out_dir is not None:
            options.pop("attention_path")
            n = predict_shards(args.model, args.graphs, args.out_dir, args.attention, **options)
        else:
            n = predict(args.model, args.graphs, args.out, **options)
    except FeaturizationMismatch as err:
        log.error("refusing to predict: %s", err)
        return 3
    except (ModelDirError, ShardFormatError, InputError, FileNotFoundError, ValueError) as err:
        log.error("%s", err)
        return 2
    except RuntimeError as err:  # e.g. --device cuda on a node without a usable GPU
        log.error("%s", err)
        return 2
    log.info("wrote %d predictions to %s", n, args.out or args.out_dir)
    return 0


class Predictor:
    """An ensemble on a device that turns PyG batches into predictions in the target's unit.

    ``target``: the output of a multi-target model to predict (required there; for a
    single-target model None or its target); :meth:`choose` changes it. A model with boosted
    trees (:mod:`mofsieve.booster`) blends them in :meth:`blend`, unless ``use_booster`` is
    False (the graph network alone, as ``mofsieve boost`` needs it)."""

    def __init__(
        self, model_dir: Path, device: str = "auto", target: str | None = None,
        use_booster: bool = True,
    ) -> None:  # fmt: skip
        from mofsieve.batching import select_device
        from mofsieve.model import load_model_dir
        from mofsieve.modeldir import read_model

        read_model(model_dir).select(target)  # refuse a missing or unknown target first
        self.device = select_device(device)
        self.members, spec = load_model_dir(model_dir, self.device)
        self.all_targets = spec
        self.spec = spec.select(target)
        self.params = self.spec.featurization
        self.trees = None
        if use_booster:
            from mofsieve.booster import Trees

            self.trees = Trees.load(self.spec)

    def choose(self, target: str | None) -> None:
        """Predict ``target`` (an output of this model) from now on."""
        self.spec = self.all_targets.select(target)

    def check(self, shard_params: Any, what: str) -> None:
        self.spec.check_graphs(shard_params, what=what)

    def blend(
        self, mean: np.ndarray, spread: np.ndarray, graphs: Sequence[Any],
        global_index: Sequence[int],
    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """The graph network's mean and spread for ``graphs`` (crystal graphs, a batch) blended
        with the model's trees (unchanged without trees)."""
        if self.trees is None:
            return mean, spread
        from mofsieve.booster import blend

        tree_mean = self.trees.predict_graphs(graphs, global_index)
        return blend(mean, spread, tree_mean, self.trees.spec.weight, self.spec.target.clip_min)

    def uncertainty(self, mean: np.ndarray, spread: np.ndarray) -> np.ndarray:
        """The ``uncertainty`` column: σ from the model's calibration, or the raw spread."""
        calibration = self.spec.calibration
        return spread if calibration is None else calibration.sigma(spread, mean)

    def __call__(
        self, batch: Any, atom_weights: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Ensemble mean and standard deviation per graph, and the mean per-atom readout
        weights (None unless asked for and the readout has learned weights)."""
        import torch

        batch = batch.to(self.device)
        preds, weights = [], []
        mean_, std_ = self.spec.normalisation_mean, self.spec.normalisation_std
        with torch.no_grad():
            for member in self.members:
                out, w = member(batch, return_atom_weights=True)
                if self.spec.is_multi_target:
                    out = out[:, self.spec.output]  # G×T: the chosen target's column
                preds.append(out.double() * std_ + mean_)
                if atom_weights and w is not None:
                    weights.append(w.double())
        stacked = torch.stack(preds)
        mean = stacked.mean(0)
        if self.spec.target.clip_min is not None:
            mean = mean.clamp_min(self.spec.target.clip_min)
        std = stacked.std(0, unbiased=False) if len(preds) > 1 else torch.zeros_like(mean)
        w_mean = torch.stack(weights).mean(0).cpu().numpy() if weights else None
        return mean.cpu().numpy(), std.cpu().numpy(), w_mean


def _fused_note(device: Any) -> str:
    """Whether the fused CPU kernels run (built here on first use), for the log."""
    if device.type != "cpu":
        return ""
    from mofsieve import fused

    return " (fused CPU kernels)" if fused.kernels() is not None else " (PyTorch layers only)"


def uniform_weights(graphs: Sequence[Any]) -> np.ndarray:
    """1/n for every atom of each graph: the readout weights of mean (and, normalised, sum)
    pooling, which have no learned per-atom weights."""
    return np.concatenate([np.full(g.n_atoms, 1.0 / g.n_atoms) for g in graphs])


def process_seconds() -> float | None:
    """Seconds since this process started (Linux ``/proc``; None where there is none)."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: start time
    except (OSError, ValueError, IndexError):
        return None


def _graph_paths(graphs: Sequence[str | os.PathLike[str]]) -> list[Path]:
    from mofsieve.store import shard_paths

    paths = shard_paths(graphs)
    if not paths:
        raise FileNotFoundError(f"no graph shards in {list(map(str, graphs))}")
    return paths


class _Job:
    """A model loaded once, predicting shard after shard; counts the seconds spent on them."""

    def __init__(
        self, model_dir: Path, paths: Sequence[Path], device: str, batch_atoms: int,
        merge_equivalent: bool, target: str | None = None,
    ) -> None:  # fmt: skip
        from mofsieve.store import read_params

        self.predictor = predictor = Predictor(model_dir, device, target)
        for path in paths:  # refuse before computing anything
            predictor.check(read_params(path), what=f"graphs in {path}")
        log.info("%d shard(s), %d ensemble member(s) on %s%s", len(paths),
                 len(predictor.members), predictor.device, _fused_note(predictor.device))  # fmt: skip
        spec = predictor.spec
        if spec.is_multi_target:
            log.info("predicting %s (output %d of %s)", spec.target.name, spec.output,
                     list(spec.target_names))  # fmt: skip
        log.info("%s", spec.uncertainty_meaning)
        self.merge_rounds = (
            spec.num_layers if merge_equivalent and spec.merges_equivalent_atoms else None
        )
        self.batch_atoms = batch_atoms
        self.model_s = 0.0  # reading shards, the model, writing its outputs
        self.n_rows = 0

    def attention_writer(self, stack: ExitStack, path: Path) -> Any:
        """An attention writer into ``path`` (atomic): closed, then renamed, when ``stack``
        closes; on an error, removed."""
        from mofsieve.attention import AttentionWriter

        writer = AttentionWriter(stack.enter_context(atomic_output(path)),
                                 readout=self.predictor.spec.readout)  # fmt: skip
        stack.callback(writer.close)  # before its rename, on success and on error
        return writer

    def shard(self, path: Path, rows: Any, writer: Any) -> int:
        """Predict every graph of the shard at ``path`` into the CSV ``rows`` (and ``writer``)."""
        from mofsieve.batching import iter_shard_batches
        from mofsieve.store import ShardReader

        predictor = self.predictor
        reader = ShardReader(path, in_memory=True)  # one shard in memory at a time
        names = reader.params.global_feature_names
        global_index = [names.index(n) for n in predictor.params.global_feature_names]
        batches = iter_shard_batches(reader, global_index, self.batch_atoms, self.merge_rounds,
                                     predictor.spec.featurization.columns)  # fmt: skip
        want_weights = writer is not None and predictor.spec.has_atom_weights
        n_rows = 0
        for group, batch, atom_to_row in batches:
            mean, spread, weights = predictor(batch, atom_weights=want_weights)
            if predictor.trees is not None:
                graphs = [reader.graph(i) for i in group]
                mean, spread = predictor.blend(mean, spread, graphs, global_index)
            uncertainty = predictor.uncertainty(mean, spread)
            if weights is not None and atom_to_row is not None:
                weights = weights[atom_to_row]  # every atom of a set has its weight
            for j, i in enumerate(group):
                rows.writerow([reader.ids[i], f"{mean[j]:.6g}", f"{uncertainty[j]:.6g}",
                               reader.n_atoms(i)])  # fmt: skip
            if writer is not None:
                group_graphs = [reader.graph(i) for i in group]
                if weights is None:
                    weights = uniform_weights(group_graphs)
                writer.add(group_graphs, weights)
            n_rows += len(group)
        self.n_rows += n_rows
        return n_rows

    def log_times(self, n_shards: int) -> None:
        """The job's model time against its whole life: wall/model near 1 means the start-up
        (Python, torch, PyG, the model, the kernels) is paid off."""
        total = process_seconds()
        if total is None or self.model_s <= 0:
            log.info("%d MOFs in %d shard(s): model %.3f s", self.n_rows, n_shards, self.model_s)
            return
        # milliseconds: a small job's model time must not print as 0.0
        log.info("%d MOFs in %d shard(s): model %.3f s of %.1f s since the process started "
                 "(start-up %.1f s); wall/model %.2f", self.n_rows, n_shards, self.model_s,
                 total, total - self.model_s, total / self.model_s)  # fmt: skip


def predict(
    model_dir: Path,
    graphs: Sequence[str | os.PathLike[str]],
    out: Path,
    attention_path: Path | None = None,
    device: str = "auto",
    batch_atoms: int = 8000,
    merge_equivalent: bool = True,
    target: str | None = None,
) -> int:
    """Predict every graph of ``graphs`` into one CSV; returns the number of rows written.

    ``merge_equivalent``: run the model once per set of atoms it cannot tell apart
    (:mod:`mofsieve.symmetry`): the same predictions, fewer atoms computed. ``target``: the
    output of a multi-target model to write (see :class:`Predictor`)."""
    paths = _graph_paths(graphs)
    job = _Job(model_dir, paths, device, batch_atoms, merge_equivalent, target)
    start = time.perf_counter()
    # Both files appear complete or not at all: written under temporary names, renamed at the
    # end (the attention file first, so a ranked CSV never points at missing weights).
    with ExitStack() as stack:
        tmp = stack.enter_context(atomic_output(out))
        writer = None if attention_path is None else job.attention_writer(stack, attention_path)
        with open(tmp, "w", newline="") as fh:
            rows = csv.writer(fh)
            rows.writerow(COLUMNS)
            for path in paths:
                job.shard(path, rows, writer)
    job.model_s = time.perf_counter() - start
    job.log_times(len(paths))
    return job.n_rows


def predict_shards(
    model_dir: Path,
    graphs: Sequence[str | os.PathLike[str]],
    out_dir: Path,
    attention_dir: Path | None = None,
    device: str = "auto",
    batch_atoms: int = 8000,
    merge_equivalent: bool = True,
    target: str | None = None,
) -> int:
    """Predict each graph shard ``shard-K.h5`` of ``graphs`` into ``out_dir/shard-K.csv`` (and
    ``attention_dir/attention-K.h5``), loading the model once; returns the rows written.

    Each shard's files appear complete or not at all, the attention file first, as
    :func:`predict`'s; a job killed midway leaves the shards it finished and nothing else."""
    paths = _graph_paths(graphs)
    numbers: dict[str, Path] = {}
    for path in paths:
        match = SHARD_NAME.match(path.name)
        if match is None:
            raise ValueError(f"{path}: --out-dir names its outputs after graph shards "
                             "shard-K.h5; give such files or folders of them")  # fmt: skip
        if match[1] in numbers:
            raise ValueError(f"two graph shards named {path.name} ({numbers[match[1]]}, "
                             f"{path}): their outputs would have one name")  # fmt: skip
        numbers[match[1]] = path
    job = _Job(model_dir, paths, device, batch_atoms, merge_equivalent, target)
    for number, path in numbers.items():
        start = time.perf_counter()
        with ExitStack() as stack:
            tmp = stack.enter_context(atomic_output(out_dir / f"shard-{number}.csv"))
            writer = None
            if attention_dir is not None:
                writer = job.attention_writer(stack, attention_dir / f"attention-{number}.h5")
            with open(tmp, "w", newline="") as fh:
                rows = csv.writer(fh)
                rows.writerow(COLUMNS)
                n_rows = job.shard(path, rows, writer)
        elapsed = time.perf_counter() - start
        job.model_s += elapsed
        log.info("shard %s: %d MOFs, %.2f s", number, n_rows, elapsed)
    job.log_times(len(paths))
    return job.n_rows


def predict_ids(
    predictor: Predictor,
    graphs: Sequence[str | os.PathLike[str]],
    wanted: set[str],
    batch_atoms: int = 8000,
) -> dict[str, tuple[float, float]]:
    """mof_id → (ensemble mean, raw spread) for the graphs of ``graphs`` whose id is in
    ``wanted`` (the first graph of an id; calibration's validation and test MOFs). The same
    numbers as :func:`predict` before any calibration; shards without a wanted id are not
    read into memory."""
    from mofsieve.batching import (
        graph_to_data,
        iter_batches,
        merged_batch,
        merged_graph_data,
        pack_by_atoms,
    )
    from mofsieve.store import ShardReader

    spec = predictor.spec
    merge_rounds = spec.num_layers if spec.merges_equivalent_atoms else None
    found: dict[str, tuple[float, float]] = {}
    for path in _graph_paths(graphs):
        reader = ShardReader(path, in_memory=True)
        predictor.check(reader.params, what=f"graphs in {path}")
        rows = [i for i, m in enumerate(reader.ids) if m in wanted and m not in found]
        if not rows:
            continue
        names = reader.params.global_feature_names
        global_index = [names.index(n) for n in predictor.params.global_feature_names]
        if merge_rounds is not None:
            merged = [merged_graph_data(reader.graph(i), global_index, merge_rounds) for i in rows]
            sizes = [data.num_nodes for data, _ in merged]
            batches = (
                (group, merged_batch([merged[j] for j in group])[0])
                for group in pack_by_atoms(sizes, batch_atoms, range(len(rows)))
            )
        else:
            columns = spec.featurization.columns
            datas = [graph_to_data(reader.graph(i), global_index, columns=columns) for i in rows]
            batches = iter_batches(datas, batch_atoms)
        for group, batch in batches:
            mean, spread, _ = predictor(batch)
            if predictor.trees is not None:
                graphs_ = [reader.graph(rows[g]) for g in group]
                mean, spread = predictor.blend(mean, spread, graphs_, global_index)
            for j, g in enumerate(group):
                found[reader.ids[rows[g]]] = (float(mean[j]), float(spread[j]))
        reader.release()
    return found


def predict_cifs(
    model_dir: Path,
    inputs: Sequence[str],
    out: Path,
    failures: Path,
    keep_graphs: Path | None = None,
    jobs: int = 0,
    **options: Any,
) -> int:
    """Featurize the CIFs ``inputs`` name exactly as the model needs, then predict them.

    CIFs that cannot be used are written to ``failures`` (``mof_id,source,stage,reason``),
    the rest are predicted; the graphs go to a temporary folder unless ``keep_graphs``."""
    from mofsieve.failures import merge_failures
    from mofsieve.featurize import (
        Limits,
        available_cores,
        failures_path,
        featurize_shard,
        shard_path,
    )
    from mofsieve.manifest import build_manifest, write_manifest
    from mofsieve.modeldir import read_model

    model = read_model(model_dir)
    model.select(options.get("target"))  # a missing or unknown target, before featurizing
    params = model.featurization
    rows = build_manifest(list(inputs), CIF_SHARD_SIZE)
    n_shards = rows[-1].shard + 1
    with ExitStack() as stack:
        if keep_graphs is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mofsieve-")))
        else:
            folder = keep_graphs
            folder.mkdir(parents=True, exist_ok=True)
        write_manifest(rows, folder / "manifest.csv")
        n_graphs = 0
        for shard in range(n_shards):
            result = featurize_shard(rows, shard, folder, params, Limits(),
                                     jobs or available_cores())  # fmt: skip
            n_graphs += len(result.graphs)
        shard_failures = [failures_path(folder, k) for k in range(n_shards)]
        merged = merge_failures(shard_failures, failures)
        log.info("%d of %d CIFs featurized; failures in %s", n_graphs, len(rows), merged)
        if n_graphs == 0:
            raise ValueError(f"none of the {len(rows)} CIFs could be used; see {failures}")
        return predict(model_dir, [shard_path(folder, k) for k in range(n_shards)], out, **options)
