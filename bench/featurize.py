"""Featurization speed: the CGCNN reference procedure vs `mofsieve featurize`, side by side.

Everything runs single-core on the same CIFs in one process, one after another per CIF so
that machine load hits all alike:

- the CGCNN reference: the procedure published with CGCNN (Xie & Grossman), written here
  from its description: pymatgen parses the CIF, ``get_all_neighbors(8)``, each atom's list
  sorted by distance and cut at 12, then the Gaussian expansion of the distances (0–8 Å,
  step 0.2, width 0.2);
- mofsieve, graph only: ``featurize_cif`` (gemmi parse, pymatgen compiled pair search,
  vectorised top-12) up to the arrays it stores;
- mofsieve, graph + the descriptors of the shipped models (``--model``, default the 0.15 bar
  model: cell, density, geometric void fraction, surface areas, largest sphere) as
  ``mofsieve featurize --model`` computes them (compiled geometric kernels,
  ``mofsieve.descriptors.native``), and again with the kernels switched off (the numpy
  implementation; same numbers, checked here CIF by CIF);
- graph + the structure checks (``mofsieve.checks``: bonds, components, coordination) that
  ``mofsieve featurize`` runs on every graph; their extra cost is printed as the median and
  mean per-CIF difference with graph only, and as the checks alone on the graph made.

The run also checks that mofsieve and the reference give the same multiset of 12 neighbour
distances for every atom (to 1e-4 Å). Times are wall clock (as the reference figures have
always been); the CPU time of this thread is printed too, the steadier figure when other
jobs share the machine.

``--whole-process`` then writes the same CIFs into one ``.tar`` and times whole
``mofsieve featurize --jobs 1`` processes on one core (start-up, imports, shard writing
included), graph only and with ``--model``, kernels on and off, alternating, ``--repeats``
times each.

    python bench/featurize.py [--n 300] [--source ../shared/data/core2019-co2/cifs.tar.xz]
        [--model models/co2_298K_0.15bar] [--whole-process] [--repeats 3]

Without the shared data it uses the first CIFs of the PyPI package core-mof.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from mofsieve.checks import bond_checks
from mofsieve.descriptors import native
from mofsieve.featurize import featurize_cif
from mofsieve.manifest import iter_archive, package_archive
from mofsieve.modeldir import read_model
from mofsieve.store import FeaturizationParams
from mofsieve.structures import StructureError

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "core2019-co2" / "cifs.tar.xz"
SHIPPED = REPO / "models" / "co2_298K_0.15bar"


def cgcnn_reference(text: str, radius: float = 8.0, max_num_nbr: int = 12):
    """CGCNN's published featurization: returns the structure and per-atom distances."""
    from pymatgen.core import Structure

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        crystal = Structure.from_str(text, fmt="cif")
    all_nbrs = crystal.get_all_neighbors(radius, include_index=True)
    all_nbrs = [sorted(nbrs, key=lambda x: x[1]) for nbrs in all_nbrs]
    nbr_dist = [[n[1] for n in nbrs[:max_num_nbr]] for nbrs in all_nbrs]
    centres = np.arange(0.0, radius + 0.1, 0.2)
    expanded = [np.exp(-((np.array(d)[:, None] - centres) ** 2) / 0.2**2) for d in nbr_dist]
    return crystal, nbr_dist, expanded


def same_neighbours(crystal, reference_dist, graph) -> bool:
    if crystal.num_sites != graph.n_atoms:
        return False
    tree = cKDTree(graph.frac_coords, boxsize=1.0)
    _, index = tree.query(np.mod(crystal.frac_coords, 1.0) % 1.0)
    if len(set(index.tolist())) != graph.n_atoms:
        return False
    order = np.argsort(graph.edge_dst, kind="stable")
    dst, dist = graph.edge_dst[order], graph.edge_dist[order]
    bounds = np.searchsorted(dst, np.arange(graph.n_atoms + 1))
    for ref, atom in zip(reference_dist, index, strict=True):
        ours = np.sort(dist[bounds[atom] : bounds[atom + 1]])
        if len(ours) != len(ref) or np.abs(ours - np.sort(ref)).max(initial=0) > 1e-4:
            return False
    return True


