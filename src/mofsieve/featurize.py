"""CIFs → crystal-graph shards, one manifest shard at a time, with failures recorded.

Three ways to run, all giving the same files:

* ``mofsieve featurize INPUT... --out DIR``: manifest, every shard, merged failures;
* ``mofsieve featurize --manifest M --shard K [K ...] --out DIR``: these shards (one
  Snakemake job, one after another);
* ``mpiexec -n N mofsieve featurize --mpi …``: rank r of N takes shards r, r+N, r+2N, ….

A CIF that cannot be used never stops a shard: it goes to ``failures-K.csv`` with the stage
(read, parse, graph, descriptors) and a readable reason. A CIF that is kept but odd (a stray
atom or molecule, an over-bonded carbon, partial occupancy read as full: :mod:`mofsieve.checks`)
goes on into the shard and gets rows in ``warnings-K.csv``. With ``--charges cif_or_model`` a
CIF without partial charges gets the shipped charge model's (:mod:`mofsieve.charge_model`) in
its graph and charged descriptors; one the model cannot charge keeps NaN and gets a ``charges``
warning. Each kept CIF's framework key
(formula, bond-graph hash, cell: :mod:`mofsieve.duplicates`) goes to ``frameworks-K.csv``, for
``mofsieve rank`` to group the MOFs that are the same framework. Shards are written under a
temporary name and renamed, so a killed job leaves nothing that looks complete.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import multiprocessing
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from mofsieve.charge_model import DEFAULT_CHARGE_MODEL_DIR
from mofsieve.checks import bond_checks, find_bonds
from mofsieve.duplicates import FrameworkKey, framework_key, write_framework_keys
from mofsieve.failures import Failure, write_failures
from mofsieve.failures import merge_failures as merge_failure_files
from mofsieve.featurization_params import CHARGES_FROM_CIF, ENERGY_REVISION, FEATURIZATION_CHARGES
from mofsieve.graphs import NeighbourGraph, neighbour_graph
from mofsieve.manifest import (
    InputError,
    ManifestRow,
    add_input_arguments,
    build_manifest,
    read_manifest,
    read_sources,
    write_manifest,
)
from mofsieve.store import CrystalGraph, FeaturizationParams, read_params, write_shard
from mofsieve.structures import OCCUPANCY_POLICIES, Crystal, StructureError, parse_cif
from mofsieve.warning_records import CHARGES, WarningRecord, write_warnings
from mofsieve.warning_records import merge_warnings as merge_warning_files

log = logging.getLogger(__name__)

# the charge model that --charges cif_or_model asks (module-level: tests point it elsewhere)
CHARGE_MODEL_DIR = DEFAULT_CHARGE_MODEL_DIR


class ChargeModelUnavailable(RuntimeError):
    """``--charges cif_or_model`` without a loadable charge model: the run stops, since every
    CIF without charges would silently lose its charged descriptors."""


@dataclass(frozen=True)
class Limits:
    """What makes a parsed structure unusable (not part of the graph definition)."""

    max_atoms: int = 20_000
    min_distance: float = 0.5  # Å; closer atoms are overlapping copies (disorder, bad CIF)
    partial_occupancy: str = "reject"  # or "keep": sites read as full atoms, with a warning


@dataclass
class ShardResult:
    graphs: list[CrystalGraph] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    warnings: list[WarningRecord] = field(default_factory=list)
    frameworks: list[FrameworkKey] = field(default_factory=list)


def shard_path(out_dir: Path, shard: int) -> Path:
    return out_dir / f"shard-{shard:05d}.h5"


def failures_path(out_dir: Path, shard: int) -> Path:
    return out_dir / f"failures-{shard:05d}.csv"


def warnings_path(out_dir: Path, shard: int) -> Path:
    return out_dir / f"warnings-{shard:05d}.csv"


def frameworks_path(out_dir: Path, shard: int) -> Path:
    return out_dir / f"frameworks-{shard:05d}.csv"


def featurize_cif(
    mof_id: str,
    source: str,
    data: bytes,
    params: FeaturizationParams,
    limits: Limits = Limits(),
    checks: list[tuple[str, str]] | None = None,
    frameworks: list[FrameworkKey] | None = None,
) -> CrystalGraph:
    """One CIF's bytes → its crystal graph; raises :class:`StructureError` when unusable.

    With a ``checks`` list, the structure checks run on the graph just built and their
    findings (``(check, detail)``, :mod:`mofsieve.checks`) are appended to it; with a
    ``frameworks`` list, the crystal's framework key (:mod:`mofsieve.duplicates`). Both read
    the same bonds, found once. With ``params.charges == "cif_or_model"`` a CIF without a
    charge on every atom is charged by the charge model (:func:`model_charges`); when it cannot
    be, the charges stay the CIF's and a ``charges`` finding says why.
    """
    crystal = parse_cif(
        data, max_atoms=limits.max_atoms, partial_occupancy=limits.partial_occupancy
    )
    graph = neighbour_graph(
        crystal.frac_coords, crystal.lattice, params.cutoff, params.max_neighbors
    )
    if len(graph.dist) == 0:
        raise StructureError(f"no atom has a neighbour within {params.cutoff:g} Å", stage="graph")
    closest = int(np.argmin(graph.dist))
    if graph.dist[closest] < limits.min_distance:
        i, j = int(graph.dst[closest]), int(graph.src[closest])
        raise StructureError(
            f"overlapping atoms {i + 1} and {j + 1} only {graph.dist[closest]:.3f} Å apart "
            f"(limit {limits.min_distance:g} Å): disorder or duplicated sites",
            stage="graph",
        )
    if checks is not None or frameworks is not None:
        bonds = find_bonds(crystal.atomic_number, graph.src, graph.dst, graph.dist, graph.image)
        if checks is not None:
            checks.extend(crystal.notes)
            checks.extend(bond_checks(crystal.atomic_number, crystal.charge, graph.src,
                                      graph.dst, graph.dist, graph.image, bonds=bonds))  # fmt: skip
        if frameworks is not None:
            try:
                frameworks.append(framework_key(mof_id, crystal.atomic_number,
                                                crystal.frac_coords, crystal.lattice, bonds.a,
                                                bonds.b))  # fmt: skip
            except (ValueError, ArithmeticError, RuntimeError) as err:
                # the key only groups duplicates: never lose a usable structure for it
                log.warning("%s: no framework key (%s): never grouped as a duplicate", mof_id, err)
    # After the checks: they tell ions by the CIF's own charges, whatever the graph gets.
    charge = crystal.charge
    if params.charges != CHARGES_FROM_CIF:
        charge, why_not = filled_charges(crystal, graph, params)
        if why_not:
            log.debug("%s: %s", mof_id, why_not)
            if checks is not None:
                checks.append((CHARGES, why_not))
    global_features = None
    if params.global_feature_names:
        from mofsieve.descriptors import DescriptorError, compute_descriptors

        try:
            global_features = compute_descriptors(
                params.global_feature_names,
                crystal.atomic_number,
                crystal.frac_coords,
                crystal.lattice,
                charges=charge,  # only the charged energy descriptors use them
            )
        except DescriptorError as err:
            raise StructureError(str(err), stage="descriptors") from None
    columns = {}
    if params.columns:  # optional columns (OCrystalNet): mofsieve.graph_columns
        from mofsieve.graph_columns import compute_columns

        try:
            columns = compute_columns(params.columns, crystal.atomic_number, crystal.frac_coords,
                                      crystal.lattice, graph.src, graph.dst, graph.dist,
                                      graph.image)  # fmt: skip
        except (ValueError, RuntimeError) as err:
            raise StructureError(f"graph columns: {err}", stage="graph") from None
    return CrystalGraph(
        mof_id=mof_id,
        source=source,
        atomic_number=crystal.atomic_number,
        charge=charge,
        frac_coords=crystal.frac_coords,
        lattice=crystal.lattice,
        edge_src=graph.src,
        edge_dst=graph.dst,
        edge_dist=graph.dist.astype(np.float32),
        edge_image=graph.image,
        global_features=global_features,
        **columns,
    )


def filled_charges(
    crystal: Crystal, graph: NeighbourGraph, params: FeaturizationParams
) -> tuple[np.ndarray, str]:
    """``(charges, why_not)`` for ``cif_or_model``: the CIF's own when every atom has one,
    else the charge model's (float32, as the shard keeps them); when the model cannot give
    sane ones, the CIF's (NaN where missing) and the reasons of both sources in words."""
    from mofsieve.charge_sources import ChargeSourceError, cif_charges

    try:
        cif_charges(crystal)
        return crystal.charge, ""
    except ChargeSourceError as err:
        no_cif = str(err)
    try:
        return model_charges(crystal, graph, params).astype(np.float32), ""
    except ChargeSourceError as err:
        return crystal.charge, f"cif: {no_cif}; model: {err}; the atoms keep NaN charges"


