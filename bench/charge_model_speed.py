"""What the fused CGConv kernel and merging equivalent atoms gain in the shipped charge model,
per CIF, on one CPU thread.

    .venv/bin/python bench/charge_model_speed.py [--n 100] [--repeats 7] [--cpu 0]

The first ``--n`` CIFs of ``../shared/data/core2019-co2/cifs.tar.xz`` (CoRE MOF 2019) that the
charge model can charge (its elements, a neighbour graph) go through
``load_charge_model().predict(crystal, edges)``, the call ``featurize --charges cif_or_model``
makes for every CIF without charges, with the neighbour graphs built once beforehand (the
featurizer has them already). Three times per repeat, alternating: as ``predict`` runs it
(the network once per set of atoms its three layers cannot tell apart, :mod:`mofsieve.symmetry`,
with the fused CPU kernels of :mod:`mofsieve.fused`), on every atom with the fused kernels
(``every_atom=True``), and on every atom with PyTorch operators only. One process pinned to one
core (``--cpu``), torch on one thread; the median of ``--repeats`` runs is kept, CPU time of
this thread (the steady figure on a shared machine) and wall time. Last: the largest charge
differences from the PyTorch run, which should be float32 rounding (~1e-6 e).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from mofsieve import fused
from mofsieve.charge_model import ChargeModel, ChargeModelError, load_charge_model
from mofsieve.charge_net import crystal_edges
from mofsieve.layers import regular_degree
from mofsieve.manifest import iter_archive
from mofsieve.structures import Crystal, StructureError, parse_cif

ROOT = Path(__file__).resolve().parents[1]
ARCHIVE = ROOT.parent / "shared" / "data" / "core2019-co2" / "cifs.tar.xz"

Edges = tuple[np.ndarray, np.ndarray]


def chargeable_crystals(model: ChargeModel, count: int) -> list[tuple[Crystal, Edges]]:
    """The first ``count`` CIFs of the archive the model charges, with their neighbour graphs."""
    found: list[tuple[Crystal, Edges]] = []
    spec = model.spec
    for _, data in iter_archive(ARCHIVE):
        try:
            crystal = parse_cif(data)
            edges = crystal_edges(
                crystal.frac_coords, crystal.lattice, spec.cutoff, spec.max_neighbors
            )
            model.predict(crystal, edges)  # refused (elements, size, no neighbours): left out
        except (StructureError, ChargeModelError):
            continue
        found.append((crystal, edges))
        if len(found) == count:
            break
    return found


def charge_all(
    model: ChargeModel, crystals: list[tuple[Crystal, Edges]], every_atom: bool
) -> tuple:
    """(CPU s, wall s, charges of each crystal)."""
    charges = []
    cpu, wall = time.thread_time(), time.perf_counter()
    for crystal, edges in crystals:
        charges.append(model.predict(crystal, edges, every_atom=every_atom))
    return time.thread_time() - cpu, time.perf_counter() - wall, charges


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--cpu", type=int, default=0, help="the one core to run on")
    args = parser.parse_args()
    if not ARCHIVE.is_file():
        print(f"skipped: no {ARCHIVE} (this benchmark needs the shared CoRE MOF copy)")
        return 0
    os.sched_setaffinity(0, {args.cpu})
    torch.set_num_threads(1)
    if fused.kernels() is None:  # built here if needed (~30 s once); the log says why not
        print("skipped: the fused CPU kernels are unavailable here (see the log above)")
        return 0

    model = load_charge_model()
    crystals = chargeable_crystals(model, args.n)
    n = len(crystals)
    atoms = [crystal.n_atoms for crystal, _ in crystals]
    regular = sum(
        regular_degree(torch.from_numpy(edges[0][1]), crystal.n_atoms) is not None
        for crystal, edges in crystals
    )

    modes = ("pytorch", "fused", "merged")
    runs: dict[str, list[tuple[float, float]]] = {mode: [] for mode in modes}
    charges: dict[str, list[np.ndarray]] = {}
    for _ in range(args.repeats):  # alternating, so that load on the machine hits all alike
        cpu, wall, charges["merged"] = charge_all(model, crystals, every_atom=False)
        runs["merged"].append((cpu, wall))
        cpu, wall, charges["fused"] = charge_all(model, crystals, every_atom=True)
        runs["fused"].append((cpu, wall))
        with fused.switched_off():
            cpu, wall, charges["pytorch"] = charge_all(model, crystals, every_atom=True)
        runs["pytorch"].append((cpu, wall))

    print(f"{n} CoRE MOF 2019 CIFs, {np.median(atoms):.0f} atoms median (max {max(atoms)}), "
          f"{regular} with the regular 12-neighbour graph the kernel needs; charge model "
          f"{model.name}, one thread, {args.repeats} repeats alternating")  # fmt: skip
    print("ms per CIF (median run): PyTorch = every atom, PyTorch operators; fused = every atom,")
    print("fused kernels; merged = once per set of equivalent atoms, fused kernels (as predict)")
    print(f"{'':<12}{'PyTorch':>10}{'fused':>10}{'merged':>10}{'fused/PyTorch':>15}"
          f"{'merged/PyTorch':>16}")  # fmt: skip
    for label, column in (("CPU time", 0), ("wall time", 1)):
        ms = {m: statistics.median(r[column] for r in runs[m]) * 1000 / n for m in modes}
        print(f"{label:<12}{ms['pytorch']:>10.2f}{ms['fused']:>10.2f}{ms['merged']:>10.2f}"
              f"{ms['pytorch'] / ms['fused']:>14.2f}x{ms['pytorch'] / ms['merged']:>15.2f}x")  # fmt: skip
    for mode in ("fused", "merged"):
        largest = max(
            float(np.abs(a - b).max())
            for a, b in zip(charges[mode], charges["pytorch"], strict=True)
        )
        print(f"max |Δcharge| {mode} vs PyTorch: {largest:.2e} e over {sum(atoms)} atoms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
