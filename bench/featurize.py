"""Featurization speed: the CGCNN reference procedure vs `mofsieve featurize`, side by side.

Both run single-core on the same CIFs in one process, alternating per CIF so that machine
load hits both alike. (a) is the procedure published with CGCNN (Xie & Grossman), written
here from its description: pymatgen parses the CIF, ``get_all_neighbors(8)``, each atom's
list sorted by distance and cut at 12, then the Gaussian expansion of the distances
(0–8 Å, step 0.2, width 0.2). (b) is mofsieve's per-CIF path (gemmi parse, pymatgen compiled
pair search, vectorised top-12) up to the arrays it stores. The run also checks that both
give the same multiset of 12 neighbour distances for every atom (to 1e-4 Å).

    python bench/featurize.py [--n 300] [--source ../shared/data/core2019-co2/cifs.tar.xz]

Without the shared data it uses the first CIFs of the PyPI package core-mof.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from mofsieve.featurize import featurize_cif
from mofsieve.manifest import iter_archive, package_archive
from mofsieve.store import FeaturizationParams
from mofsieve.structures import StructureError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "core2019-co2" / "cifs.tar.xz"


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="number of CIFs (default 300)")
    parser.add_argument("--source", type=Path, help="tar archive of CIFs")
    args = parser.parse_args()
    source = args.source or (SHARED if SHARED.exists() else package_archive("core-mof:2019-ASR"))
    params = FeaturizationParams()
    ref_times, our_times, agree, mismatched, skipped = [], [], 0, [], 0
    for name, data in iter_archive(source):
        if len(ref_times) == args.n:
            break
        text = data.decode("utf-8", errors="replace")
        t0 = time.perf_counter()
        try:
            graph = featurize_cif(name, name, data, params)
        except StructureError:
            skipped += 1  # rejected by mofsieve's error policy: not a like-for-like timing
            continue
        t1 = time.perf_counter()
        crystal, reference_dist, _ = cgcnn_reference(text)
        t2 = time.perf_counter()
        our_times.append(t1 - t0)
        ref_times.append(t2 - t1)
        if same_neighbours(crystal, reference_dist, graph):
            agree += 1
        else:
            mismatched.append(name)
    n = len(ref_times)
    print(f"source: {source}")
    print(f"CIFs timed: {n} (skipped {skipped} that mofsieve rejects)")
    print(f"{'':28s}{'median ms':>12s}{'mean ms':>12s}{'total s':>10s}")
    for label, times in (
        ("CGCNN reference (pymatgen)", ref_times),
        ("mofsieve featurize", our_times),
    ):
        print(
            f"{label:28s}{1000 * statistics.median(times):12.2f}"
            f"{1000 * statistics.mean(times):12.2f}{sum(times):10.2f}"
        )
    print(
        f"speed-up, median per CIF: {statistics.median(ref_times) / statistics.median(our_times):.1f}x"
    )
    print(f"speed-up, total (mean):   {sum(ref_times) / sum(our_times):.1f}x")
    print(f"identical 12-NN distance multisets (1e-4 Å): {agree}/{n}")
    for name in mismatched[:10]:
        print(f"  differs: {name}")


if __name__ == "__main__":
    main()