class Clock:
    """Wall and thread-CPU seconds of each timed call, per label; a CIF's times are kept only
    once all of its calls succeeded (``keep``)."""

    def __init__(self) -> None:
        self.wall: dict[str, list[float]] = {}
        self.cpu: dict[str, list[float]] = {}
        self._pending: list[tuple[str, float, float]] = []

    def run(self, label: str, function, *args, **kwargs):
        wall, cpu = time.perf_counter(), time.thread_time()
        result = function(*args, **kwargs)
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
        self._pending.append((label, wall, cpu))
        return result

    def keep(self) -> None:
        for label, wall, cpu in self._pending:
            self.wall.setdefault(label, []).append(wall)
            self.cpu.setdefault(label, []).append(cpu)
        self._pending.clear()

    def drop(self) -> None:
        self._pending.clear()


def _without_kernels(*args):
    with native.switched_off():
        return featurize_cif(*args)


REFERENCE, GRAPH, DESCRIPTORS, NUMPY, CHECKED, CHECKS = (
    "CGCNN reference (pymatgen)",
    "mofsieve, graph only",
    "mofsieve, graph + descriptors",
    "  same, numpy descriptors",
    "mofsieve, graph + checks",
    "checks alone (on the graph)",
)


def in_process(
    cifs: Iterable[tuple[str, bytes]], n: int, descriptor_names: tuple[str, ...]
) -> list[tuple[str, bytes]]:
    graph_only = FeaturizationParams()
    with_descriptors = FeaturizationParams(global_feature_names=descriptor_names)
    clock = Clock()
    timed: list[tuple[str, bytes]] = []
    agree, mismatched, skipped, numpy_differs = 0, [], 0, []
    for name, data in cifs:
        if len(timed) == n:
            break
        try:  # which of the two goes first alternates, so that neither gets warmer caches
            if len(timed) % 2:
                described = clock.run(
                    DESCRIPTORS, featurize_cif, name, name, data, with_descriptors
                )
                graph = clock.run(GRAPH, featurize_cif, name, name, data, graph_only)
            else:
                graph = clock.run(GRAPH, featurize_cif, name, name, data, graph_only)
                described = clock.run(
                    DESCRIPTORS, featurize_cif, name, name, data, with_descriptors
                )
        except StructureError:
            skipped += 1  # rejected by mofsieve's error policy: not a like-for-like timing
            clock.drop()
            continue
        crystal, reference_dist, _ = clock.run(
            REFERENCE, cgcnn_reference, data.decode("utf-8", errors="replace")
        )
        slow = clock.run(NUMPY, _without_kernels, name, name, data, with_descriptors)
        clock.run(CHECKED, featurize_cif, name, name, data, graph_only, checks=[])
        clock.run(CHECKS, bond_checks, graph.atomic_number, graph.charge, graph.edge_src,
                  graph.edge_dst, graph.edge_dist, graph.edge_image)  # fmt: skip
        clock.keep()
        timed.append((name, data))
        if not np.array_equal(slow.global_features, described.global_features):
            numpy_differs.append(name)
        if same_neighbours(crystal, reference_dist, graph) and np.array_equal(
            graph.edge_dist, described.edge_dist
        ):
            agree += 1
        else:
            mismatched.append(name)

    count = len(timed)
    print(f"CIFs timed: {count} (skipped {skipped} that mofsieve rejects)")
    print(f"descriptors: {', '.join(descriptor_names)}")
    print(
        f"{'':32s}{'median ms':>10s}{'mean ms':>10s}{'total s':>9s}"
        f"{'CPU med ms':>11s}{'CPU mean':>10s}"
    )
    for label in (REFERENCE, GRAPH, DESCRIPTORS, NUMPY, CHECKED, CHECKS):
        wall = [
            1000 * statistics.median(clock.wall[label]),
            1000 * statistics.mean(clock.wall[label]),
        ]
        cpu = [1000 * statistics.median(clock.cpu[label]), 1000 * statistics.mean(clock.cpu[label])]
        print(
            f"{label:32s}{wall[0]:10.2f}{wall[1]:10.2f}{sum(clock.wall[label]):9.2f}"
            f"{cpu[0]:11.2f}{cpu[1]:10.2f}"
        )
    for label in (GRAPH, DESCRIPTORS, NUMPY):
        wall, cpu = clock.wall, clock.cpu
        print(
            f"speed-up of {label.strip():30s} vs reference: median per CIF "
            f"{statistics.median(wall[REFERENCE]) / statistics.median(wall[label]):5.1f}x, "
            f"total {sum(wall[REFERENCE]) / sum(wall[label]):5.1f}x "
            f"(CPU: {statistics.median(cpu[REFERENCE]) / statistics.median(cpu[label]):5.1f}x, "
            f"{sum(cpu[REFERENCE]) / sum(cpu[label]):5.1f}x)"
        )
    extra = [c - o for c, o in zip(clock.wall[CHECKED], clock.wall[GRAPH], strict=True)]
    alone = clock.wall[CHECKS]
    print(
        f"structure checks, extra per CIF: median {1000 * statistics.median(extra):.2f} ms, "
        f"mean {1000 * statistics.mean(extra):.2f} ms (graph only vs graph + checks); the "
        f"checks alone: median {1000 * statistics.median(alone):.2f} ms, "
        f"mean {1000 * statistics.mean(alone):.2f} ms"
    )
    descriptor_cost = [d - g for d, g in zip(clock.cpu[DESCRIPTORS], clock.cpu[GRAPH], strict=True)]
    print(
        f"descriptors' own cost (CPU, graph + descriptors − graph only): median "
        f"{1000 * statistics.median(descriptor_cost):.2f} ms, mean "
        f"{1000 * statistics.mean(descriptor_cost):.2f} ms per CIF"
    )
    print(
        f"identical 12-NN distance multisets (1e-4 Å), same graph with descriptors: {agree}/{count}"
    )
    for name in mismatched[:10]:
        print(f"  differs: {name}")
    print(
        f"descriptors equal (float32) with kernels on and off: {count - len(numpy_differs)}/{count}"
    )
    for name in numpy_differs[:10]:
        print(f"  differs: {name}")
    return timed


