"""Force-field descriptors (``mofsieve.descriptors.energy_grid``): what they cost per CIF and
what they add on validation, next to the 12 global descriptors of the shipped models.

    .venv/bin/python bench/ff_descriptors.py [--n 300] [--repeats 3] [--seeds 3]
        [--shards work-data/core2019-desc] [--cache FILE.npz] [--skip-cost] [--skip-gain]

Cost, on the first ``--n`` CIFs of ``../shared/data/core2019-co2/cifs.tar.xz``:

- in process, per CIF: ``compute_descriptors`` of the 12 (``FAST_DESCRIPTORS``), of the
  Lennard-Jones energy descriptors (``LJ_DESCRIPTORS``) and of all energy descriptors
  (``ENERGY_DESCRIPTORS``, the charged ones with the CIFs' partial charges; one sample gives
  them all), CPU time of this thread (the steady figure on a shared machine) and wall time;
  parsing not timed. The 3 smallest CIFs are also computed with the numpy implementation, to
  show the agreement;
- whole ``mofsieve featurize --jobs 1`` processes pinned to one core (start-up, parsing,
  graph, checks, shard writing included) with ``--global-features`` the 12, the 12 + the
  Lennard-Jones ones, the 12 + all, alternating, ``--repeats`` times: ms per CIF, and the
  differences.

Gain, without training a GNN: the energy descriptors of every graph in the shards of
``--shards`` (made with the 12 descriptors: lattice, fractional coordinates, atomic numbers
and charges are read back from them, no CIF parsed), then a small MLP regressor (torch, one
thread, ``--seeds`` seeds averaged; scikit-learn is not installed here) on (a) the 12, (b) the
12 + the Lennard-Jones energy descriptors, (c) the 12 + all energy descriptors, (d) the 12 +
the charged ones only, for the 0.15 bar and the 16 bar uptakes of ``labels.csv``, trained on
each model's ``split.csv`` train split and scored on its validation split (never the test
split): MAE and Spearman side by side. A ridge regression on the same features is printed as
a second, linear proxy. ``--cache`` keeps the computed energy descriptors (recomputed when the
code, the settings or the shards change).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

from mofsieve.descriptors import (
    ENERGY_DESCRIPTORS,
    FAST_DESCRIPTORS,
    compute_descriptors,
    energy_grid,
    energy_native,
)
from mofsieve.descriptors.energy_grid import CHARGED_DESCRIPTORS, DEFAULT_ENERGY, LJ_DESCRIPTORS
from mofsieve.manifest import iter_archive, mof_id_of
from mofsieve.store import ShardReader, shard_paths
from mofsieve.structures import StructureError, parse_cif

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "core2019-co2"
TARGETS = {
    "co2_uptake_mol_per_kg_298K_0.15bar": ROOT / "models" / "co2_298K_0.15bar" / "split.csv",
    "co2_uptake_mol_per_kg_298K_16bar": ROOT / "models" / "co2_298K_16bar" / "split.csv",
}


# --- cost -----------------------------------------------------------------------------------


def first_cifs(source: Path, count: int) -> list[tuple[str, bytes, tuple[np.ndarray, ...]]]:
    """(member name, bytes, parsed arrays) of the first ``count`` CIFs that parse."""
    found = []
    for member, data in iter_archive(source):
        try:
            crystal = parse_cif(data)
        except StructureError:
            continue
        arrays = (np.asarray(crystal.atomic_number, np.int64), crystal.frac_coords,
                  crystal.lattice, crystal.charge)  # fmt: skip
        found.append((member, data, arrays))
        if len(found) == count:
            break
    return found


def _timed(names: tuple[str, ...], arrays: tuple[np.ndarray, ...]) -> tuple[float, float]:
    numbers, frac, lattice, charges = arrays
    start, start_cpu = time.perf_counter(), time.thread_time()
    compute_descriptors(names, numbers, frac, lattice, charges=charges)
    return time.perf_counter() - start, time.thread_time() - start_cpu


def in_process(cifs: list[tuple[str, bytes, tuple[np.ndarray, ...]]]) -> None:
    sets = {
        "12 descriptors (FAST)": FAST_DESCRIPTORS,
        "energy, Lennard-Jones": LJ_DESCRIPTORS,
        "energy, LJ + charged": ENERGY_DESCRIPTORS,
    }
    for names in sets.values():
        _timed(names, cifs[0][2])  # kernels built and loaded before timing
    times: dict[str, list[tuple[float, float]]] = {label: [] for label in sets}
    for _, _, arrays in cifs:
        for label, names in sets.items():
            times[label].append(_timed(names, arrays))
    atoms = np.array([len(arrays[0]) for _, _, arrays in cifs])
    print(
        f"\nin process, {len(cifs)} CIFs ({np.median(atoms):.0f} atoms median, "
        f"{atoms.min()}-{atoms.max()}), ms per CIF; {DEFAULT_ENERGY}"
    )
    print(f"{'':26s}{'CPU median':>11s}{'CPU mean':>9s}{'CPU p90':>8s}{'CPU max':>8s}"
          f"{'CPU total s':>12s}{'wall median':>12s}")  # fmt: skip
    for label, pairs in times.items():
        wall = np.array([w for w, _ in pairs]) * 1e3
        cpu = np.array([c for _, c in pairs]) * 1e3
        print(
            f"{label:26s}{np.median(cpu):11.2f}{cpu.mean():9.2f}{np.percentile(cpu, 90):8.2f}"
            f"{cpu.max():8.1f}{cpu.sum() / 1e3:12.2f}{np.median(wall):12.2f}"
        )
    smallest = sorted(cifs, key=lambda c: len(c[2][0]))[:3]
    worst = 0.0
    for _, _, (numbers, frac, lattice, charges) in smallest:
        compiled = compute_descriptors(ENERGY_DESCRIPTORS, numbers, frac, lattice, charges=charges)
        with energy_native.switched_off():
            reference = compute_descriptors(ENERGY_DESCRIPTORS, numbers, frac, lattice,
                                            charges=charges)  # fmt: skip
        worst = max(worst, float(np.max(np.abs(compiled - reference))))
    print(f"compiled vs numpy energies on the 3 smallest CIFs: max |difference| {worst:.2g}")


def _run_featurize(archive: Path, out: Path, names: tuple[str, ...]) -> tuple[float, float]:
    """(wall s, CPU s) of one whole ``mofsieve featurize --jobs 1`` process on one core."""
    core = min(os.sched_getaffinity(0))
    command = [str(Path(sys.executable).with_name("mofsieve")), "featurize", str(archive),
               "--out", str(out), "--jobs", "1", "--overwrite",
               "--global-features", ",".join(names)]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True,
                   preexec_fn=lambda: os.sched_setaffinity(0, {core}))  # fmt: skip
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def whole_process(cifs: list[tuple[str, bytes, tuple[np.ndarray, ...]]], repeats: int) -> None:
    variants = {"12 descriptors": FAST_DESCRIPTORS,
                "12 + energy, LJ": FAST_DESCRIPTORS + LJ_DESCRIPTORS,
                "12 + energy, LJ + charged": FAST_DESCRIPTORS + ENERGY_DESCRIPTORS}  # fmt: skip
    results: dict[str, list[tuple[float, float]]] = {label: [] for label in variants}
    with tempfile.TemporaryDirectory(prefix="bench-ff-") as folder:
        archive = Path(folder) / "cifs.tar"
        with tarfile.open(archive, "w") as tar:
            for name, data, _ in cifs:
                member = tarfile.TarInfo(Path(name).name)
                member.size = len(data)
                tar.addfile(member, io.BytesIO(data))
        for _ in range(repeats):
            for label, names in variants.items():
                results[label].append(_run_featurize(archive, Path(folder) / "out", names))
    count = len(cifs)
    print(f"\nwhole `mofsieve featurize --jobs 1` processes on one core, {count} CIFs, "
          f"{repeats} runs each (alternating), ms per CIF:")  # fmt: skip
    print(f"{'':26s}{'wall best':>10s}{'wall median':>12s}{'CPU best':>10s}{'CPU median':>11s}")
    for label, runs in results.items():
        wall = [1000 * w / count for w, _ in runs]
        cpu = [1000 * c / count for _, c in runs]
        print(f"{label:26s}{min(wall):10.2f}{statistics.median(wall):12.2f}"
              f"{min(cpu):10.2f}{statistics.median(cpu):11.2f}")  # fmt: skip
    base = np.median([c for _, c in results["12 descriptors"]])
    for label, runs in list(results.items())[1:]:
        more = np.median([c for _, c in runs])
        print(f"{label} adds {1000 * (more - base) / count:.2f} ms CPU per CIF to the whole "
              "process (median runs)")  # fmt: skip


# --- gain -----------------------------------------------------------------------------------


def _shard_fingerprint(paths: list[Path]) -> str:
    digest = hashlib.sha256(repr(DEFAULT_ENERGY).encode())
    digest.update(repr(ENERGY_DESCRIPTORS).encode())
    for source in (energy_grid.__file__, energy_native.SOURCE):  # the code that computes them
        digest.update(Path(source).read_bytes())
    for path in paths:
        stat = path.stat()
        digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def shard_features(folder: Path, cache: Path | None) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(MOF ids, the shards' 12 global features, their energy descriptors) for every graph."""
    paths = shard_paths([folder])
    fingerprint = _shard_fingerprint(paths)
    if cache is not None and cache.is_file():
        stored = np.load(cache, allow_pickle=False)
        if str(stored["fingerprint"]) == fingerprint:
            print(f"energy descriptors read back from {cache}")
            return list(stored["ids"]), stored["base"], stored["energy"]
    ids, base, energy, cpu = [], [], [], []
    for path in paths:
        reader = ShardReader(path, in_memory=True)
        if tuple(reader.params.global_feature_names) != FAST_DESCRIPTORS:
            raise SystemExit(f"{path}: global features {reader.params.global_feature_names}, "
                             f"not the 12 of FAST_DESCRIPTORS")  # fmt: skip
        for graph in reader:
            start = time.thread_time()
            values = compute_descriptors(ENERGY_DESCRIPTORS, graph.atomic_number.astype(np.int64),
                                         graph.frac_coords, graph.lattice,
                                         charges=graph.charge)  # fmt: skip
            cpu.append(time.thread_time() - start)
            ids.append(graph.mof_id)
            base.append(graph.global_features)
            energy.append(values)
        reader.release()
    cpu_ms = np.array(cpu) * 1e3
    print(f"energy descriptors of {len(ids)} shard graphs: CPU median {np.median(cpu_ms):.2f} "
          f"ms, mean {cpu_ms.mean():.2f}, p99 {np.percentile(cpu_ms, 99):.1f}, max "
          f"{cpu_ms.max():.0f} ms, total {cpu_ms.sum() / 1e3:.0f} s")  # fmt: skip
    result = (ids, np.array(base, np.float64), np.array(energy, np.float64))
    if cache is not None:
        np.savez(cache, fingerprint=fingerprint, ids=np.array(ids), base=result[1],
                 energy=result[2])  # fmt: skip
    return result


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _standardise(train: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Clipped to the train split's 0.5–99.5 % range, then scaled by its mean and std."""
    low, high = np.percentile(train, [0.5, 99.5], axis=0)
    train, other = np.clip(train, low, high), np.clip(other, low, high)
    mean, std = train.mean(axis=0), train.std(axis=0) + 1e-12
    return (train - mean) / std, (other - mean) / std


def mlp_predict(
    x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, seed: int
) -> np.ndarray:
    import torch

    torch.manual_seed(seed)
    scale = float(y_train.std())
    xt = torch.tensor(x_train, dtype=torch.float32)
    yt = torch.tensor(y_train / scale, dtype=torch.float32)
    model = torch.nn.Sequential(
        torch.nn.Linear(x_train.shape[1], 128), torch.nn.SiLU(),
        torch.nn.Linear(128, 128), torch.nn.SiLU(),
        torch.nn.Linear(128, 1),
    )  # fmt: skip
    epochs, batch = 300, 128
    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = epochs * ((len(xt) + batch - 1) // batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=2e-3, total_steps=steps)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for index in torch.randperm(len(xt), generator=generator).split(batch):
            optimiser.zero_grad()
            loss = torch.nn.functional.smooth_l1_loss(model(xt[index]).squeeze(1), yt[index])
            loss.backward()
            optimiser.step()
            schedule.step()
    with torch.no_grad():
        return model(torch.tensor(x_val, dtype=torch.float32)).squeeze(1).numpy() * scale


def ridge_predict(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray) -> np.ndarray:
    design = np.hstack([x_train, np.ones((len(x_train), 1))])
    penalty = 1e-2 * len(x_train) * np.eye(design.shape[1])
    penalty[-1, -1] = 0.0
    weights = np.linalg.solve(design.T @ design + penalty, design.T @ y_train)
    return np.hstack([x_val, np.ones((len(x_val), 1))]) @ weights


def gain(ids: list[str], base: np.ndarray, energy: np.ndarray, seeds: int) -> None:
    import torch
    from scipy.stats import spearmanr

    torch.set_num_threads(1)
    row_of = {mof_id: i for i, mof_id in enumerate(ids)}
    labels = {row["mof_id"]: row for row in _read_csv(SHARED / "labels.csv")}
    lj = [ENERGY_DESCRIPTORS.index(n) for n in LJ_DESCRIPTORS]
    charged = [ENERGY_DESCRIPTORS.index(n) for n in CHARGED_DESCRIPTORS]
    missing = np.isnan(energy[:, charged]).any(axis=1)
    if missing.any():
        raise SystemExit(f"{missing.sum()} shard graphs lack charges: the charged set needs them")
    sets = {
        "(a) 12": base,
        "(b) 12 + LJ energy": np.hstack([base, energy[:, lj]]),
        "(c) 12 + LJ + charged": np.hstack([base, energy]),
        "(d) 12 + charged only": np.hstack([base, energy[:, charged]]),
    }
    print(f"\nvalidation-split proxy (MLP, mean of {seeds} seeds; ridge in brackets); "
          "train on train, score on val:")  # fmt: skip
    for target, split_file in TARGETS.items():
        split = {row["mof_id"]: row["split"] for row in _read_csv(split_file)}
        rows: dict[str, list[int]] = {"train": [], "val": []}
        values: dict[str, list[float]] = {"train": [], "val": []}
        for mof_id, part in split.items():
            label = labels.get(mof_id, {}).get(target, "")
            if part in rows and mof_id in row_of and label:
                rows[part].append(row_of[mof_id])
                values[part].append(float(label))
        y_train, y_val = np.array(values["train"]), np.array(values["val"])
        print(f"{target}: {len(y_train)} train, {len(y_val)} val (val mean {y_val.mean():.3f})")
        for label, features in sets.items():
            x_train, x_val = _standardise(features[rows["train"]], features[rows["val"]])
            mlp = np.mean([mlp_predict(x_train, y_train, x_val, s) for s in range(seeds)], axis=0)
            ridge = ridge_predict(x_train, y_train, x_val)
            mae, rho = np.abs(mlp - y_val).mean(), spearmanr(mlp, y_val).statistic
            mae_r, rho_r = np.abs(ridge - y_val).mean(), spearmanr(ridge, y_val).statistic
            print(f"  {label:18s} MAE {mae:.4f} mol/kg  Spearman {rho:.4f}   "
                  f"[ridge MAE {mae_r:.4f}, Spearman {rho_r:.4f}]")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300, help="CIFs for the cost (default 300)")
    parser.add_argument("--repeats", type=int, default=3, help="whole-process runs per variant")
    parser.add_argument("--seeds", type=int, default=3, help="MLP seeds averaged")
    parser.add_argument("--shards", type=Path, default=ROOT / "work-data" / "core2019-desc")
    parser.add_argument("--cache", type=Path, help="npz keeping the shards' energy descriptors")
    parser.add_argument("--skip-cost", action="store_true")
    parser.add_argument("--skip-gain", action="store_true")
    args = parser.parse_args()
    if not SHARED.is_dir():
        raise SystemExit(f"needs {SHARED} (the CoRE MOF CIFs and labels)")
    if not args.skip_cost:
        cifs = first_cifs(SHARED / "cifs.tar.xz", args.n)
        print(f"cost on the first {len(cifs)} CIFs of {SHARED / 'cifs.tar.xz'} "
              f"({', '.join(mof_id_of(n) for n, _, _ in cifs[:3])}, …)")  # fmt: skip
        in_process(cifs)
        if args.repeats:
            whole_process(cifs, args.repeats)
    if not args.skip_gain:
        ids, base, energy = shard_features(args.shards, args.cache)
        gain(ids, base, energy, args.seeds)


if __name__ == "__main__":
    main()
