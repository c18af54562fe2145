"""Duplicate frameworks in a CIF collection: what the framework key costs, how many MOFs it
groups, and how its decisions compare with a full structure match.

Every CIF is featurized as ``mofsieve featurize`` does (occupancy kept); the framework key
(:mod:`mofsieve.duplicates`) is timed on its own (CPU time of this thread), then the MOFs are
grouped in ``mof_id`` order (a stand-in for a ranking) and the largest groups printed.

``--check N`` then judges N random (duplicate, leader) pairs the key merged and N random pairs
it kept apart although formula and bond graph agree, with pymatgen's ``StructureMatcher`` on
the non-hydrogen atoms (``ltol=0.2, stol=0.3, angle_tol=5``, no rescaling, no supercells; H
positions are often placed or refined differently in two entries of one framework). That
matcher allows cells 20 % apart, so "kept apart, matcher says same" is mostly the key's
tighter 2 % tolerance at work; "merged, matcher says different" is the number to watch.

    python bench/duplicates.py [--source core-mof:2019-ASR | ARCHIVE] [--check 100] [--n N]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import warnings
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from mofsieve.checks import find_bonds
from mofsieve.duplicates import FrameworkKey, duplicate_of, framework_key, same_framework
from mofsieve.featurize import Limits
from mofsieve.graphs import neighbour_graph
from mofsieve.manifest import iter_archive, package_archive
from mofsieve.structures import StructureError, parse_cif


def featurized(source: str, limit: int | None):
    archive = package_archive(source) if source.startswith("core-mof:") else Path(source)
    for i, (name, data) in enumerate(iter_archive(archive)):
        if limit is not None and i >= limit:
            return
        try:
            crystal = parse_cif(data, max_atoms=Limits.max_atoms, partial_occupancy="keep")
        except StructureError:
            continue
        graph = neighbour_graph(crystal.frac_coords, crystal.lattice)
        if len(graph.dist) == 0 or graph.dist.min() < Limits.min_distance:
            continue
        yield Path(name).stem, crystal, graph


def structure(crystal):
    from pymatgen.core import Lattice, Structure

    heavy = crystal.atomic_number != 1
    return Structure(Lattice(crystal.lattice), crystal.atomic_number[heavy].tolist(),
                     crystal.frac_coords[heavy])  # fmt: skip


def check(pairs, crystals, label: str) -> None:
    from pymatgen.analysis.structure_matcher import StructureMatcher

    matcher = StructureMatcher(ltol=0.2, stol=0.3, angle_tol=5, primitive_cell=False,
                               scale=False, attempt_supercell=False)  # fmt: skip
    verdicts = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for a, b in pairs:
            verdicts.append(matcher.fit(structure(crystals[a]), structure(crystals[b])))
    print(f"{label}: {sum(verdicts)} of {len(pairs)} the same structure by StructureMatcher")
    for (a, b), same in zip(pairs, verdicts, strict=True):
        if same == (label.startswith("kept")):
            print(f"    {a} / {b}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", default="core-mof:2019-ASR")
    parser.add_argument("--n", type=int, help="only the first N CIFs")
    parser.add_argument("--check", type=int, default=0, help="pairs to judge by StructureMatcher")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    keys: dict[str, FrameworkKey] = {}
    crystals = {}
    seconds = []
    for mof_id, crystal, g in featurized(args.source, args.n):
        start = time.process_time()
        bonds = find_bonds(crystal.atomic_number, g.src, g.dst, g.dist, g.image)
        bonded = time.process_time()
        keys[mof_id] = framework_key(mof_id, crystal.atomic_number, crystal.frac_coords,
                                     crystal.lattice, bonds.a, bonds.b)  # fmt: skip
        seconds.append((bonded - start, time.process_time() - bonded))
        if args.check:
            crystals[mof_id] = crystal
    bond_s, key_s = zip(*seconds, strict=True)
    print(f"{len(keys)} structures; framework key: median {1000 * statistics.median(key_s):.2f} "
          f"ms, mean {1000 * statistics.mean(key_s):.2f} ms CPU (bonds, shared with the "
          f"structure checks: median {1000 * statistics.median(bond_s):.2f} ms)")  # fmt: skip

    start = time.perf_counter()
    leader = duplicate_of(sorted(keys), keys)
    members = defaultdict(list)
    for mof_id, lead in leader.items():
        members[lead].append(mof_id)
    sizes = Counter(len(m) + 1 for m in members.values())
    print(f"grouped in {time.perf_counter() - start:.2f} s: {len(leader)} duplicates of "
          f"{len(members)} frameworks ({len(keys) - len(leader)} distinct); group sizes "
          f"{dict(sorted(sizes.items()))}")  # fmt: skip
    for lead, ms in sorted(members.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:12]:
        key = keys[lead]
        print(f"  {len(ms) + 1:3d} × {key.formula:24.24s} cell {np.round(key.cell, 2)} "
              f"{lead}: {', '.join(sorted(ms)[:6])}{' …' if len(ms) > 6 else ''}")  # fmt: skip

    if args.check:
        rng = random.Random(args.seed)
        merged = sorted(leader.items())
        bucket = defaultdict(list)
        for key in keys.values():
            bucket[(key.formula, key.bond_graph)].append(key)
        apart = sorted(
            (a.mof_id, b.mof_id)
            for ks in bucket.values() for i, a in enumerate(ks) for b in ks[i + 1 :]
            if not same_framework(a, b)
        )  # fmt: skip
        check(rng.sample(merged, min(args.check, len(merged))), crystals, "merged")
        check(rng.sample(apart, min(args.check, len(apart))), crystals, "kept apart")
    return 0


if __name__ == "__main__":
    sys.exit(main())
