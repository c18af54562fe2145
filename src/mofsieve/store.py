"""Versioned HDF5 graph shards: write one atomically, read graphs back lazily.

Shard format ``mofsieve-graphs`` version 2 (one file per shard, G graphs, N atoms, E edges):

attributes
    ``format``, ``format_version``, ``mofsieve_version`` and every featurization parameter of
    :class:`FeaturizationParams` (``cutoff``, ``max_neighbors``, ``atom_features``,
    ``global_feature_names`` and ``columns`` — JSON lists —, and ``charges``: ``cif`` or
    ``cif_or_model``, where the ``charge`` dataset comes from; absent in shards written
    before it, which read as ``cif``).
datasets
    ``ids`` (G, str), ``sources`` (G, str), ``node_ptr`` (G+1, int64), ``edge_ptr`` (G+1,
    int64), ``atomic_number`` (N, uint8), ``charge`` (N, float32, NaN where there is none),
    ``frac_coords`` (N×3, float64), ``lattice`` (G×3×3, float64, rows are the cell vectors in
    Å), ``edge_src`` (E, int32, the neighbour j, local to its graph), ``edge_dst`` (E, int32,
    the centre atom i whose nearest neighbours these are), ``edge_dist`` (E, float32, Å),
    ``edge_image`` (E×3, int8, the periodic image of j), and optionally ``global_features``
    (G×D, float32, columns named by ``global_feature_names``).
optional columns (:mod:`mofsieve.graph_columns`), present when ``columns`` names them
    ``reverse_edges``: ``extra_edge_ptr`` (G+1, int64) and ``extra_edge_src``,
    ``extra_edge_dst``, ``extra_edge_dist``, ``extra_edge_image`` (E', as the edge arrays: the
    edges added to make each graph symmetric), ``edge_reverse`` (E+E', int32: per graph, the
    position of each edge's reverse among its nearest-neighbour edges followed by its added
    edges); ``orbital_neighbour_sum`` (N×32, float32, LZF-compressed).

Version 2 added ``columns`` and the optional datasets; version 1 shards (no columns) are read
as they always were.

Edges point from neighbour to centre (``edge_index = [edge_src, edge_dst]``), the direction
in which PyG's ``MessagePassing`` sends messages, so that aggregation lands on the centre.
Distances are stored, not Gaussian expansions: the model expands them on its device.

Reading yields :class:`CrystalGraph` arrays; :mod:`mofsieve.batching` turns them into PyG batches.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from mofsieve import __version__
from mofsieve.atomic import atomic_output
from mofsieve.featurization_params import FeaturizationMismatch, FeaturizationParams
from mofsieve.graph_columns import ORBITAL_NEIGHBOUR_SUM, REVERSE_EDGES

__all__ = ["FeaturizationMismatch", "FeaturizationParams", "ShardFormatError", "ShardReader"]

FORMAT = "mofsieve-graphs"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)


class ShardFormatError(ValueError):
    """A shard is not a mofsieve graph shard, or not of a version this code reads."""


@dataclass
class CrystalGraph:
    """One crystal's graph as plain arrays (see the module docstring for shapes)."""

    mof_id: str
    source: str
    atomic_number: np.ndarray
    charge: np.ndarray
    frac_coords: np.ndarray
    lattice: np.ndarray
    edge_src: np.ndarray
    edge_dst: np.ndarray
    edge_dist: np.ndarray
    edge_image: np.ndarray
    global_features: np.ndarray | None = None
    # optional columns (mofsieve.graph_columns); None where the shard has none
    extra_edge_src: np.ndarray | None = None
    extra_edge_dst: np.ndarray | None = None
    extra_edge_dist: np.ndarray | None = None
    extra_edge_image: np.ndarray | None = None
    edge_reverse: np.ndarray | None = None
    orbital_neighbour_sum: np.ndarray | None = None

    @property
    def n_atoms(self) -> int:
        return int(self.atomic_number.shape[0])


