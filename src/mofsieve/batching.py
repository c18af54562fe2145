"""Crystal graphs → PyG batches: the one path from shard arrays to model input.

``predict``, ``train``, the benches and the tests all batch through here. Batches are
packed by total atom count (not a fixed number of graphs), so a batch's memory is bounded
whatever mix of small and large crystals a shard holds. Prediction may first merge the atoms
a model cannot tell apart (:mod:`mofsieve.symmetry`); the rows of such a batch then stand
for several atoms each (``multiplicity``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Batch, Data

from mofsieve.graph_columns import ORBITAL_NEIGHBOUR_SUM, REVERSE_EDGES
from mofsieve.store import CrystalGraph, ShardReader


class CrystalData(Data):
    """PyG Data whose ``edge_reverse`` (an edge's reverse edge, :mod:`mofsieve.graph_columns`)
    is offset by the edges of the graphs before it when batched, as ``edge_index`` is by
    their atoms."""

    def __inc__(self, key: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        if key == "edge_reverse":
            return self.edge_index.size(1)
        return super().__inc__(key, value, *args, **kwargs)


def graph_to_data(
    graph: CrystalGraph,
    global_index: Sequence[int] | None,
    y: float | None = None,
    columns: Sequence[str] = (),
) -> Data:
    """A lean PyG Data for the model: atomic numbers, charges, lattice, edges with distances,
    the model's global features (columns ``global_index`` of the shard's) and the label.

    ``columns`` are the optional graph columns the model needs: ``reverse_edges`` appends
    the added edges to ``edge_index``/``edge_dist`` and sets ``edge_reverse``;
    ``orbital_neighbour_sum`` sets ``orbital_sum`` (N×32). Without them the Data is exactly
    what it always was."""
    src, dst, dist = graph.edge_src, graph.edge_dst, graph.edge_dist
    extra: dict[str, torch.Tensor] = {}
    if REVERSE_EDGES in columns:
        if graph.edge_reverse is None:
            raise ValueError(f"{graph.mof_id}: the graph has no reverse_edges column")
        src = np.concatenate([src, graph.extra_edge_src])
        dst = np.concatenate([dst, graph.extra_edge_dst])
        dist = np.concatenate([dist, graph.extra_edge_dist])
        extra["edge_reverse"] = torch.from_numpy(graph.edge_reverse.astype(np.int64))
    if ORBITAL_NEIGHBOUR_SUM in columns:
        if graph.orbital_neighbour_sum is None:
            raise ValueError(f"{graph.mof_id}: the graph has no orbital_neighbour_sum column")
        extra["orbital_sum"] = torch.from_numpy(graph.orbital_neighbour_sum.astype(np.float32))
    data = CrystalData(
        z=torch.from_numpy(graph.atomic_number.astype(np.int64)),
        charge=torch.from_numpy(graph.charge.astype(np.float32)),
        lattice=torch.from_numpy(graph.lattice.astype(np.float32)).unsqueeze(0),
        edge_index=torch.from_numpy(np.stack([src, dst]).astype(np.int64)),
        edge_dist=torch.from_numpy(dist.astype(np.float32)),
        num_nodes=graph.n_atoms,
        **extra,
    )
    if global_index:
        values = np.asarray(graph.global_features, dtype=np.float32)[list(global_index)]
        data.global_features = torch.from_numpy(values).unsqueeze(0)
    if y is not None:
        data.y = torch.tensor([y], dtype=torch.float32)
    return data


def pack_by_atoms(
    n_atoms: Sequence[int] | np.ndarray, batch_atoms: int, order: Sequence[int] | range
) -> list[list[int]]:
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


def iter_batches(
    datas: Sequence[Data], batch_atoms: int, order: Sequence[int] | None = None
) -> Iterator[tuple[list[int], Batch]]:
    """(indices, Batch) over ``datas`` in ``order``, packed by atoms."""
    order = range(len(datas)) if order is None else order
    n_atoms = [d.num_nodes for d in datas]
    for group in pack_by_atoms(n_atoms, batch_atoms, order):
        yield group, Batch.from_data_list([datas[i] for i in group])


def merged_graph_data(
    graph: CrystalGraph, global_index: Sequence[int], rounds: int
) -> tuple[Data, np.ndarray]:
    """PyG Data of ``graph`` with its equivalent atoms merged
    (:func:`mofsieve.symmetry.merge_equivalent_atoms`, ``rounds`` = the model's layers), with
    ``multiplicity`` set, and the row of every atom of ``graph``."""
    from mofsieve.symmetry import merge_equivalent_atoms

    merged, multiplicity, atom_to_row = merge_equivalent_atoms(graph, rounds)
    data = graph_to_data(merged, global_index)
    data.multiplicity = torch.from_numpy(multiplicity.astype(np.float32))
    return data, atom_to_row


def merged_batch(merged: Sequence[tuple[Data, np.ndarray]]) -> tuple[Batch, np.ndarray]:
    """One Batch of :func:`merged_graph_data` results, and the row in it of every atom of
    their graphs, in order."""
    offsets = np.cumsum([0] + [data.num_nodes for data, _ in merged])  # rows, not atoms
    atom_to_row = np.concatenate([to_row + offsets[j] for j, (_, to_row) in enumerate(merged)])
    return Batch.from_data_list([data for data, _ in merged]), atom_to_row


def iter_shard_batches(
    reader: ShardReader,
    global_index: Sequence[int],
    batch_atoms: int,
    merge_rounds: int | None = None,
    columns: Sequence[str] = (),
) -> Iterator[tuple[list[int], Batch, np.ndarray | None]]:
    """Consecutive graphs of one shard, batched by total atom count.

    With ``merge_rounds`` (the model's number of layers), each graph first has its equivalent
    atoms merged (:func:`merged_graph_data`) and batches are packed by rows; the third item
    maps every atom of the group's graphs, in order, to its row of the batch (None without
    merging). ``columns``: the optional graph columns the model reads (no merging then).
    """
    if columns and merge_rounds is not None:
        raise ValueError("equivalent atoms are merged only for models without graph columns")
    if merge_rounds is None:
        for group in pack_by_atoms(np.diff(reader.node_ptr), batch_atoms, range(len(reader))):
            datas = [graph_to_data(reader.graph(i), global_index, columns=columns) for i in group]
            yield group, Batch.from_data_list(datas), None
        return
    merged = [
        merged_graph_data(reader.graph(i), global_index, merge_rounds) for i in range(len(reader))
    ]
    for group in pack_by_atoms([m[0].num_nodes for m in merged], batch_atoms, range(len(reader))):
        yield (group, *merged_batch([merged[i] for i in group]))


def select_device(name: str) -> torch.device:
    """``auto`` → CUDA when torch sees a usable GPU, else CPU; ``cuda`` without one is an
    error naming the host and what torch sees (not a traceback from deserialising)."""
    if name not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, not {name!r}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        import socket

        raise RuntimeError(
            f"--device cuda but torch sees no usable GPU on {socket.gethostname()} "
            f"(torch {torch.__version__}, built with CUDA {torch.version.cuda or 'none'}, "
            f"{torch.cuda.device_count()} device(s)); use --device auto or cpu, or run on a GPU node"
        )
    return torch.device(name)
