"""What a training run learns from: labels, the labelled graphs, and their split.

80/10/10 split by seed over the labelled graphs (a permutation of the sorted ids, so the
same labels and seed always give the same split, whatever the shard order). Several targets
(a multi-target model): each MOF's labels are a tuple with NaN where it has none
(:func:`read_label_columns`), and the split is the same permutation over the MOFs with at
least one label, so a target whose labelled MOFs are that union (e.g. 0.15 bar in
``labels.csv``, whose 16 bar MOFs all have a 0.15 bar label) gets exactly its single-target
split. A fine-tuned
model (``train --init-from``) inherits its source model's split instead: labelled MOFs outside
it go to training, so the source's validation and test MOFs stay held out. Simulated uptakes
(the GCMC ``validation.csv`` of a run) merge into the original labels here
(:func:`merge_simulated_labels`), and the merged labels are written by :func:`write_labels`.
"""

from __future__ import annotations

import csv
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mofsieve.batching import graph_to_data
from mofsieve.featurization_params import FeaturizationParams

log = logging.getLogger(__name__)

SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
SPLITS = ("train", "val", "test")


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


def read_label_columns(path: Path, targets: Sequence[str]) -> dict[str, tuple[float, ...]]:
    """mof_id → one value per target (NaN where the row has none) for the rows with a finite
    value in at least one of ``targets``."""
    if len(set(targets)) != len(targets):
        raise ValueError(f"a target is named twice: {list(targets)}")
    columns = [read_labels(path, target) for target in targets]
    ids = sorted(set().union(*columns))
    return {m: tuple(column.get(m, math.nan) for column in columns) for m in ids}


def make_split(ids: Sequence[str], seed: int) -> dict[str, str]:
    """mof_id → train/val/test, 80/10/10, a permutation of the sorted ids by ``seed``."""
    ordered = sorted(ids)
    perm = np.random.default_rng(seed).permutation(len(ordered))
    n_train = int(round(SPLIT_FRACTIONS[0] * len(ordered)))
    n_val = int(round(SPLIT_FRACTIONS[1] * len(ordered)))
    split = {}
    for rank, idx in enumerate(perm):
        split[ordered[idx]] = (
            "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
        )
    return split


SIMULATED_COLUMN = "simulated"  # the GCMC uptake column of a run's validation.csv


@dataclass(frozen=True)
class MergedLabels:
    """Original labels with simulated values laid over them, and what came from where."""

    labels: dict[str, Any]  # a float per MOF, or a tuple (one value per target)
    source: dict[str, str]  # mof_id -> "original" | "simulated"
    n_replacing: int  # simulated values that replaced an original label
    n_added: int  # simulated values for MOFs without one


def read_simulated(path: Path, column: str = SIMULATED_COLUMN) -> dict[str, float]:
    """mof_id → simulated value of ``column`` in ``path`` (rows without a finite value, e.g.
    failed simulations, are left out; an id twice is an error)."""
    return read_labels(path, column)


def merge_simulated_labels(
    labels: dict[str, Any], simulated: dict[str, float], column: int | None = None
) -> MergedLabels:
    """``labels`` with ``simulated`` values replacing or extending them (a simulation of the
    MOF at the model's conditions is the newer and more specific label). Labels of several
    targets (tuples): the simulated values go to target ``column``; a MOF new to the labels
    has NaN for the other targets."""
    if column is None:
        merged = {**labels, **simulated}
        n_replacing = sum(1 for m in simulated if m in labels)
    else:
        width = len(next(iter(labels.values())))
        merged = dict(labels)
        n_replacing = 0
        for m, value in simulated.items():
            row = list(labels.get(m, (math.nan,) * width))
            n_replacing += not math.isnan(row[column])
            row[column] = value
            merged[m] = tuple(row)
    source = {m: "simulated" if m in simulated else "original" for m in merged}
    return MergedLabels(merged, source, n_replacing, len(simulated) - n_replacing)


def write_labels(path: Path, targets: Sequence[str], merged: MergedLabels) -> Path:
    """``mof_id,<target>…,label_source`` sorted by id, atomically (the labels a model saw; an
    empty cell where a MOF has no label of a target)."""
    from mofsieve.atomic import write_csv_atomic

    def cells(value: Any) -> list[str]:
        values = value if isinstance(value, tuple) else (value,)
        return ["" if math.isnan(v) else repr(v) for v in values]

    return write_csv_atomic(
        path,
        ["mof_id", *targets, "label_source"],
        ([m, *cells(merged.labels[m]), merged.source[m]] for m in sorted(merged.labels)),
    )


def read_split(path: Path) -> dict[str, str]:
    """mof_id → train/val/test from a model directory's ``split.csv`` (what train wrote)."""
    if not path.is_file():
        raise FileNotFoundError(
            f"no {path.name} at {path} (a model trained by `mofsieve train` has one)"
        )
    split: dict[str, str] = {}
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or not {"mof_id", "split"} <= set(reader.fieldnames):
            raise ValueError(f"{path} needs columns mof_id,split (it has {reader.fieldnames})")
        for row in reader:
            if row["split"] not in SPLITS:
                raise ValueError(
                    f"{path}: split {row['split']!r} of {row['mof_id']} is not one of {SPLITS}"
                )
            split[row["mof_id"]] = row["split"]
    return split


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