def model_charges(
    crystal: Crystal, graph: NeighbourGraph, params: FeaturizationParams
) -> np.ndarray:
    """The charge model's charges of ``crystal`` (float64, e), within the per-element bounds of
    :func:`mofsieve.charge_sources.check_bounds`; :class:`ChargeSourceError` with the reason
    if it cannot give them. The model is loaded once per process, on first use."""
    from mofsieve.charge_model import ChargeModelError
    from mofsieve.charge_sources import ChargeSourceError, charge_model, check_bounds

    try:
        model = charge_model(CHARGE_MODEL_DIR)
    except ChargeSourceError as err:
        raise ChargeModelUnavailable(f"--charges cif_or_model: {err}") from None
    edges = None
    if (model.spec.cutoff, model.spec.max_neighbors) == (params.cutoff, params.max_neighbors):
        # the model's neighbour graph is the one just built: no second neighbour search
        edges = (np.stack([graph.src, graph.dst]).astype(np.int64), graph.dist.astype(np.float32))
    try:
        with _one_torch_thread():
            values = model.predict(crystal, edges)
    except ChargeModelError as err:
        raise ChargeSourceError(str(err)) from None
    check_bounds(crystal, values)
    return values


@contextmanager
def _one_torch_thread() -> Iterator[None]:
    # One CIF's graph is too small for intra-op threads, and --jobs already fills the cores:
    # with torch's default a prediction took 9x as long on a busy 2-core machine.
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# one CIF's graph, warnings and framework key (if any), or why it could not be used
_Outcome = tuple[CrystalGraph, list[WarningRecord], FrameworkKey | None] | Failure


