"""The compiled CO2 energy-grid kernel of this tree against the one of an earlier commit, side
by side.

    .venv/bin/python bench/energy_kernel.py [--against REV] [--n 300] [--repeats 3] [--cpu 0]

Both sources (``descriptors/energy_kernels.cpp`` and the header it includes) are compiled with
the flags :mod:`mofsieve.descriptors.energy_native` uses now, the earlier ones taken from
``git show REV:…`` (default ``HEAD``), into a temporary folder. The first ``--n`` structures of
the core-mof package's CoRE MOF 2019-ASR archive that parse, with made-up neutral charges
(normal, σ 0.3 e; the archive's CIFs have none), go through
:func:`mofsieve.descriptors.energy_grid.co2_energies` (2,048 positions, Lennard-Jones and
Coulomb) with each library, alternating ``--repeats`` times; one process pinned to one core,
the median run's CPU time of this thread per structure. Last: how far the 10 force-field
descriptors of the two are apart, and on how many structures.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mofsieve import native_build
from mofsieve.descriptors import energy_grid, energy_native
from mofsieve.manifest import iter_archive, package_archive
from mofsieve.structures import StructureError, parse_cif

ROOT = Path(__file__).resolve().parents[1]


def structures(count: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    found = []
    for _, data in iter_archive(package_archive("core-mof:2019-ASR")):
        try:
            crystal = parse_cif(data)
        except StructureError:
            continue
        charges = rng.normal(0.0, 0.3, crystal.n_atoms)
        found.append((crystal.atomic_number, crystal.frac_coords, crystal.lattice,
                      charges - charges.mean()))  # fmt: skip
        if len(found) == count:
            break
    return found


def build(sources: dict[str, str], folder: Path, name: str) -> ctypes.CDLL:
    """Compile the kernel source and header texts ``sources`` into ``folder/name.so``."""
    for filename, text in sources.items():
        (folder / filename).write_text(text)
    built = folder / f"{name}.so"
    flags = energy_native.LIBRARY.flags()
    subprocess.run([*native_build.compiler_command(), *flags, "-o", str(built),
                    str(folder / energy_native.SOURCE.name)], check=True)  # fmt: skip
    library = ctypes.CDLL(str(built))
    current = energy_native.kernel()
    assert current is not None
    function = library.mofsieve_energy_grid
    function.argtypes = current.mofsieve_energy_grid.argtypes
    function.restype = current.mofsieve_energy_grid.restype
    return library


def run(library: ctypes.CDLL, mofs: list) -> tuple[float, dict[str, np.ndarray]]:
    energy_native.LIBRARY._loaded = (library,)  # what kernel() hands out
    settings = energy_grid.DEFAULT_ENERGY
    start = time.thread_time()
    values = []
    for numbers, frac, cell, charges in mofs:
        lj, coulomb = energy_grid.co2_energies(numbers, frac, cell, settings, charges)
        values.append(energy_grid.summarize(lj, coulomb, settings, 1.0))
    seconds = time.thread_time() - start
    return seconds, {name: np.array([v[name] for v in values]) for name in values[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", default="HEAD", help="the earlier commit (git revision)")
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpu", type=int, default=0, help="the one core to run on")
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.cpu})
    if energy_native.kernel() is None:
        print("skipped: the energy-grid kernel cannot be built here (see the log above)")
        return 0
    files = [energy_native.SOURCE, *energy_native.LIBRARY.headers]
    now = {f.name: f.read_text() for f in files}
    then = {
        f.name: subprocess.run(["git", "show", f"{args.against}:{f.relative_to(ROOT)}"],
                               cwd=ROOT, check=True, capture_output=True, text=True).stdout
        for f in files
    }  # fmt: skip
    mofs = structures(args.n)
    with tempfile.TemporaryDirectory() as tmp:
        libraries = {}
        for label, sources in ((args.against, then), ("this tree", now)):
            folder = Path(tmp) / label.replace("/", "_").replace(" ", "_")
            folder.mkdir()
            libraries[label] = build(sources, folder, "kernel")
        times: dict[str, list[float]] = {label: [] for label in libraries}
        values = {}
        for _ in range(args.repeats):  # alternating, so that load hits both alike
            for label, library in libraries.items():
                seconds, values[label] = run(library, mofs)
                times[label].append(seconds)
    median = {label: statistics.median(t) / len(mofs) * 1e3 for label, t in times.items()}
    print(f"{len(mofs)} core-mof structures, 2,048 positions each, Lennard-Jones + Coulomb, "
          f"one core, median of {args.repeats} runs (CPU ms per structure):")  # fmt: skip
    for label, ms in median.items():
        print(f"  {label:>12s}: {ms:6.2f} ms")
    print(f"  ratio {args.against} / this tree: {median[args.against] / median['this tree']:.2f}x")
    before, after = values[args.against], values["this tree"]
    diff = {name: np.abs(after[name] - before[name]) for name in after}
    changed = np.any([d > 1e-3 for d in diff.values()], axis=0)
    print(f"descriptors differing by more than 1e-3: {int(changed.sum())} of {len(mofs)} "
          "structures; largest difference per descriptor:")  # fmt: skip
    for name, d in diff.items():
        print(f"  {name:42s} {d.max():.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
