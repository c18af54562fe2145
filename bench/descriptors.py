"""Seconds per CIF and agreement with CoRE MOF 2019's published Zeo++ table, for the fast
default Zeo++ setting and the high-accuracy one (Zeo++ -ha, as CoRE MOF computed it).

    .venv/bin/python bench/descriptors.py [--n 50] [--accurate-n 10] [--seed 0]

Takes a seeded random sample of N structures from the ``core-mof`` package (2019-ASR),
parses them with pymatgen (not timed) and times ``compute_descriptors`` (one call per CIF,
Zeo++ child process included) for: the cheap descriptors only; the fast Zeo++ setting
without and with lcd/pld (the -res step dominates); and the accurate setting on the
``--accurate-n`` smallest cells of the sample (it costs seconds to minutes per CIF, growing
faster than linearly with the atom count). Each CIF gets the setting's timeout; timed-out or
failed CIFs are counted, their time included, and left out of the agreement.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import tarfile
import time
import warnings
from importlib import resources

import numpy as np

from mofsieve.descriptors import (
    ACCURATE_ZEO,
    CHEAP_DESCRIPTORS,
    DESCRIPTORS,
    FAST_ZEO,
    ZEO_DESCRIPTORS,
    DescriptorError,
    ZeoSettings,
    compute_descriptors,
)

DATASET = "2019-ASR"
# Our descriptor → the core-mof column holding the same quantity. "cm3_g" is mislabelled
# there: it equals ASA_m2_cm3 / ASA_m2_g and Zeo++'s "Density", i.e. g/cm³.
PUBLISHED_COLUMN = {
    "density": "cm3_g",
    "lcd": "LCD",
    "pld": "PLD",
    "void_fraction": "AV_VF",
    "asa_m2_cm3": "ASA_m2_cm3",
    "asa_m2_g": "ASA_m2_g",
}


def sample_cifs(count: int, seed: int) -> dict[str, str]:
    """name → CIF text for a seeded random sample, read in one pass over the archive
    (``CoRE_MOF.get_CIF_structure_data`` rescans the whole .tar.xz per call)."""
    import CoRE_MOF
    import CoRE_MOF.data

    names = sorted(CoRE_MOF.list_structures(DATASET))
    wanted = set(random.Random(seed).sample(names, count))
    texts: dict[str, str] = {}
    archive = resources.files(CoRE_MOF.data) / f"{DATASET}.tar.xz"
    with tarfile.open(str(archive)) as tar:
        for member in tar:
            name = member.name.rsplit("/", 1)[-1].removesuffix(".cif")
            if member.isfile() and name in wanted:
                texts[name] = tar.extractfile(member).read().decode()
    return texts


def arrays_of(cif_text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from pymatgen.core import Structure

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        structure = Structure.from_str(cif_text, fmt="cif")
    return (
        np.array(structure.atomic_numbers),
        structure.frac_coords,
        structure.lattice.matrix,
    )


def run(
    label: str,
    settings: ZeoSettings,
    names: tuple[str, ...],
    structures: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    published,
) -> None:
    seconds: list[float] = []
    ours: list[np.ndarray] = []
    theirs: list[np.ndarray] = []
    failures: list[str] = []
    compared = [key for key in PUBLISHED_COLUMN if key in names]
    for name, (numbers, frac, lattice) in structures.items():
        start = time.perf_counter()
        try:
            values = compute_descriptors(names, numbers, frac, lattice, zeo_settings=settings)
        except DescriptorError as exc:
            seconds.append(time.perf_counter() - start)
            failures.append(f"{name} ({len(numbers)} atoms): {exc}")
            continue
        seconds.append(time.perf_counter() - start)
        ours.append(values[[names.index(key) for key in compared]])
        theirs.append(
            published.loc[name, [PUBLISHED_COLUMN[key] for key in compared]].to_numpy(float)
        )

    times = np.array(seconds)
    atoms = np.array([len(s[0]) for s in structures.values()])
    print(f"\n== {label}: {', '.join(names)}")
    print(f"   {settings}")
    print(
        f"{len(times)} CIFs ({np.median(atoms):.0f} atoms median, {atoms.min()}-{atoms.max()}): "
        f"median {np.median(times) * 1e3:.0f} ms, mean {times.mean() * 1e3:.0f} ms, "
        f"p90 {np.percentile(times, 90) * 1e3:.0f} ms, max {times.max():.2f} s per CIF; "
        f"failed/timed out: {len(failures)}"
    )
    for failure in failures:
        print(f"  failed: {failure}")
    if not ours:
        return
    mine, table = np.array(ours), np.array(theirs)
    print(f"agreement with core-mof {DATASET} on {len(mine)} CIFs:")
    print(f"  {'descriptor':14s} {'MAE':>9s} {'median AE':>9s} {'max AE':>9s} {'Pearson r':>9s}")
    for column, key in enumerate(compared):
        error = np.abs(mine[:, column] - table[:, column])
        r = np.corrcoef(mine[:, column], table[:, column])[0, 1]
        print(
            f"  {key:14s} {error.mean():9.4g} {np.median(error):9.4g} {error.max():9.4g} {r:9.4f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=50, help="CIFs in the sample")
    parser.add_argument(
        "--accurate-n", type=int, default=10, help="smallest CIFs of the sample for -ha"
    )
    parser.add_argument("--accurate-timeout", type=float, default=60.0, help="s per CIF")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import CoRE_MOF

    published = CoRE_MOF.get_properties(DATASET).set_index("filename")
    texts = sample_cifs(args.n, args.seed)
    structures = {name: arrays_of(text) for name, text in sorted(texts.items())}
    pore_only = tuple(key for key in ZEO_DESCRIPTORS if key not in ("lcd", "pld"))
    run("cheap only", FAST_ZEO, CHEAP_DESCRIPTORS, structures, published)
    run("fast, without lcd/pld", FAST_ZEO, CHEAP_DESCRIPTORS + pore_only, structures, published)
    run("fast (default), all", FAST_ZEO, DESCRIPTORS, structures, published)
    if args.accurate_n:
        smallest = sorted(structures, key=lambda name: len(structures[name][0]))
        subset = {name: structures[name] for name in smallest[: args.accurate_n]}
        accurate = dataclasses.replace(ACCURATE_ZEO, timeout_s=args.accurate_timeout)
        run("fast (default), all, on the accurate subset", FAST_ZEO, DESCRIPTORS, subset, published)
        run("accurate (Zeo++ -ha, as CoRE MOF), all", accurate, DESCRIPTORS, subset, published)


if __name__ == "__main__":
    main()
