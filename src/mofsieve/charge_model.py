"""The shipped partial-charge model: its folder format, loading, prediction and `mofsieve charges`.

A charge-model folder (``models/charges/``) holds

- ``charge_model.json``: format ``mofsieve-charge-model`` version 1 — the network's
  constructor arguments (``init``), the neighbour graph it was trained on (``cutoff``,
  ``max_neighbors``), the elements it saw in training, the weights file, metrics and training
  record. This module is its only reader and writer;
- ``weights.pt`` (state dict of :class:`mofsieve.charge_net.ChargeNet`), ``MODEL_CARD.md``,
  ``split.csv`` (which MOFs trained, selected and tested it).

``mofsieve charges INPUT... --out DIR`` writes ``DIR/<mof_id>.cif`` (P1, every atom with
``_atom_site_charge``), ``DIR/charges.csv`` (mof_id, n_atoms, charge_method, net_charge_e,
min/max charge) and ``DIR/failures.csv`` for the CIFs that could not be read or charged; the
rest go on. Every file is written under a temporary name and renamed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mofsieve.atomic import write_csv_atomic, write_text_atomic
from mofsieve.failures import Failure, write_failures
from mofsieve.structures import Crystal

log = logging.getLogger(__name__)

FORMAT = "mofsieve-charge-model"
FORMAT_VERSION = 1
MANIFEST_NAME = "charge_model.json"
DEFAULT_CHARGE_MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "charges"
SUMMARY_COLUMNS = (
    "mof_id",
    "n_atoms",
    "charge_method",
    "net_charge_e",
    "min_charge_e",
    "max_charge_e",
)
# Larger cells are refused rather than risk a job's memory: ~0.5 GB of activations at 20,000.
MAX_ATOMS = 20000


class ChargeModelError(ValueError):
    """A charge model that cannot be loaded, or a crystal it cannot charge, with the reason."""


@dataclass(frozen=True)
class ChargeModelSpec:
    """What ``charge_model.json`` says (see the module docstring)."""

    init: dict[str, Any]
    cutoff: float
    max_neighbors: int
    elements: tuple[int, ...]
    weights: str
    metrics: dict[str, Any]
    training: dict[str, Any]


def write_spec(model_dir: Path, spec: ChargeModelSpec) -> Path:
    record = {"format": FORMAT, "format_version": FORMAT_VERSION}
    record.update(
        init=spec.init,
        cutoff=spec.cutoff,
        max_neighbors=spec.max_neighbors,
        elements=list(spec.elements),
        weights=spec.weights,
        metrics=spec.metrics,
        training=spec.training,
    )
    return write_text_atomic(model_dir / MANIFEST_NAME, json.dumps(record, indent=1) + "\n")


def read_spec(model_dir: Path) -> ChargeModelSpec:
    path = Path(model_dir) / MANIFEST_NAME
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise ChargeModelError(
            f"no charge model in {model_dir} ({MANIFEST_NAME} missing)"
        ) from None
    except (OSError, json.JSONDecodeError) as err:
        raise ChargeModelError(f"cannot read {path}: {err}") from err
    if record.get("format") != FORMAT or record.get("format_version") != FORMAT_VERSION:
        raise ChargeModelError(
            f"{path} is not a {FORMAT} version {FORMAT_VERSION} file "
            f"(format {record.get('format')!r}, version {record.get('format_version')!r})"
        )
    try:
        return ChargeModelSpec(
            init=dict(record["init"]),
            cutoff=float(record["cutoff"]),
            max_neighbors=int(record["max_neighbors"]),
            elements=tuple(int(z) for z in record["elements"]),
            weights=str(record["weights"]),
            metrics=dict(record.get("metrics", {})),
            training=dict(record.get("training", {})),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ChargeModelError(f"{path}: missing or bad field: {err}") from err


class ChargeModel:
    """A loaded charge model: :meth:`predict` gives neutral per-atom charges of a crystal."""

    def __init__(self, model_dir: Path, spec: ChargeModelSpec, network: Any) -> None:
        self.model_dir = model_dir
        self.spec = spec
        self.network = network
        digest = hashlib.sha1((model_dir / spec.weights).read_bytes()).hexdigest()[:8]
        self.name = f"model:{model_dir.name}-{digest}"

    def predict(
        self,
        crystal: Crystal,
        edges: tuple[np.ndarray, np.ndarray] | None = None,
        every_atom: bool = False,
    ) -> np.ndarray:
        """Charges (n_atoms,) float64 in e, finite, summing to 0 (to ~1e-6 e). ``edges``: the
        crystal's ``crystal_edges`` at the spec's cutoff and max_neighbors, if the caller has
        them already (the featurizer's graph), else they are built here. ``every_atom``: run
        the network on every atom instead of once per set of equivalent atoms (the same
        charges to float32 rounding; for tests and benchmarks)."""
        import torch

        from mofsieve.charge_net import crystal_edges
        from mofsieve.symmetry import atom_colours, representatives

        z = np.asarray(crystal.atomic_number, dtype=np.int64)
        if z.size == 0:
            raise ChargeModelError("the cell has no atoms")
        if z.size > MAX_ATOMS:
            raise ChargeModelError(f"{z.size} atoms in the cell, more than the {MAX_ATOMS} allowed")
        unseen = sorted(set(z.tolist()) - set(self.spec.elements))
        if unseen:
            from ase.data import chemical_symbols

            names = ", ".join(chemical_symbols[int(e)] for e in unseen)
            raise ChargeModelError(f"element(s) {names} never seen in the charge model's training")
        if edges is None:
            edges = crystal_edges(
                crystal.frac_coords, crystal.lattice, self.spec.cutoff, self.spec.max_neighbors
            )
        edge_index, edge_dist = edges
        if edge_index.shape[1] == 0:
            raise ChargeModelError(f"no neighbours within {self.spec.cutoff} Å of any atom")
        # Atoms the layers cannot tell apart get the same charge: run the network once per
        # such set (exact: mofsieve.symmetry), ~4x fewer atoms on the core-mof structures.
        colour = np.arange(z.size) if every_atom else atom_colours(
            z, np.full(z.size, np.nan, np.float32), edge_index[0], edge_index[1], edge_dist,
            rounds=len(self.network.convs),
        )  # fmt: skip
        rows = representatives(colour)
        keep, src, dst = rows.edges(edge_index[0], edge_index[1])
        with torch.inference_mode():
            charge = self.network(
                torch.from_numpy(z[rows.atoms]),
                torch.from_numpy(np.stack([src, dst])),
                torch.from_numpy(np.ascontiguousarray(edge_dist[keep])),
                torch.zeros(rows.atoms.size, dtype=torch.int64),
                1,
                multiplicity=torch.from_numpy(rows.multiplicity.astype(np.float32)),
            )
        values = charge.double().numpy()[rows.atom_to_row]
        # The network's float32 neutralisation leaves ~1e-6 e per cell; exact in float64.
        values -= values.mean()
        if not np.isfinite(values).all():
            raise ChargeModelError("the network gave non-finite charges")
        return values


def load_charge_model(model_dir: str | os.PathLike[str] = DEFAULT_CHARGE_MODEL_DIR) -> ChargeModel:
    """The model in ``model_dir`` on the CPU, in evaluation mode."""
    import torch

    from mofsieve.charge_net import ChargeNet

    model_dir = Path(model_dir)
    spec = read_spec(model_dir)
    try:
        network = ChargeNet(**spec.init)
        state = torch.load(model_dir / spec.weights, map_location="cpu", weights_only=True)
        network.load_state_dict(state)
    except (OSError, RuntimeError, TypeError) as err:
        raise ChargeModelError(f"cannot load the charge model in {model_dir}: {err}") from err
    network.eval()
    return ChargeModel(model_dir, spec, network)


# ---------------------------------------------------------------------------------------------
# command line


def charge_cifs(
    sources: Iterable[tuple[str, str]], model: ChargeModel, out_dir: Path
) -> tuple[list[list[str]], list[Failure]]:
    """Charge each ``(mof_id, source)``; P1 CIFs into ``out_dir``; summary rows and failures."""
    from mofsieve.manifest import iter_source_bytes
    from mofsieve.structures import StructureError, p1_cif_text, parse_cif

    pairs = list(sources)
    ids = {source: mof_id for mof_id, source in pairs}
    rows: list[list[str]] = []
    failures: list[Failure] = []
    for source, data in iter_source_bytes([s for _, s in pairs]):
        mof_id = ids[source]
        if isinstance(data, OSError):
            failures.append(Failure(mof_id, source, "read", str(data)))
            continue
        try:
            crystal = parse_cif(data)
            charge = model.predict(crystal)
        except StructureError as err:
            failures.append(Failure(mof_id, source, err.stage, str(err)))
            continue
        except ChargeModelError as err:
            failures.append(Failure(mof_id, source, "charges", str(err)))
            continue
        text = p1_cif_text(
            mof_id,
            crystal.atomic_number,
            crystal.frac_coords,
            crystal.lattice,
            charge,
            audit=f"mofsieve charges ({model.name})",
        )
        write_text_atomic(out_dir / f"{mof_id}.cif", text)
        rows.append(
            [
                mof_id,
                str(crystal.n_atoms),
                model.name,
                f"{float(charge.sum()):.6f}",
                f"{float(charge.min()):.4f}",
                f"{float(charge.max()):.4f}",
            ]
        )
    return rows, failures


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="CIF files, folders, globs or tar archives"
    )
    parser.add_argument("--out", required=True, type=Path, help="folder for the charged CIFs")
    parser.add_argument(
        "--model",
        type=Path,
        default=DEFAULT_CHARGE_MODEL_DIR,
        help="charge-model folder (default: the shipped models/charges)",
    )


def run(args: argparse.Namespace) -> int:
    from mofsieve.manifest import InputError, build_manifest

    try:
        model = load_charge_model(args.model)
        rows = build_manifest(args.inputs, shard_size=1)
    except (ChargeModelError, InputError) as err:
        log.error("%s", err)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    summary, failures = charge_cifs(((r.mof_id, r.source) for r in rows), model, args.out)
    write_csv_atomic(args.out / "charges.csv", SUMMARY_COLUMNS, summary)
    write_failures(failures, args.out / "failures.csv")
    log.info(
        "charged %d of %d CIFs with %s into %s (%d failures, see failures.csv)",
        len(summary),
        len(rows),
        model.name,
        args.out,
        len(failures),
    )
    return 0