def _featurize_task(
    task: tuple[ManifestRow, bytes | OSError, FeaturizationParams, Limits],
) -> _Outcome:
    row, data, params, limits = task
    if isinstance(data, OSError):
        return Failure(row.mof_id, row.source, "read", f"cannot read: {data}")
    if hashlib.sha1(data, usedforsecurity=False).hexdigest() != row.sha1:
        return Failure(row.mof_id, row.source, "read", "file changed since the manifest was made")
    try:
        found: list[tuple[str, str]] = []
        key: list[FrameworkKey] = []
        graph = featurize_cif(row.mof_id, row.source, data, params, limits, found, key)
        warned = [WarningRecord(row.mof_id, row.source, c, d) for c, d in found]
        return graph, warned, key[0] if key else None
    except StructureError as err:
        return Failure(row.mof_id, row.source, err.stage, err.reason)
    except ChargeModelUnavailable:
        raise  # not this CIF's fault: stops the run
    except Exception as err:  # noqa: BLE001 - one odd file must not sink a shard of thousands
        return Failure(row.mof_id, row.source, "parse", f"unexpected {type(err).__name__}: {err}")


def featurize_rows(
    rows: Sequence[ManifestRow],
    params: FeaturizationParams,
    limits: Limits = Limits(),
    jobs: int = 1,
    progress: bool = False,
) -> ShardResult:
    """Featurize manifest rows, keeping manifest order whatever ``jobs`` is."""
    tasks = ((row, data, params, limits) for row, data in read_sources(rows))
    result = ShardResult()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(rows), unit="cif", file=sys.stderr)
    if jobs > 1:
        _load_before_fork(params)
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            outcomes: Iterable[_Outcome] = list(
                _tick(pool.imap(_featurize_task, tasks, chunksize=8), bar)
            )
    else:
        outcomes = list(_tick(map(_featurize_task, tasks), bar))
    if bar is not None:
        bar.close()
    for outcome in outcomes:
        if isinstance(outcome, Failure):
            result.failures.append(outcome)
        else:
            result.graphs.append(outcome[0])
            result.warnings.extend(outcome[1])
            if outcome[2] is not None:
                result.frameworks.append(outcome[2])
    return result


