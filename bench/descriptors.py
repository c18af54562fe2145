"""Time per CIF and agreement with CoRE MOF 2019's published Zeo++ table, side by side for
the cheap descriptors, the fast geometric pore descriptors (no Zeo++), the fast default Zeo++
setting, and the high-accuracy one (Zeo++ -ha, as CoRE MOF computed it).

    .venv/bin/python bench/descriptors.py [--fast-n 300] [--n 50] [--accurate-n 10] [--seed 0]

Takes a seeded random sample of structures from the ``core-mof`` package (2019-ASR), streamed
with ``mofsieve.manifest.iter_archive`` and parsed with ``mofsieve.structures.parse_cif`` (not
timed), and times ``compute_descriptors`` (one call per CIF) for: the cheap descriptors and
``FAST_DESCRIPTORS`` on ``--fast-n`` CIFs; the fast Zeo++ setting without and with lcd/pld
(the -res step dominates) on the first ``--n`` of them; and the accurate setting on the
``--accurate-n`` smallest of those (seconds to minutes per CIF, growing faster than linearly
with the atom count). Each CIF gets the setting's timeout; timed-out or failed CIFs are
counted, their time included, and left out of the agreement.

Wall time is per call; CPU time is this thread's (``time.thread_time``), which is what the
in-process settings cost on an otherwise idle core when other jobs share the machine. It
misses the Zeo++ settings' child processes, so only wall time counts for those.

The geometric surface area counts non-accessible pockets (``mofsieve.descriptors.geometric``),
so it is also compared with CoRE's ASA + NASA. The fast geometric set runs twice: with the
compiled kernels (``mofsieve.descriptors.native``, as featurize runs it) and with the numpy
implementation (kernels switched off), and the run says on how many CIFs all values agree
exactly.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import time

import numpy as np

from mofsieve.descriptors import (
    ACCURATE_ZEO,
    CHEAP_DESCRIPTORS,
    FAST_DESCRIPTORS,
    FAST_ZEO,
    ZEO_DESCRIPTORS,
    DescriptorError,
    ZeoSettings,
    compute_descriptors,
    native,
)
from mofsieve.manifest import iter_archive, mof_id_of, package_archive
from mofsieve.structures import StructureError, parse_cif

DATASET = "2019-ASR"
# (our descriptor, the core-mof column holding the same quantity). "cm3_g" is mislabelled
# there: it equals ASA_m2_cm3 / ASA_m2_g and Zeo++'s "Density", i.e. g/cm³. The "+NASA"
# columns are derived in main().
COMPARISONS = (
    ("density", "cm3_g"),
    ("lcd", "LCD"),
    ("pld", "PLD"),
    ("void_fraction", "AV_VF"),
    ("asa_m2_cm3", "ASA_m2_cm3"),
    ("asa_m2_g", "ASA_m2_g"),
    ("void_fraction_geometric", "AV_VF"),
    ("surface_area_m2_cm3_geometric", "ASA_m2_cm3"),
    ("surface_area_m2_cm3_geometric", "ASA+NASA_m2_cm3"),
    ("surface_area_m2_g_geometric", "ASA_m2_g"),
    ("surface_area_m2_g_geometric", "ASA+NASA_m2_g"),
    ("largest_sphere_diameter_geometric", "LCD"),
)


def sample_structures(
    count: int, seed: int, names: list[str]
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """name → (atomic numbers, fractional coordinates, lattice) for a seeded random sample,
    in sample order, read in one pass over the archive."""
    wanted = random.Random(seed).sample(sorted(names), count)
    found: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for member, data in iter_archive(package_archive(f"core-mof:{DATASET}")):
        name = mof_id_of(member)
        if name in wanted:
            try:
                crystal = parse_cif(data)
            except StructureError as exc:
                print(f"skipped {name}: {exc}")
                continue
            found[name] = (
                np.asarray(crystal.atomic_number, dtype=np.int64),
                crystal.frac_coords,
                crystal.lattice,
            )
    return {name: found[name] for name in wanted if name in found}


def run(
    label: str,
    settings: ZeoSettings,
    names: tuple[str, ...],
    structures: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    published,
) -> dict[str, np.ndarray]:
    """Times ``compute_descriptors`` per CIF and prints the agreement; returns the values."""
    wall: list[float] = []
    cpu: list[float] = []
    ours: list[np.ndarray] = []
    theirs: list[np.ndarray] = []
    failures: list[str] = []
    computed: dict[str, np.ndarray] = {}
    compared = [(key, column) for key, column in COMPARISONS if key in names]
    for name, (numbers, frac, lattice) in structures.items():
        start, start_cpu = time.perf_counter(), time.thread_time()
        try:
            values = compute_descriptors(names, numbers, frac, lattice, zeo_settings=settings)
        except DescriptorError as exc:
            failures.append(f"{name} ({len(numbers)} atoms): {exc}")
            continue
        finally:
            wall.append(time.perf_counter() - start)
            cpu.append(time.thread_time() - start_cpu)
        computed[name] = values
        ours.append(values[[names.index(key) for key, _ in compared]])
        theirs.append(published.loc[name, [column for _, column in compared]].to_numpy(float))

    times, cpu_times = np.array(wall), np.array(cpu)
    atoms = np.array([len(s[0]) for s in structures.values()])
    print(f"\n== {label}: {', '.join(names)}")
    if any(key in ZEO_DESCRIPTORS for key in names):
        print(f"   {settings}")
    print(
        f"{len(times)} CIFs ({np.median(atoms):.0f} atoms median, {atoms.min()}-{atoms.max()}): "
        f"wall median {np.median(times) * 1e3:.1f} ms, mean {times.mean() * 1e3:.1f} ms, "
        f"p90 {np.percentile(times, 90) * 1e3:.1f} ms, max {times.max():.2f} s per CIF; "
        f"CPU (this thread) median {np.median(cpu_times) * 1e3:.1f} ms, "
        f"mean {cpu_times.mean() * 1e3:.1f} ms, max {cpu_times.max():.2f} s; "
        f"failed/timed out: {len(failures)}"
    )
    for failure in failures:
        print(f"  failed: {failure}")
    if not ours or not compared:
        return computed
    mine, table = np.array(ours), np.array(theirs)
    print(f"agreement with core-mof {DATASET} on {len(mine)} CIFs:")
    print(
        f"  {'descriptor':34s} {'vs column':16s} {'MAE':>9s} {'median AE':>9s} {'max AE':>9s} "
        f"{'Pearson r':>9s}"
    )
    for index, (key, column) in enumerate(compared):
        error = np.abs(mine[:, index] - table[:, index])
        r = np.corrcoef(mine[:, index], table[:, index])[0, 1]
        print(
            f"  {key:34s} {column:16s} {error.mean():9.4g} {np.median(error):9.4g} "
            f"{error.max():9.4g} {r:9.4f}"
        )
    return computed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--fast-n", type=int, default=300, help="CIFs for the cheap and geometric sets"
    )
    parser.add_argument("--n", type=int, default=50, help="of those, CIFs for the Zeo++ runs")
    parser.add_argument("--accurate-n", type=int, default=10, help="smallest Zeo++ CIFs for -ha")
    parser.add_argument("--accurate-timeout", type=float, default=60.0, help="s per CIF")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import CoRE_MOF

    published = CoRE_MOF.get_properties(DATASET).set_index("filename")
    for unit in ("m2_cm3", "m2_g"):
        published[f"ASA+NASA_{unit}"] = published[f"ASA_{unit}"] + published[f"NASA_{unit}"]
    structures = sample_structures(max(args.fast_n, args.n), args.seed, list(published.index))
    fast_sample = dict(list(structures.items())[: args.fast_n])
    zeo_sample = dict(list(structures.items())[: args.n])
    run("cheap only", FAST_ZEO, CHEAP_DESCRIPTORS, fast_sample, published)
    compiled = run(
        "fast geometric (FAST_DESCRIPTORS, no Zeo++): compiled kernels",
        FAST_ZEO,
        FAST_DESCRIPTORS,
        fast_sample,
        published,
    )
    with native.switched_off():
        reference = run(
            "fast geometric, the same with the numpy implementation (kernels off)",
            FAST_ZEO,
            FAST_DESCRIPTORS,
            fast_sample,
            published,
        )
    same = sum(np.array_equal(compiled[name], reference.get(name)) for name in compiled)
    print(
        f"\ncompiled == numpy (all {len(FAST_DESCRIPTORS)} values, float32): {same}/{len(compiled)}"
    )
    if not zeo_sample:
        return
    pore_only = tuple(key for key in ZEO_DESCRIPTORS if key not in ("lcd", "pld"))
    zeo_all = CHEAP_DESCRIPTORS + ZEO_DESCRIPTORS
    run("fast geometric, on the Zeo++ sample", FAST_ZEO, FAST_DESCRIPTORS, zeo_sample, published)
    run(
        "Zeo++ fast, without lcd/pld",
        FAST_ZEO,
        CHEAP_DESCRIPTORS + pore_only,
        zeo_sample,
        published,
    )
    run("Zeo++ fast (default), all", FAST_ZEO, zeo_all, zeo_sample, published)
    if args.accurate_n:
        smallest = sorted(zeo_sample, key=lambda name: len(zeo_sample[name][0]))
        subset = {name: zeo_sample[name] for name in smallest[: args.accurate_n]}
        accurate = dataclasses.replace(ACCURATE_ZEO, timeout_s=args.accurate_timeout)
        run("fast geometric, on the accurate subset", FAST_ZEO, FAST_DESCRIPTORS, subset, published)
        run(
            "Zeo++ fast (default), all, on the accurate subset",
            FAST_ZEO,
            zeo_all,
            subset,
            published,
        )
        run("Zeo++ accurate (-ha, as CoRE MOF), all", accurate, zeo_all, subset, published)


if __name__ == "__main__":
    main()