def write_shard(
    path: str | os.PathLike[str],
    graphs: Sequence[CrystalGraph],
    params: FeaturizationParams,
) -> Path:
    """Write ``graphs`` to ``path`` atomically: a temporary name, fsync, then rename.

    A job killed midway leaves at most a hidden ``.NAME.tmp-<pid>``, never a file under ``NAME``.
    """
    n_nodes = np.array([g.n_atoms for g in graphs], dtype=np.int64)
    n_edges = np.array([g.edge_src.shape[0] for g in graphs], dtype=np.int64)
    node_ptr = np.concatenate([[0], np.cumsum(n_nodes)]).astype(np.int64)
    edge_ptr = np.concatenate([[0], np.cumsum(n_edges)]).astype(np.int64)

    def cat(name: str, dtype: type, shape: tuple[int, ...]) -> np.ndarray:
        if not graphs:
            return np.zeros((0, *shape), dtype=dtype)
        lacking = [g.mof_id for g in graphs if getattr(g, name) is None]
        if lacking:
            raise ValueError(f"graphs {lacking[:3]} lack {name} (columns {list(params.columns)})")
        return np.concatenate([np.asarray(getattr(g, name), dtype=dtype) for g in graphs])

    n_global = len(params.global_feature_names)
    with atomic_output(path) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs["format"] = FORMAT
        h5.attrs["format_version"] = FORMAT_VERSION
        h5.attrs["mofsieve_version"] = __version__
        for key, value in params.to_attrs().items():
            h5.attrs[key] = value
        strings = h5py.string_dtype()
        h5.create_dataset("ids", data=[g.mof_id for g in graphs], dtype=strings)
        h5.create_dataset("sources", data=[g.source for g in graphs], dtype=strings)
        h5.create_dataset("node_ptr", data=node_ptr)
        h5.create_dataset("edge_ptr", data=edge_ptr)
        h5.create_dataset("atomic_number", data=cat("atomic_number", np.uint8, ()))
        h5.create_dataset("charge", data=cat("charge", np.float32, ()))
        h5.create_dataset("frac_coords", data=cat("frac_coords", np.float64, (3,)))
        lattices = np.stack([g.lattice for g in graphs]) if graphs else np.zeros((0, 3, 3))
        h5.create_dataset("lattice", data=lattices.astype(np.float64))
        h5.create_dataset("edge_src", data=cat("edge_src", np.int32, ()))
        h5.create_dataset("edge_dst", data=cat("edge_dst", np.int32, ()))
        h5.create_dataset("edge_dist", data=cat("edge_dist", np.float32, ()))
        h5.create_dataset("edge_image", data=cat("edge_image", np.int8, (3,)))
        if n_global:
            rows = [np.asarray(g.global_features, dtype=np.float32) for g in graphs]
            bad = [g.mof_id for g, r in zip(graphs, rows, strict=True) if r.shape != (n_global,)]
            if bad:
                raise ValueError(f"global features of {bad[:3]} do not have {n_global} values")
            data = np.stack(rows) if rows else np.zeros((0, n_global), np.float32)
            h5.create_dataset("global_features", data=data)
        if REVERSE_EDGES in params.columns:
            n_extra = [0 if g.extra_edge_src is None else len(g.extra_edge_src) for g in graphs]
            h5.create_dataset("extra_edge_ptr", data=np.concatenate([[0], np.cumsum(n_extra)]))
            for name, dtype, shape in _EXTRA_EDGE_ARRAYS:
                h5.create_dataset(name, data=cat(name, dtype, shape))
            h5.create_dataset("edge_reverse", data=cat("edge_reverse", np.int32, ()))
        if ORBITAL_NEIGHBOUR_SUM in params.columns:
            # Mostly zeros (an element sets 2–4 of the 32 slots): byte-shuffled LZF (built
            # into h5py) stores it in a twelfth of the space, read about as fast.
            h5.create_dataset(
                "orbital_neighbour_sum",
                data=cat("orbital_neighbour_sum", np.float32, (32,)),
                compression="lzf" if graphs else None,
                shuffle=bool(graphs),
            )
    return Path(path)