def _load_before_fork(params: FeaturizationParams) -> None:
    """Load what every CIF will need once, in the parent: the forked workers share it instead
    of each importing torch and loading the charge model and compiled kernels again."""
    from mofsieve import graph_native

    graph_native.kernel()
    if params.charges != CHARGES_FROM_CIF:
        from mofsieve import fused
        from mofsieve.charge_sources import ChargeSourceError, charge_model

        try:
            charge_model(CHARGE_MODEL_DIR)
        except ChargeSourceError:
            pass  # the workers' first CIF without charges stops the run, saying why
        fused.kernels()
    if params.global_feature_names:
        from mofsieve.descriptors import energy_native, native

        native.kernels()
        energy_native.kernel()


def _tick(items: Iterable, bar) -> Iterable:
    for item in items:
        if bar is not None:
            bar.update(1)
        yield item


def featurize_shard(
    rows: Sequence[ManifestRow],
    shard: int,
    out_dir: Path,
    params: FeaturizationParams,
    limits: Limits = Limits(),
    jobs: int = 1,
    progress: bool = False,
) -> ShardResult:
    """Featurize the manifest rows of one shard into ``shard-K.h5``, ``failures-K.csv``,
    ``warnings-K.csv`` and ``frameworks-K.csv``."""
    mine = [r for r in rows if r.shard == shard]
    if not mine:
        raise InputError(f"shard {shard} is not in the manifest (no CIF of it listed)")
    start = time.perf_counter()
    result = featurize_rows(mine, params, limits, jobs, progress)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Failures first: the shard file is the one a restart or Snakemake takes as "done".
    write_failures(result.failures, failures_path(out_dir, shard))
    write_warnings(result.warnings, warnings_path(out_dir, shard))
    write_framework_keys(result.frameworks, frameworks_path(out_dir, shard))
    write_shard(shard_path(out_dir, shard), result.graphs, params)
    elapsed = time.perf_counter() - start
    log.info(
        "shard %d: %d graphs, %d failures, %d warnings, %.1f s (%.1f ms/CIF)",
        shard,
        len(result.graphs),
        len(result.failures),
        len(result.warnings),
        elapsed,
        1000 * elapsed / len(mine),
    )
    return result


def shard_is_done(out_dir: Path, shard: int, params: FeaturizationParams) -> bool:
    path = shard_path(out_dir, shard)
    side_files = (
        failures_path(out_dir, shard),
        warnings_path(out_dir, shard),
        frameworks_path(out_dir, shard),
    )
    if not (path.is_file() and all(p.is_file() for p in side_files)):
        return False
    try:
        return read_params(path) == params
    except (OSError, ValueError):
        return False