def _run_featurize(
    archive: Path, out: Path, extra: list[str], kernels: bool
) -> tuple[float, float]:
    """(wall s, CPU s) of one whole ``mofsieve featurize --jobs 1`` process on one core."""
    env = dict(os.environ, MOFSIEVE_GEOMETRIC_KERNELS="1" if kernels else "0")
    core = min(os.sched_getaffinity(0))
    command = [str(Path(sys.executable).with_name("mofsieve")), "featurize", str(archive)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        [*command, "--out", str(out), "--jobs", "1", "--overwrite", *extra],
        check=True,
        env=env,
        capture_output=True,
        preexec_fn=lambda: os.sched_setaffinity(0, {core}),
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def whole_process(timed: list[tuple[str, bytes]], model: Path, repeats: int) -> None:
    variants = [
        ("graph only", [], True),
        ("graph + descriptors", ["--model", str(model)], True),
        ("  same, numpy descriptors", ["--model", str(model)], False),
    ]
    results: dict[str, list[tuple[float, float]]] = {label: [] for label, _, _ in variants}
    with tempfile.TemporaryDirectory(prefix="bench-featurize-") as folder:
        archive = Path(folder) / "cifs.tar"
        with tarfile.open(archive, "w") as tar:
            for name, data in timed:
                member = tarfile.TarInfo(Path(name).name)
                member.size = len(data)
                tar.addfile(member, io.BytesIO(data))
        _run_featurize(archive, Path(folder) / "warm", ["--model", str(model)], True)  # builds
        for _ in range(repeats):
            for label, extra, kernels in variants:
                out = Path(folder) / "out"
                results[label].append(_run_featurize(archive, out, extra, kernels))
    count = len(timed)
    print(
        f"\nwhole `mofsieve featurize --jobs 1` processes on one core, {count} CIFs, "
        f"{repeats} runs each (alternating), ms per CIF:"
    )
    print(f"{'':28s}{'wall best':>10s}{'wall median':>12s}{'CPU best':>10s}{'CPU median':>11s}")
    for label, runs in results.items():
        wall = [1000 * w / count for w, _ in runs]
        cpu = [1000 * c / count for _, c in runs]
        print(
            f"{label:28s}{min(wall):10.2f}{statistics.median(wall):12.2f}"
            f"{min(cpu):10.2f}{statistics.median(cpu):11.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="number of CIFs (default 300)")
    parser.add_argument("--source", type=Path, help="tar archive of CIFs")
    parser.add_argument(
        "--model", type=Path, default=SHIPPED, help="the descriptors of this model's model.json"
    )
    parser.add_argument(
        "--whole-process", action="store_true", help="also time whole featurize processes"
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per whole-process variant")
    args = parser.parse_args()
    source = args.source or (SHARED if SHARED.exists() else package_archive("core-mof:2019-ASR"))
    names = read_model(args.model).featurization.global_feature_names
    print(f"source: {source}; model: {args.model}")
    native.kernels()  # built (once per machine) before anything is timed
    timed = in_process(iter_archive(source), args.n, names)
    if args.whole_process:
        whole_process(timed, args.model, args.repeats)


if __name__ == "__main__":
    main()