@dataclass
class TrainingSet:
    """Labelled graphs as lean PyG Data, split; ``train_ids`` is what training uses (the
    training split less any subsample or atom cap). ``labels`` holds a float per MOF, or a
    tuple (one value per target, NaN where unlabelled) for a multi-target model."""

    labels: dict[str, Any]
    datas: dict[str, Any]
    n_atoms: dict[str, int]
    split: dict[str, str]
    ids: dict[str, list[str]]
    train_ids: list[str]
    shard_paths: list[str]
    no_graph: list[str] = field(default_factory=list)
    n_over_atom_cap: int = 0
    new_train_ids: list[str] = field(default_factory=list)  # fine-tuning: outside the source split

    def data(self, split: str) -> list[Any]:
        ids = self.train_ids if split == "train" else self.ids[split]
        return [self.datas[i] for i in ids]

    def y(self, split: str) -> np.ndarray:
        """Labels of ``split``: (G,), or G×T with NaN where a MOF lacks a target's label."""
        ids = self.train_ids if split == "train" else self.ids[split]
        return np.array([self.labels[i] for i in ids])

    def non_negative(self, target: int | None = None) -> bool:
        """Uptakes: predictions are then clipped at 0 (by predict and the evaluation);
        ``target``: the column of a multi-target set."""
        values = np.array(list(self.labels.values()), dtype=np.float64)
        if target is not None:
            values = values[:, target]
        return bool(np.nanmin(values) >= 0.0)


def shard_featurization(readers: Sequence[Any]) -> FeaturizationParams:
    """The featurization all shards share (:class:`FeaturizationMismatch` if they do not)."""
    if not readers:
        raise FileNotFoundError("no graph shards")
    params = readers[0].params
    for reader in readers[1:]:
        params.check_compatible(reader.params, what=str(reader.path))
    return params


def load_training_set(
    labels: dict[str, Any],
    readers: Sequence[Any],
    global_features: Sequence[str],
    seed: int,
    train_fraction_used: float = 1.0,
    max_atoms_train: int | None = None,
    columns: Sequence[str] = (),
    inherited_split: dict[str, str] | None = None,
    always_train: set[str] | frozenset[str] = frozenset(),
) -> TrainingSet:
    """Every labelled graph, once; ids without a graph are reported, not fatal. ``columns``:
    the optional graph columns the model reads (:func:`mofsieve.batching.graph_to_data`);
    ``global_features``: the shard descriptors it reads, by name (shards may order them
    differently). ``inherited_split``: a fine-tuned model's source split; ids outside it
    train. Those, and the training MOFs of ``always_train`` (simulated labels), are always
    trained on: neither the subsample nor the atom cap leaves them out. ``labels`` values
    that are tuples (several targets) become each Data's ``y`` of shape 1×T."""
    datas: dict[str, Any] = {}
    n_atoms: dict[str, int] = {}
    for reader in readers:
        names = reader.params.global_feature_names
        global_index = [names.index(n) for n in global_features]
        for i, mof_id in enumerate(reader.ids):
            if mof_id in labels and mof_id not in datas:
                graph = reader.graph(i)
                y = labels[mof_id]
                several = isinstance(y, tuple)
                data = graph_to_data(graph, global_index, None if several else y, columns)
                if several:  # 1×T: a batch of G crystals stacks them into G×T
                    data.y = torch.tensor([y], dtype=torch.float32)
                datas[mof_id] = data
                n_atoms[mof_id] = graph.n_atoms
        reader.release()  # the Data hold what training needs; free the shard arrays
    no_graph = sorted(set(labels) - set(datas))
    if no_graph:
        log.warning(
            "%d labelled MOFs have no graph (featurization failures?), e.g. %s",
            len(no_graph),
            no_graph[:3],
        )
    if inherited_split is None:
        split = make_split(list(datas), seed)
        new: set[str] = set()
    else:
        split = {m: inherited_split.get(m, "train") for m in datas}
        new = {m for m in datas if m not in inherited_split}
    kept = new | {m for m in always_train if split.get(m) == "train"}
    ids = {s: sorted(i for i, v in split.items() if v == s) for s in SPLITS}
    train_ids = [i for i in ids["train"] if i not in kept]
    if train_fraction_used < 1.0:
        keep = np.random.default_rng(seed + 7).permutation(len(train_ids))
        keep = np.sort(keep[: int(round(train_fraction_used * len(train_ids)))])
        train_ids = [train_ids[i] for i in keep]
    n_capped = 0
    if max_atoms_train:
        before = len(train_ids)
        train_ids = [i for i in train_ids if n_atoms[i] <= max_atoms_train]
        n_capped = before - len(train_ids)
    train_ids = sorted(train_ids + sorted(kept))
    if len(train_ids) < 2 or not ids["val"]:
        raise ValueError(f"too few labelled graphs to train ({len(datas)})")
    log.info(
        "%d labelled graphs: %d train used (%d over the atom cap left out), %d val, %d test",
        len(datas),
        len(train_ids),
        n_capped,
        len(ids["val"]),
        len(ids["test"]),
    )
    return TrainingSet(
        labels=labels,
        datas=datas,
        n_atoms=n_atoms,
        split=split,
        ids=ids,
        train_ids=train_ids,
        shard_paths=[str(r.path) for r in readers],
        no_graph=no_graph,
        n_over_atom_cap=n_capped,
        new_train_ids=sorted(new),
    )
