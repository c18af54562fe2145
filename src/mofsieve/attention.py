"""Per-atom readout weights: written by ``mofsieve predict --attention``, read by the report.

One HDF5 file per graph shard. Attributes: ``format = "mofsieve-attention"``,
``format_version = 2`` and ``readout``: ``"attention"`` when the weights are the model's
learned attention-pooling weights, ``"mean"`` or ``"sum"`` when the model pools without
learned weights (the file then holds the uniform weights 1/n_atoms). Datasets:

``ids`` (G, strings), ``node_ptr`` (G+1, int64: graph g's atoms are rows
``node_ptr[g]:node_ptr[g+1]``), ``weights`` (N, float32; each graph's sum to 1),
``atomic_number`` (N), ``frac_coords`` (N×3), ``lattice`` (G×3×3), atoms in the graph
shard's order.

Version 1 (no ``readout`` attribute) is not read: it could not say whether its weights mean
anything. This module is the one reader and writer of the format; a file it does not
recognise raises :class:`AttentionFormatError` naming the file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mofsieve.modeldir import READOUTS
from mofsieve.modeldir import READOUTS_WITH_ATOM_WEIGHTS as LEARNED_READOUTS

FORMAT = "mofsieve-attention"
FORMAT_VERSION = 2
DATASETS = ("ids", "node_ptr", "weights", "atomic_number", "frac_coords", "lattice")


class AttentionFormatError(ValueError):
    """A file that is not a readable mofsieve attention file of this format version."""


def has_learned_weights(readout: str) -> bool:
    """True for a readout whose per-atom weights were learned (not uniform by construction)."""
    return readout in LEARNED_READOUTS


class AttentionWriter:
    """Appends per-atom weights, shard by shard, to an HDF5 file (the caller's temporary path).

    ``readout`` is the model's pooling: ``"attention"`` (learned weights) or ``"mean"`` /
    ``"sum"`` (the caller writes the uniform weights 1/n_atoms).
    """

    def __init__(self, path: str | os.PathLike[str], readout: str) -> None:
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, not {readout!r}")
        self.h5 = h5py.File(path, "w")
        self.h5.attrs["format"] = FORMAT
        self.h5.attrs["format_version"] = FORMAT_VERSION
        self.h5.attrs["readout"] = readout
        strings = h5py.string_dtype()
        create = self.h5.create_dataset
        create("ids", (0,), maxshape=(None,), dtype=strings, chunks=(1024,))
        create("node_ptr", data=np.zeros(1, np.int64), maxshape=(None,), chunks=(1024,))
        create("weights", (0,), maxshape=(None,), dtype=np.float32, chunks=(65536,))
        create("atomic_number", (0,), maxshape=(None,), dtype=np.uint8, chunks=(65536,))
        create("frac_coords", (0, 3), maxshape=(None, 3), dtype=np.float64, chunks=(65536, 3))
        create("lattice", (0, 3, 3), maxshape=(None, 3, 3), dtype=np.float64, chunks=(1024, 3, 3))

    def _append(self, name: str, values: np.ndarray) -> None:
        ds = self.h5[name]
        n = ds.shape[0]
        ds.resize(n + len(values), axis=0)
        ds[n:] = values

    def add(self, graphs: Sequence[Any], weights: np.ndarray) -> None:
        """Append ``graphs`` (CrystalGraph-like) and their atoms' weights, concatenated."""
        if not graphs:
            return
        sizes = np.array([g.n_atoms for g in graphs], dtype=np.int64)
        if len(weights) != int(sizes.sum()):
            raise ValueError(f"{len(weights)} weights for {int(sizes.sum())} atoms")
        start = int(self.h5["node_ptr"][-1])
        self._append("ids", np.array([g.mof_id for g in graphs], dtype=object))
        self._append("node_ptr", start + np.cumsum(sizes))
        self._append("weights", np.asarray(weights).astype(np.float32))
        atomic_number = np.concatenate([g.atomic_number for g in graphs])
        self._append("atomic_number", atomic_number.astype(np.uint8))
        frac_coords = np.concatenate([g.frac_coords for g in graphs])
        self._append("frac_coords", frac_coords.astype(np.float64))
        self._append("lattice", np.stack([g.lattice for g in graphs]).astype(np.float64))

    def close(self) -> None:
        self.h5.close()


def _attr(h5: h5py.File, name: str) -> object:
    """An attribute as a plain Python value (str, int, …), or None when absent."""
    value = h5.attrs.get(name)
    if isinstance(value, np.generic):
        value = value.item()
    return value.decode() if isinstance(value, bytes) else value


def read_attention(
    path: str | os.PathLike[str], mof_ids: Iterable[str] | None = None
) -> tuple[str, dict[str, np.ndarray]]:
    """``(readout, {mof_id: per-atom weights})`` of an attention file, for ``mof_ids`` that it
    holds (all, without ``mof_ids``). Raises :class:`AttentionFormatError` naming the file
    for anything it does not recognise.
    """
    path = Path(path)
    try:
        h5 = h5py.File(path, "r")
    except OSError as err:
        raise AttentionFormatError(f"{path}: cannot open as an attention file ({err})") from None
    with h5:
        fmt = _attr(h5, "format")
        if fmt != FORMAT:
            raise AttentionFormatError(f"{path} is not a {FORMAT} file (format={fmt!r})")
        version = _attr(h5, "format_version")
        if version != FORMAT_VERSION:
            raise AttentionFormatError(
                f"{path} has {FORMAT} format version {version!r}; this mofsieve reads version "
                f"{FORMAT_VERSION}: run mofsieve predict --attention again"
            )
        readout = _attr(h5, "readout")
        if readout not in READOUTS:
            raise AttentionFormatError(
                f"{path}: readout attribute is {readout!r}, not one of {READOUTS}"
            )
        missing = [name for name in DATASETS if name not in h5]
        if missing:
            raise AttentionFormatError(f"{path} lacks datasets {missing}")
        ids = [s.decode() if isinstance(s, bytes) else str(s) for s in h5["ids"][()]]
        ptr = np.asarray(h5["node_ptr"][()], dtype=np.int64)
        n_weights, n_atoms = h5["weights"].shape[0], h5["atomic_number"].shape[0]
        if (
            ptr.shape != (len(ids) + 1,)
            or ptr[0] != 0
            or np.any(np.diff(ptr) < 0)
            or not ptr[-1] == n_weights == n_atoms
        ):
            raise AttentionFormatError(
                f"{path}: {n_weights} weights and {n_atoms} atoms do not match node_ptr "
                f"({len(ptr)} entries ending at {ptr[-1] if len(ptr) else None}) "
                f"of {len(ids)} graphs"
            )
        wanted = None if mof_ids is None else set(mof_ids)
        weights = h5["weights"]
        out = {
            mof_id: np.asarray(weights[ptr[i] : ptr[i + 1]], dtype=np.float64)
            for i, mof_id in enumerate(ids)
            if wanted is None or mof_id in wanted
        }
    return str(readout), out
