"""How often each structure check fires on real CIFs, and ten flagged examples per check.

For each source (the shared CoRE MOF 2019 copy with partial charges, when present, and the
core-mof package's 2019-ASR set) every CIF is featurized as ``mofsieve featurize`` does, with
``partial_occupancy="keep"`` so that the occupancy check is counted rather than rejected.
Printed: per check, how many structures it flags; the same bond checks with a 0.3 and a
0.5 Å bond tolerance beside the 0.4 Å in use (the criterion's choice); the finite components
recognised as charge-balancing ions; then, for ten structures per check drawn with a fixed
seed, the check's detail and the evidence to judge it by: for ``coordination`` the bonded
non-metal neighbours of the worst atom, for the isolated checks the distance from the stray
to the nearest other atom, relative to the bond limit.

    python bench/checks.py [--jobs 1] [--source ARCHIVE ...] [--examples 10]
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import time
from collections import Counter
from pathlib import Path

import numpy as np
from ase.data import chemical_symbols, covalent_radii

from mofsieve import checks
from mofsieve.featurize import Limits, featurize_cif
from mofsieve.manifest import iter_archive, package_archive
from mofsieve.store import CrystalGraph, FeaturizationParams
from mofsieve.structures import StructureError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "core2019-co2" / "cifs.tar.xz"
# (non-metal, metal) bond tolerances compared with the ones in use
TOLERANCES = ((0.3, 0.3), (0.5, 0.5), (0.4, 0.5), (0.4, 0.6))
LIMITS = Limits(partial_occupancy="keep")


def _graph_checks(graph: CrystalGraph, tolerance: tuple[float, float]) -> set[str]:
    found = checks.bond_checks(graph.atomic_number, graph.charge, graph.edge_src,
                               graph.edge_dst, graph.edge_dist, graph.edge_image, *tolerance)  # fmt: skip
    return {c for c, _ in found}


def _ions_and_framework(graph: CrystalGraph) -> tuple[list[str], bool]:
    z = graph.atomic_number.astype(np.int64)
    bonds = checks.find_bonds(z, graph.edge_src, graph.edge_dst, graph.edge_dist, graph.edge_image)
    finite, periodic = checks.finite_components(z, graph.charge.astype(np.float64), bonds)
    return [f.formula for f in finite if f.ion], periodic


def survey_one(item: tuple[str, bytes]) -> dict | None:
    """One CIF's findings at the tolerance in use, and at the others."""
    name, data = item
    found: list[tuple[str, str]] = []
    try:
        graph = featurize_cif(name, name, data, FeaturizationParams(), LIMITS, checks=found)
    except StructureError:
        return None
    ions, periodic = _ions_and_framework(graph)
    return {
        "mof_id": Path(name).stem,
        "found": found,
        "other": {tol: _graph_checks(graph, tol) for tol in TOLERANCES},
        "ions": ions,
        "periodic": periodic,
        "data": data if found else b"",
    }


