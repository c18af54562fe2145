"""The accessible-volume and pore-filling descriptors (``mofsieve.descriptors.energy_grid``):
what they add to a CIF's featurization and what they give boosted trees on validation.

    .venv/bin/python bench/pore_filling.py --graphs SHARDS/ [--n 300] [--repeats 3]

``SHARDS/`` must hold the 28 global features of 0.15 bar v4 and 16 bar v6 (featurized as
models/README.md says for those versions).

The 22 global features of the earlier models (12 cell and pore + 10 force-field) against the
same with the 6 new ones added: cost per CIF and gain for trees on validation, as
``bench/_descriptor_sets.py`` measures them.
"""

from __future__ import annotations

import sys

from _descriptor_sets import arguments, run

from mofsieve.descriptors import FAST_DESCRIPTORS
from mofsieve.descriptors.energy_grid import CHARGED_DESCRIPTORS, LJ_DESCRIPTORS

NEW = (
    "co2_lj_accessible_fraction",
    "co2_lj_accessible_volume_cm3_g",
    "co2_lj_pore_filling_0.15bar_mol_kg",
    "co2_lj_pore_filling_16bar_mol_kg",
    "co2_lj_coulomb_pore_filling_0.15bar_mol_kg",
    "co2_lj_coulomb_pore_filling_16bar_mol_kg",
)
EARLIER = (
    *FAST_DESCRIPTORS,
    *(n for n in LJ_DESCRIPTORS if n not in NEW),
    *(n for n in CHARGED_DESCRIPTORS if n not in NEW),
)
SETS = {"22 (earlier)": EARLIER, "28 (+ the 6)": (*EARLIER, *NEW)}


def main() -> int:
    parser = arguments(__doc__.splitlines()[0], "shards with the 28 global features")
    return run(SETS, parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