def merge_failures(out_dir: Path, n_shards: int) -> Path:
    """``failures.csv``: every shard's ``failures-K.csv``, in shard order."""
    shards = [failures_path(out_dir, shard) for shard in range(n_shards)]
    return merge_failure_files(shards, out_dir / "failures.csv")


def merge_warnings(out_dir: Path, n_shards: int) -> Path:
    """``warnings.csv``: every shard's ``warnings-K.csv``, in shard order."""
    shards = [warnings_path(out_dir, shard) for shard in range(n_shards)]
    return merge_warning_files(shards, out_dir / "warnings.csv")


def available_cores() -> int:
    """Cores this process may use (SLURM's cpuset included), not the node's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_input_arguments(parser, required=False)
    parser.add_argument("--out", required=True, type=Path, help="output folder for shards")
    parser.add_argument("--manifest", type=Path, help="featurize the shards of this manifest")
    parser.add_argument(
        "--shard", type=int, nargs="+", help="only these shards of --manifest (one job's)"
    )
    parser.add_argument(
        "--jobs", type=int, default=0, help="worker processes (default: every core allotted)"
    )
    parser.add_argument("--mpi", action="store_true", help="split shards over MPI ranks (mpi4py)")
    parser.add_argument("--overwrite", action="store_true", help="redo shards that already exist")
    parser.add_argument(
        "--model",
        type=Path,
        action="append",
        default=[],
        help="featurize as this model's model.json says (repeat for several models: one set of "
        "graphs that serves them all); instead of --cutoff/--max-neighbors/--global-features",
    )
    parser.add_argument("--cutoff", type=float, help=f"Å (default {FeaturizationParams.cutoff})")
    parser.add_argument(
        "--max-neighbors", type=int, help=f"default {FeaturizationParams.max_neighbors}"
    )
    parser.add_argument(
        "--global-features",
        help="comma-separated crystal descriptors to store (see mofsieve.descriptors)",
    )
    parser.add_argument(
        "--columns",
        help="comma-separated optional graph columns (reverse_edges,orbital_neighbour_sum: "
        "what OCrystalNet models need; see mofsieve.graph_columns)",
    )
    parser.add_argument(
        "--charges",
        choices=FEATURIZATION_CHARGES,
        help="partial charges of the graphs and charged descriptors: cif (default: the CIF's "
        "own, NaN where it has none) or cif_or_model (the CIF's own when every atom has one, "
        "else the shipped charge model's; a CIF it cannot charge keeps NaN, with a warning)",
    )
    parser.add_argument("--max-atoms", type=int, default=Limits.max_atoms)
    parser.add_argument("--min-distance", type=float, default=Limits.min_distance, help="Å")
    parser.add_argument(
        "--partial-occupancy",
        choices=OCCUPANCY_POLICIES,
        default=Limits.partial_occupancy,
        help="a CIF with sites of partial occupancy: reject it (a failure naming the sites), or "
        "keep it, every site a full atom, with a warning (default %(default)s)",
    )


def featurization_from_arguments(args: argparse.Namespace) -> FeaturizationParams:
    """``--model`` (the models' parameters) or ``--cutoff``/``--max-neighbors``/
    ``--global-features``/``--columns``/``--charges`` (the defaults where not given); not
    both."""
    explicit = [
        name
        for name, value in (
            ("--cutoff", args.cutoff),
            ("--max-neighbors", args.max_neighbors),
            ("--global-features", args.global_features),
            ("--columns", args.columns),
            ("--charges", args.charges),
        )
        if value is not None
    ]
    if args.model:
        if explicit:
            raise InputError(
                f"give --model or {', '.join(explicit)}, not both: a model's graphs must be "
                "featurized exactly as its model.json says"
            )
        from mofsieve.modeldir import read_model, union_featurization

        params = union_featurization([read_model(d) for d in args.model])
        assert params is not None
        # the descriptors this code computes, whatever the models read (predict checks)
        return replace(params, energy_revision=ENERGY_REVISION)
    default = FeaturizationParams()
    return FeaturizationParams(
        cutoff=default.cutoff if args.cutoff is None else args.cutoff,
        max_neighbors=default.max_neighbors if args.max_neighbors is None else args.max_neighbors,
        global_feature_names=_global_features_argument(args.global_features),
        columns=_columns_argument(args.columns),
        charges=default.charges if args.charges is None else args.charges,
        energy_revision=ENERGY_REVISION,
    )


def _global_features_argument(text: str | None) -> tuple[str, ...]:
    """The names of ``--global-features``, checked here: a typo is one clear error, not a
    failure per CIF."""
    from mofsieve.descriptors import DESCRIPTORS

    names = tuple(n for n in (text or "").split(",") if n)
    unknown = [n for n in names if n not in DESCRIPTORS]
    if unknown:
        raise InputError(
            f"--global-features: unknown descriptor(s) {unknown}; valid: {', '.join(DESCRIPTORS)}"
        )
    return names


def _columns_argument(text: str | None) -> tuple[str, ...]:
    from mofsieve.graph_columns import check_columns

    try:
        return check_columns([c for c in (text or "").split(",") if c])
    except ValueError as err:
        raise InputError(f"--columns: {err}") from None


def run(args: argparse.Namespace) -> int:
    from mofsieve.featurization_params import FeaturizationMismatch
    from mofsieve.modeldir import ModelDirError

    try:
        params = featurization_from_arguments(args)
    except (InputError, ModelDirError, FeaturizationMismatch) as err:
        log.error("%s", err)
        return 2
    limits = Limits(
        max_atoms=args.max_atoms,
        min_distance=args.min_distance,
        partial_occupancy=args.partial_occupancy,
    )
    jobs = args.jobs or available_cores()
    rank, size, comm = 0, 1, None
    if args.mpi:
        from mpi4py import MPI

        comm = MPI.COMM_WORLD
        rank, size = comm.Get_rank(), comm.Get_size()
        log.info("MPI rank %d of %d on %s", rank, size, MPI.Get_processor_name())
    try:
        rows = _manifest_rows(args, rank, comm)
    except InputError as err:
        log.error("%s", err)
        return 2
    n_shards = rows[-1].shard + 1 if rows else 0
    shards = args.shard if args.shard is not None else list(range(n_shards))
    mine = shards[rank::size]
    progress = sys.stderr.isatty() and size == 1
    for shard in mine:
        if not args.overwrite and args.shard is None and shard_is_done(args.out, shard, params):
            log.info("shard %d already done, skipped", shard)
            continue
        try:
            featurize_shard(rows, shard, args.out, params, limits, jobs, progress)
        except (InputError, ChargeModelUnavailable) as err:
            log.error("%s", err)
            return 2
    if comm is not None:
        comm.Barrier()
    if args.shard is None and rank == 0:
        merged = merge_failures(args.out, n_shards)
        warned = merge_warnings(args.out, n_shards)
        log.info("all %d shards done; failures in %s, warnings in %s", n_shards, merged, warned)
    return 0


def _manifest_rows(args: argparse.Namespace, rank: int, comm) -> list[ManifestRow]:
    if args.inputs and args.manifest:
        raise InputError("give either INPUT… or --manifest, not both")
    if args.manifest:
        return read_manifest(args.manifest, args.shard)
    if not args.inputs:
        raise InputError("nothing to featurize: give INPUT… or --manifest")
    if args.shard is not None:
        raise InputError("--shard needs --manifest")
    manifest = args.out / "manifest.csv"
    error = None
    if rank == 0:
        args.out.mkdir(parents=True, exist_ok=True)
        try:
            write_manifest(build_manifest(args.inputs, args.shard_size), manifest)
        except InputError as err:
            error = str(err)
    if comm is not None:
        error = comm.bcast(error, root=0)  # every rank must stop, not wait at a barrier
    if error:
        raise InputError(error)
    return read_manifest(manifest)
