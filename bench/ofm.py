"""OCrystalNet's extra featurization cost per CIF: the graph alone vs the graph with the
optional columns (reverse edges and the OFM's neighbour-orbital sums), side by side.

Single core, one process, alternating per CIF so that machine load hits both alike; times
are CPU times of the process (``time.process_time``: on a shared machine other processes'
load inflates wall time, not these), and the load average is printed with them. Each
CIF is featurized (a) as AE-CGCNN models need it (parse, 12-NN graph) and (b) with
``--columns reverse_edges,orbital_neighbour_sum`` (adds freud's periodic Voronoi cells,
face solid angles and the edge union); the extra is (b) − (a), per CIF. Also prints the
share of atoms whose solid angles add up to 4π (1e-4 sr) and the edges added by the union.

    python bench/ofm.py [--n 300] [--source ../shared/data/core2019-co2/cifs.tar.xz]

Without the shared data it uses the first CIFs of the PyPI package core-mof.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, freud's thread pool included

import numpy as np  # noqa: E402

from mofsieve.featurize import featurize_cif  # noqa: E402
from mofsieve.graph_columns import COLUMNS  # noqa: E402
from mofsieve.manifest import iter_archive, package_archive  # noqa: E402
from mofsieve.ofm import voronoi_faces  # noqa: E402
from mofsieve.store import FeaturizationParams  # noqa: E402
from mofsieve.structures import StructureError  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "core2019-co2" / "cifs.tar.xz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--source", type=Path, default=SHARED if SHARED.is_file() else None)
    args = parser.parse_args()
    import freud

    freud.parallel.set_num_threads(1)
    archive = args.source or package_archive("core-mof:2019-ASR")
    plain, with_columns = FeaturizationParams(), FeaturizationParams(columns=COLUMNS)
    featurize_cif("warm-up", "", next(iter_archive(archive))[1], with_columns)  # imports
    t_graph, t_full, atoms, added, knn, full_sphere, n_atoms = [], [], [], 0, 0, 0, 0
    for name, data in iter_archive(archive):
        try:
            t0 = time.process_time()
            featurize_cif(name, name, data, plain)
            t1 = time.process_time()
            graph = featurize_cif(name, name, data, with_columns)
            t2 = time.process_time()
        except StructureError:
            continue
        t_graph.append(t1 - t0)
        t_full.append(t2 - t1)
        atoms.append(graph.n_atoms)
        added += len(graph.extra_edge_src)
        knn += len(graph.edge_src)
        faces = voronoi_faces(graph.frac_coords, graph.lattice)
        total = np.bincount(faces.centre, weights=faces.solid_angle, minlength=graph.n_atoms)
        full_sphere += int((np.abs(total - 4 * np.pi) <= 1e-4).sum())
        n_atoms += graph.n_atoms
        if len(t_graph) == args.n:
            break
    g, f = np.array(t_graph) * 1e3, np.array(t_full) * 1e3
    extra = f - g
    print(f"{len(g)} CIFs from {archive.name}, {int(np.median(atoms))} atoms median "
          f"({min(atoms)}–{max(atoms)}), one core; load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"{'CPU ms per CIF':28s} {'median':>8s} {'mean':>8s} {'p90':>8s} {'max':>8s}")
    for label, t in (("graph only (AE-CGCNN)", g), ("graph + OCrystalNet columns", f),
                     ("extra for OCrystalNet", extra)):  # fmt: skip
        print(f"{label:28s} {np.median(t):8.1f} {t.mean():8.1f} {np.percentile(t, 90):8.1f} "
              f"{t.max():8.1f}")  # fmt: skip
    print(
        f"ratio (median): {np.median(f) / np.median(g):.1f}x; atoms with Σθ = 4π ± 1e-4 sr: "
        f"{full_sphere}/{n_atoms}; edges added by the union: {added / knn:.1%} of {knn}"
    )


if __name__ == "__main__":
    main()