def read_params(path: str | os.PathLike[str]) -> FeaturizationParams:
    """The featurization parameters a shard was written with (checks format and version)."""
    with h5py.File(path, "r") as h5:
        _check_format(h5, path)
        return FeaturizationParams.from_attrs(h5.attrs)


def _check_format(h5: h5py.File, path: object) -> None:
    fmt = h5.attrs.get("format")
    if fmt != FORMAT:
        raise ShardFormatError(f"{path} is not a {FORMAT} shard (format={fmt!r})")
    version = int(h5.attrs.get("format_version", -1))
    if version not in READABLE_VERSIONS:
        raise ShardFormatError(
            f"{path} has {FORMAT} format version {version}; this mofsieve reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}: featurize it again"
        )


_ARRAYS = ("atomic_number", "charge", "frac_coords")
_EDGE_ARRAYS = ("edge_src", "edge_dst", "edge_dist", "edge_image")
_EXTRA_EDGE_ARRAYS = (
    ("extra_edge_src", np.int32, ()),
    ("extra_edge_dst", np.int32, ()),
    ("extra_edge_dist", np.float32, ()),
    ("extra_edge_image", np.int8, (3,)),
)


def _column_datasets(columns: Sequence[str]) -> list[str]:
    names = []
    if REVERSE_EDGES in columns:
        names += ["extra_edge_ptr", *(n for n, _, _ in _EXTRA_EDGE_ARRAYS), "edge_reverse"]
    if ORBITAL_NEIGHBOUR_SUM in columns:
        names.append("orbital_neighbour_sum")
    return names


