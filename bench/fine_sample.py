"""The charged force-field descriptors from 6,144 sample points (``…_6144_points``,
``mofsieve.descriptors.energy_grid``) next to the 2,048-point ones: sampling error, cost per
CIF and gain for boosted trees on validation.

    .venv/bin/python bench/fine_sample.py --graphs SHARDS/ [--n 300] [--repeats 3]

``SHARDS/`` must hold the 33 global features of the shipped models: the earlier 28 and the 5
``…_6144_points`` ones (models/README.md has the command).

Sampling error: on the first ``--errors`` shared CIFs with a 0.15 bar label (the set
``tests/test_energy_grid.py`` holds to a ratio below 0.7; all have a charge on every atom), the three
charged landscape descriptors (log10 K_H, Boltzmann and lowest energy) from 2,048 and from
6,144 points against the same from 49,152 points: the mean absolute errors and their ratio.

Cost and gain: the 28 global features against the 28 + the 5, as ``bench/_descriptor_sets.py``
measures them (one sample of 6,144 points gives both the 2,048- and the 6,144-point numbers).
"""

from __future__ import annotations

import csv
import sys
from dataclasses import replace

import numpy as np
from _descriptor_sets import SHARED, arguments, parsed_cifs, run

from mofsieve.descriptors import FAST_DESCRIPTORS, compute_descriptors
from mofsieve.descriptors.energy_grid import (
    CHARGED_DESCRIPTORS,
    DEFAULT_ENERGY,
    FINE_CHARGED_DESCRIPTORS,
    FINE_SUFFIX,
    LJ_DESCRIPTORS,
)

SHIPPED = (*FAST_DESCRIPTORS, *LJ_DESCRIPTORS, *CHARGED_DESCRIPTORS)  # the 28
SETS = {"28 (shipped)": SHIPPED, "33 (+ the 5)": (*SHIPPED, *FINE_CHARGED_DESCRIPTORS)}
REFERENCE_POINTS = 49152


def sampling_error(n: int) -> None:
    names = list(CHARGED_DESCRIPTORS[:3])
    reference = replace(DEFAULT_ENERGY, points=REFERENCE_POINTS)
    with open(SHARED / "labels.csv", newline="") as fh:
        labelled = {r["mof_id"] for r in csv.DictReader(fh) if r["co2_uptake_mol_per_kg_298K_0.15bar"]}  # fmt: skip
    charged = parsed_cifs(n, lambda mof, crystal: mof in labelled and np.isfinite(crystal.charge).all())  # fmt: skip
    errors = []
    for c in charged:
        args = (c.atomic_number, c.frac_coords, c.lattice)
        want = compute_descriptors(names, *args, charges=c.charge, energy_settings=reference)
        got = compute_descriptors([*names, *(m + FINE_SUFFIX for m in names)], *args,
                                  charges=c.charge)  # fmt: skip
        errors.append(np.abs(got.reshape(2, -1) - want))
    mean = np.mean(errors, axis=0)
    print(f"sampling error against {REFERENCE_POINTS} points, {len(charged)} labelled charged CIFs (mean |error|):")  # fmt: skip
    for j, name in enumerate(names):
        print(f"  {name:<40} 2,048 points {mean[0, j]:.3f}, 6,144 points {mean[1, j]:.3f}; ratio {mean[1, j] / mean[0, j]:.3f}")  # fmt: skip


def main() -> int:
    parser = arguments(__doc__.splitlines()[0], "shards with the 33 global features")
    parser.add_argument("--errors", type=int, default=40)
    return run(SETS, parser.parse_args(), before=lambda args: sampling_error(args.errors))


if __name__ == "__main__":
    sys.exit(main())