def evidence(mof_id: str, data: bytes, check: str) -> str:
    """What to judge one flagged structure by (see the module docstring)."""
    graph = featurize_cif(mof_id, mof_id, data, FeaturizationParams(), LIMITS)
    z = graph.atomic_number.astype(np.int64)
    src, dst = graph.edge_src.astype(np.int64), graph.edge_dst.astype(np.int64)
    metal = checks.METAL[z[src]] | checks.METAL[z[dst]]
    slack = np.where(metal, checks.METAL_BOND_TOLERANCE, checks.BOND_TOLERANCE)
    limit = covalent_radii[z[src]] + covalent_radii[z[dst]] + slack
    bonded = graph.edge_dist <= limit
    if check == checks.COORDINATION:
        non_metal = bonded & ~checks.METAL[z[src]]
        counts = np.bincount(dst[non_metal], minlength=len(z))
        excess = np.where(z == 6, counts - 4, np.where(z == 1, counts - 1, -9))
        worst = int(np.argmax(excess))
        mine = np.flatnonzero(non_metal & (dst == worst))
        mine = mine[np.argsort(graph.edge_dist[mine])]
        listing = ", ".join(f"{chemical_symbols[z[src[e]]]} {graph.edge_dist[e]:.2f}" for e in mine)
        return f"{chemical_symbols[z[worst]]}{worst + 1} bonded to {listing}"
    if check in (checks.ISOLATED_ATOM, checks.ISOLATED_MOLECULE):
        bonds = checks.find_bonds(z, src, dst, graph.edge_dist, graph.edge_image)
        finite, _ = checks.finite_components(z, graph.charge.astype(np.float64), bonds)
        lone = check == checks.ISOLATED_ATOM
        stray = np.zeros(len(z), dtype=bool)
        for f in finite:
            if not f.ion and (f.n_atoms == 1) == lone:
                stray[f.atoms] = True
        labels, _ = checks.periodic_components(len(z), bonds)
        across = stray[dst] & (labels[src] != labels[dst])
        if not across.any():
            return "no other atom among its 12 nearest neighbours"
        e = np.flatnonzero(across)[np.argmin((graph.edge_dist - limit)[across])]
        return (f"nearest other atom {chemical_symbols[z[dst[e]]]}–{chemical_symbols[z[src[e]]]} "
                f"{graph.edge_dist[e]:.2f} Å (bond limit {limit[e]:.2f} Å)")  # fmt: skip
    return ""


def survey(source: Path, jobs: int, n_examples: int) -> None:
    start = time.perf_counter()
    items = iter_archive(source)
    if jobs > 1:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            results = list(pool.imap(survey_one, items, chunksize=16))
    else:
        results = list(map(survey_one, items))
    kept = [r for r in results if r is not None]
    print(f"\n## {source}")
    print(f"{len(results)} CIFs, {len(kept)} featurized ({time.perf_counter() - start:.0f} s)")
    by_check: dict[str, list[dict]] = {c: [] for c in checks.CHECKS}
    for r in kept:
        for check in dict(r["found"]):
            by_check.setdefault(check, []).append(r)
    bond_named = (checks.ISOLATED_ATOM, checks.ISOLATED_MOLECULE, checks.COORDINATION)
    header = "".join(f"{f'{t}/{m} Å':>12s}" for t, m in TOLERANCES)
    print(f"{'check':20s}{'structures':>12s}{header}   (bond tolerance in use, non-metal/metal: "
          f"{checks.BOND_TOLERANCE}/{checks.METAL_BOND_TOLERANCE} Å)")  # fmt: skip
    for check, flagged in by_check.items():
        others = "".join(
            f"{sum(check in r['other'][t] for r in kept):12d}" if check in bond_named else " " * 12
            for t in TOLERANCES
        )
        print(f"{check:20s}{len(flagged):12d}{others}")
    print(f"with any warning: {sum(bool(r['found']) for r in kept)}; no periodic framework "
          f"(largest components taken): {sum(not r['periodic'] for r in kept)}")  # fmt: skip
    ions = Counter(f for r in kept for f in set(r["ions"]))
    print(
        f"structures with ions recognised (not warned): {sum(bool(r['ions']) for r in kept)}; "
        f"most common: {', '.join(f'{f} {n}' for f, n in ions.most_common(12))}"
    )
    rng = random.Random(12)
    for check, flagged in by_check.items():
        if not flagged:
            continue
        print(f"\n{check}: {min(n_examples, len(flagged))} of {len(flagged)}")
        for r in sorted(
            rng.sample(flagged, min(n_examples, len(flagged))), key=lambda r: r["mof_id"]
        ):
            detail = dict(r["found"])[check]
            print(f"  {r['mof_id']}: {detail}\n      {evidence(r['mof_id'], r['data'], check)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, nargs="+", help="tar archives of CIFs")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--examples", type=int, default=10, help="examples shown per check")
    args = parser.parse_args()
    sources = args.source or [
        *([SHARED] if SHARED.exists() else []),
        package_archive("core-mof:2019-ASR"),
    ]
    for source in sources:
        survey(Path(source), args.jobs, args.examples)


if __name__ == "__main__":
    main()