class ShardReader:
    """Random access to the graphs of one shard; the file opens on first use.

    Picklable before and after use (the h5py handle is dropped on pickling and reopened in the
    worker), so a ``DataLoader`` with workers can carry it. ``in_memory=True`` reads every
    array once, which is what training wants; prediction streams shard by shard instead.
    """

    def __init__(self, path: str | os.PathLike[str], in_memory: bool = False) -> None:
        self.path = Path(path)
        self.in_memory = in_memory
        self._h5: h5py.File | None = None
        self._cache: dict[str, np.ndarray] | None = None
        with h5py.File(self.path, "r") as h5:
            _check_format(h5, self.path)
            self.params = FeaturizationParams.from_attrs(h5.attrs)
            missing = [
                k
                for k in (
                    "ids",
                    "sources",
                    "node_ptr",
                    "edge_ptr",
                    "lattice",
                    *_ARRAYS,
                    *_EDGE_ARRAYS,
                    *_column_datasets(self.params.columns),
                )
                if k not in h5
            ]
            if missing:
                raise ShardFormatError(
                    f"{self.path} lacks dataset(s) {', '.join(missing)} (damaged or not written "
                    "by mofsieve): featurize it again"
                )
            self.ids: list[str] = [s.decode() if isinstance(s, bytes) else s for s in h5["ids"][()]]
            self.sources: list[str] = [
                s.decode() if isinstance(s, bytes) else s for s in h5["sources"][()]
            ]
            self.node_ptr = h5["node_ptr"][()]
            self.edge_ptr = h5["edge_ptr"][()]
            sizes = {k: (h5[k].shape[0], int(self.node_ptr[-1])) for k in _ARRAYS}
            sizes |= {k: (h5[k].shape[0], int(self.edge_ptr[-1])) for k in _EDGE_ARRAYS}
            sizes |= {k: (h5[k].shape[0], len(self.ids)) for k in ("sources", "lattice")}
            self.extra_edge_ptr: np.ndarray | None = None
            if REVERSE_EDGES in self.params.columns:
                self.extra_edge_ptr = h5["extra_edge_ptr"][()]
                n_extra = int(self.extra_edge_ptr[-1])
                sizes |= {k: (h5[k].shape[0], n_extra) for k, _, _ in _EXTRA_EDGE_ARRAYS}
                sizes["edge_reverse"] = (
                    h5["edge_reverse"].shape[0],
                    int(self.edge_ptr[-1]) + n_extra,
                )
            if ORBITAL_NEIGHBOUR_SUM in self.params.columns:
                sizes["orbital_neighbour_sum"] = (
                    h5["orbital_neighbour_sum"].shape[0],
                    int(self.node_ptr[-1]),
                )
            wrong = [
                f"{k} has {n} rows, expected {want}" for k, (n, want) in sizes.items() if n != want
            ]
            if wrong:
                raise ShardFormatError(
                    f"{self.path} is inconsistent ({'; '.join(wrong)}): featurize it again"
                )

    def __len__(self) -> int:
        return len(self.ids)

    def __getstate__(self) -> dict[str, object]:
        state = self.__dict__.copy()
        state["_h5"] = None
        return state

    def _arrays(self) -> Mapping[str, np.ndarray] | h5py.File:
        if self.in_memory:
            if self._cache is None:
                with h5py.File(self.path, "r") as h5:
                    self._cache = {k: h5[k][()] for k in h5.keys()}
            return self._cache
        if self._h5 is None:
            self._h5 = h5py.File(self.path, "r")
        return self._h5

    def release(self) -> None:
        """Drop the arrays read into memory (and any open file); they are read again on use."""
        self._cache = None
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None

    def n_atoms(self, index: int) -> int:
        return int(self.node_ptr[index + 1] - self.node_ptr[index])

    def graph(self, index: int) -> CrystalGraph:
        """The ``index``-th graph of the shard as arrays, exactly as written."""
        arrays = self._arrays()
        n0, n1 = int(self.node_ptr[index]), int(self.node_ptr[index + 1])
        e0, e1 = int(self.edge_ptr[index]), int(self.edge_ptr[index + 1])
        globals_ = arrays["global_features"][index] if "global_features" in arrays else None
        columns: dict[str, np.ndarray] = {}
        if self.extra_edge_ptr is not None:
            x0, x1 = int(self.extra_edge_ptr[index]), int(self.extra_edge_ptr[index + 1])
            columns = {k: arrays[k][x0:x1] for k, _, _ in _EXTRA_EDGE_ARRAYS}
            columns["edge_reverse"] = arrays["edge_reverse"][e0 + x0 : e1 + x1]
        if ORBITAL_NEIGHBOUR_SUM in self.params.columns:
            columns["orbital_neighbour_sum"] = arrays["orbital_neighbour_sum"][n0:n1]
        return CrystalGraph(
            mof_id=self.ids[index],
            source=self.sources[index],
            lattice=arrays["lattice"][index],
            global_features=globals_,
            **{k: arrays[k][n0:n1] for k in _ARRAYS},
            **{k: arrays[k][e0:e1] for k in _EDGE_ARRAYS},
            **columns,
        )

    def __iter__(self) -> Iterator[CrystalGraph]:
        for i in range(len(self)):
            yield self.graph(i)


def shard_paths(inputs: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Shard files named directly or found (``shard-*.h5``) in the folders named, sorted.

    A workflow run's ``graphs/`` folder keeps its shards in one sub-folder per featurize job
    (``shards-A-B/``); those are searched too, so the run's graph folder can be named whole.
    """
    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = list(p.glob("shard-*.h5")) + list(p.glob("shards-*-*/shard-*.h5"))
            paths.extend(sorted(found, key=lambda f: (f.name, str(f))))
        elif p.is_file():
            paths.append(p)
        else:
            raise FileNotFoundError(f"no graph shard or folder at {p}")
    return paths
