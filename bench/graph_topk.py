"""The neighbour graph with the compiled top-k step against numpy's, side by side.

    .venv/bin/python bench/graph_topk.py [--n 300] [--repeats 5] [--cpu 0]

The first ``--n`` structures of the core-mof package's CoRE MOF 2019-ASR archive that parse
go through :func:`mofsieve.graphs.neighbour_graph` (12 nearest neighbours within 8 Å, the
pair search included) with the kernel of :mod:`mofsieve.graph_native` and with it switched
off (numpy's sorts), alternating ``--repeats`` times; one process pinned to one core, the
median run's CPU time of this thread per structure. Last: whether every graph is identical.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

from mofsieve import graph_native
from mofsieve.graphs import NeighbourGraph, neighbour_graph
from mofsieve.manifest import iter_archive, package_archive
from mofsieve.structures import StructureError, parse_cif


def structures(count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    found = []
    for _, data in iter_archive(package_archive("core-mof:2019-ASR")):
        try:
            crystal = parse_cif(data)
        except StructureError:
            continue
        found.append((crystal.frac_coords, crystal.lattice))
        if len(found) == count:
            break
    return found


def build_all(cells: list[tuple[np.ndarray, np.ndarray]]) -> tuple[float, list[NeighbourGraph]]:
    start = time.thread_time()
    graphs = [neighbour_graph(frac, lattice) for frac, lattice in cells]
    return time.thread_time() - start, graphs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cpu", type=int, default=0, help="the one core to run on")
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.cpu})
    if graph_native.kernel() is None:
        print("skipped: the neighbour-graph kernel is unavailable here (see the log above)")
        return 0
    cells = structures(args.n)
    times: dict[str, list[float]] = {"numpy": [], "compiled": []}
    for _ in range(args.repeats):  # alternating, so that load on the machine hits both alike
        seconds, compiled = build_all(cells)
        times["compiled"].append(seconds)
        with graph_native.switched_off():
            seconds, reference = build_all(cells)
        times["numpy"].append(seconds)
    same = sum(
        all(np.array_equal(getattr(a, f), getattr(b, f)) for f in ("src", "dst", "dist", "image"))
        for a, b in zip(compiled, reference, strict=True)
    )
    atoms = [len(frac) for frac, _ in cells]
    ms = {name: statistics.median(t) * 1000 / len(cells) for name, t in times.items()}
    print(f"{len(cells)} CoRE MOF 2019-ASR structures, {np.median(atoms):.0f} atoms median "
          f"(max {max(atoms)}), one thread, {args.repeats} repeats alternating")  # fmt: skip
    print(f"neighbour graph, ms of CPU per structure (median run): numpy top-k "
          f"{ms['numpy']:.3f}, compiled top-k {ms['compiled']:.3f}, "
          f"{ms['numpy'] / ms['compiled']:.2f}x")  # fmt: skip
    print(f"identical graphs (edges, order, distances, images): {same}/{len(cells)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
