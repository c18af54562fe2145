"""Per-crystal global descriptors for the descriptor-hybridised model variant (design §5).

Pure functions: arrays in (atomic numbers, fractional coordinates, lattice rows in Å), a
float32 vector out. The cheap descriptors (lattice lengths/angles, volume per atom, density)
are closed-form. The fast geometric pore descriptors (below) are sampling estimates of
CoRE MOF 2019's Zeo++ values, deterministic and a few ms each. The Zeo++ pore descriptors
come from Zeo++ through the PyPI package ``pyzeo`` (0.1–60 s per CIF):

- ``lcd``, ``pld``: largest cavity / pore-limiting diameter (Å), Zeo++ ``-res``.
- ``void_fraction``: Zeo++ ``-vol`` with a zero probe radius, which is what CoRE MOF 2019's
  ``AV_VF`` column is (checked against the ``core-mof`` package's table; a helium-sized
  1.2–1.4 Å probe gives values 5–7× smaller on ABULOB).
- ``asa_m2_cm3``, ``asa_m2_g``: accessible surface area, Zeo++ ``-sa`` with a 1.65 Å probe,
  the radius that reproduces CoRE MOF 2019's ``ASA_m2_cm3`` (fitted on 8 CIFs; 1.86 Å, the
  usual N2 radius, gives values 3–34 % lower). m²/g uses :func:`density` below. Note that
  core-mof's ``cm3_g`` column is in fact the density in g/cm³.

Zeo++ runs in a forked child process: it prints its progress to stdout, keeps global tables,
needs files on disk, and on some degenerate Voronoi networks calls ``exit()``, which would
otherwise kill the caller's pool worker. The child writes into a private temporary directory,
reports through a pipe, and is killed after ``ZeoSettings.timeout_s``. Failures become
:class:`DescriptorError`.

The fast geometric descriptors (``FAST_DESCRIPTORS``, no Zeo++, about 8 ms of CPU per CoRE
MOF CIF in total, bench/descriptors.py) use numpy and pymatgen's compiled periodic neighbour
search (``find_points_in_spheres``, as graphs.py), with Zeo++'s default radii table:

- ``void_fraction_geometric``: the zero-probe void fraction (CoRE's ``AV_VF``): the share of
  4,096 quasi-random points per cell (R3 sequence, deterministic) inside no atom sphere.
- ``surface_area_m2_cm3_geometric`` / ``_m2_g_``: the 1.65 Å-probe surface of the spheres of
  radius r + probe, from ~12,000 points per cell on those spheres (Fibonacci sets, a seeded
  random orientation per atom), a point counting when it lies in no other expanded sphere.
  Accessibility is NOT checked: surface in pockets the probe cannot reach from the channels
  counts too, so this estimates Zeo++'s ASA + NASA (CoRE's ``ASA_m2_cm3 + NASA_m2_cm3``). It
  over-reads ``ASA`` wherever CoRE has non-accessible surface: 34 % of CoRE MOF 2019-ASR,
  25 % with ASA = 0 because no 1.65 Å probe channel percolates.
- ``largest_sphere_diameter_geometric``: the LCD, 2 max_p min_i(|p − x_i| − r_i), from 1,024
  seed points (the deepest found by growing neighbour shells) refined by a pattern search to
  0.01 Å; within ~0.03 Å of CoRE's Zeo++ ``-ha`` LCD on average, slightly below it (a local
  search can only under-estimate a maximum).

Sample counts are per cell, so the cost grows with the atom count only through the neighbour
searches (surface points: at least 12 per atom on big cells).

Cost of the Zeo++ descriptors (bench/descriptors.py): lcd/pld dominate. pyzeo 0.2.0 reaches Zeo++'s ``-res`` only
through ``AtomNetwork.perform_voronoi_decomposition``, whose Python wrapper de-duplicates
Voronoi edge centres by list membership, O(edges²): ~0.3 s at 200 atoms, 3–5 s at 800, over a
minute at 5,760, while the Voronoi step itself takes ~15 ms at 200 atoms. The other
route to a Voronoi network (``VoronoiNetwork.perform_voronoi_decomposition``) is broken in
0.2.0 (it reads an attribute ``AtomNetwork`` does not expose). Requesting only the other
descriptors skips ``-res`` entirely.
"""

from __future__ import annotations

import json
import math
import os
import re
import select
import signal
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from mofsieve.structures import lattice_parameters, p1_cif_text

CHEAP_DESCRIPTORS: tuple[str, ...] = (
    "a",
    "b",
    "c",
    "alpha",
    "beta",
    "gamma",
    "volume_per_atom",
    "density",
)
ZEO_DESCRIPTORS: tuple[str, ...] = ("lcd", "pld", "void_fraction", "asa_m2_cm3", "asa_m2_g")
GEOMETRIC_DESCRIPTORS: tuple[str, ...] = (
    "void_fraction_geometric",
    "surface_area_m2_cm3_geometric",
    "surface_area_m2_g_geometric",
    "largest_sphere_diameter_geometric",
)
# The featurizer's default pore set: no Zeo++, a few ms per CIF (see the module docstring).
FAST_DESCRIPTORS: tuple[str, ...] = CHEAP_DESCRIPTORS + GEOMETRIC_DESCRIPTORS
DESCRIPTORS: tuple[str, ...] = CHEAP_DESCRIPTORS + ZEO_DESCRIPTORS + GEOMETRIC_DESCRIPTORS

# g/mol → g, and Å³ → cm³, folded into one factor: density [g/cm³] = mass_sum [g/mol] *
# _AMU_PER_A3_TO_G_PER_CM3 / volume [Å³].
_AMU_PER_A3_TO_G_PER_CM3 = 1.0e24 / 6.02214076e23
# Atoms closer than this (Å) are a broken structure, not chemistry; Zeo++ misbehaves on them.
_MIN_ATOM_DISTANCE_A = 0.1


class DescriptorError(ValueError):
    """A structure cannot be described; the message says why."""


class _ZeoAborted(DescriptorError):
    """Zeo++ exited the child process (it does so on degenerate Voronoi networks)."""


@dataclass(frozen=True)
class ZeoSettings:
    """How Zeo++ is run. ``FAST_ZEO`` is the featurizer default; ``ACCURATE_ZEO`` is what
    CoRE MOF 2019 used (``-ha``), exact for LCD/PLD but seconds to minutes per CIF."""

    # None: plain radical Voronoi tessellation. A Zeo++ accuracy keyword ("DEF", "S4", "OCC",
    # ...) replaces each atom by several small spheres first (Zeo++ "-ha"): needed for exact
    # diameters when atom radii differ, but it multiplies the sphere count by 10–40.
    high_accuracy: str | None = None
    void_fraction_probe_radius: float = 0.0
    asa_probe_radius: float = 1.65
    # Monte Carlo points per unit cell. Zeo++ -sa takes points per atom; a per-cell budget
    # keeps the noise of small cells down (50 per atom gave ±30 % on 60-atom cells) and the
    # cost of large ones flat. Zeo++ seeds its generator: results are deterministic.
    volume_samples_per_cell: int = 10_000
    asa_samples_per_cell: int = 40_000
    timeout_s: float = 60.0


FAST_ZEO = ZeoSettings()
ACCURATE_ZEO = ZeoSettings(
    high_accuracy="DEF",
    volume_samples_per_cell=100_000,
    asa_samples_per_cell=1_000_000,
    timeout_s=600.0,
)


def _element_tables() -> tuple[list[str], np.ndarray]:
    # ase.data is a light import (no Atoms machinery) and holds IUPAC standard atomic weights.
    from ase.data import atomic_masses, chemical_symbols

    return list(chemical_symbols), np.asarray(atomic_masses, dtype=np.float64)


_SYMBOLS, _MASSES = _element_tables()


def _validated(
    atomic_number: np.ndarray, frac_coords: np.ndarray, lattice: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    numbers = np.asarray(atomic_number)
    frac = np.asarray(frac_coords, dtype=np.float64)
    cell = np.asarray(lattice, dtype=np.float64)
    if numbers.ndim != 1 or numbers.size == 0:
        raise DescriptorError(
            f"atomic_number must be a non-empty 1-D array, got shape {numbers.shape}"
        )
    if frac.shape != (numbers.size, 3):
        raise DescriptorError(f"frac_coords must have shape ({numbers.size}, 3), got {frac.shape}")
    if cell.shape != (3, 3):
        raise DescriptorError(f"lattice must have shape (3, 3), got {cell.shape}")
    if not (np.all(np.isfinite(frac)) and np.all(np.isfinite(cell))):
        raise DescriptorError("frac_coords or lattice contain NaN/inf")
    if not np.issubdtype(numbers.dtype, np.integer):
        if not np.all(numbers == np.round(numbers)):
            raise DescriptorError("atomic_number must hold integers")
        numbers = numbers.astype(np.int64)
    if numbers.min() < 1 or numbers.max() >= len(_SYMBOLS):
        raise DescriptorError(
            f"atomic numbers must lie in 1..{len(_SYMBOLS) - 1}, got {numbers.min()}..{numbers.max()}"
        )
    if abs(np.linalg.det(cell)) < 1e-6:
        raise DescriptorError("lattice is singular (cell volume ~0)")
    return numbers.astype(np.int64), frac, cell


def cell_volume(lattice: np.ndarray) -> float:
    """Unit-cell volume in Å³."""
    return float(abs(np.linalg.det(np.asarray(lattice, dtype=np.float64))))


def density(atomic_number: np.ndarray, lattice: np.ndarray) -> float:
    """Mass density in g/cm³ from IUPAC standard atomic weights."""
    mass = float(_MASSES[np.asarray(atomic_number, dtype=np.int64)].sum())
    return mass * _AMU_PER_A3_TO_G_PER_CM3 / cell_volume(lattice)


def _check_no_overlapping_atoms(frac: np.ndarray, cell: np.ndarray) -> None:
    # Only called before Zeo++, which produces garbage or exits on coincident atoms. Nearest
    # neighbour of each home-cell atom among the 27 neighbouring images (k=2: itself first).
    from scipy.spatial import cKDTree

    wrapped = frac - np.floor(frac)
    shifts = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)])
    home = wrapped @ cell
    images = (wrapped[None, :, :] + shifts[:, None, :]).reshape(-1, 3) @ cell
    if len(home) * 27 < 2:
        return
    distance, index = cKDTree(images).query(home, k=2)
    nearest = distance[:, 1]
    worst = int(np.argmin(nearest))
    if nearest[worst] < _MIN_ATOM_DISTANCE_A:
        other = int(index[worst, 1]) % len(home)
        raise DescriptorError(
            f"atoms {worst} and {other} are {nearest[worst]:.3f} Å apart "
            f"(< {_MIN_ATOM_DISTANCE_A} Å): overlapping or duplicated sites"
        )


_FLOAT = rb"([-+0-9.eEinfa]+)"


def _parse_field(report: bytes, field: str) -> float:
    match = re.search(re.escape(field.encode()) + rb":\s*" + _FLOAT, report)
    if match is None:
        raise DescriptorError(f"Zeo++ output lacks {field!r}: {report[:200]!r}")
    return float(match.group(1))


def _zeo_worker(
    cif_path: str, workdir: str, wanted: frozenset[str], settings: ZeoSettings
) -> dict[str, float]:
    # Runs inside the forked child only.
    from pyzeo.extension import AtomNetwork, high_accuracy_atomnet, surface_area, volume

    network = AtomNetwork.read_from_CIF(cif_path)
    # The Voronoi step runs on the sphere-substituted copy; the Monte Carlo steps still need
    # the original atoms to decide whether a point is inside an atom, so both are kept.
    voronoi_network = network
    if settings.high_accuracy is not None:
        voronoi_network = network.copy()
        high_accuracy_atomnet(voronoi_network, settings.high_accuracy)
    accuracy = {
        "high_accuracy": settings.high_accuracy is not None,
        "high_accuracy_atmnet": voronoi_network if settings.high_accuracy is not None else None,
    }
    result: dict[str, float] = {}
    if wanted & {"lcd", "pld"}:
        res_path = os.path.join(workdir, "free_sphere.res")
        voronoi_network.calculate_free_sphere_parameters(res_path)
        with open(res_path) as handle:
            fields = handle.read().split()
        # "<name> Di Df Dif": largest included sphere, largest free sphere (= PLD), and the
        # largest included sphere along the free-sphere path.
        result["lcd"], result["pld"] = float(fields[1]), float(fields[2])
    if "void_fraction" in wanted:
        probe = settings.void_fraction_probe_radius
        report = volume(network, probe, probe, settings.volume_samples_per_cell, **accuracy)
        result["void_fraction"] = _parse_field(report, "AV_Volume_fraction")
    if wanted & {"asa_m2_cm3", "asa_m2_g"}:
        probe = settings.asa_probe_radius
        per_atom = max(1, math.ceil(settings.asa_samples_per_cell / network.no_atoms))
        report = surface_area(network, probe, probe, per_atom, **accuracy)
        result["asa_m2_cm3"] = _parse_field(report, "ASA_m^2/cm^3")
    return result


def _last_lines(path: str, count: int = 3) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 4000))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(lines[-count:])


def _run_forked(
    work: Callable[[], dict[str, float]], log_path: str, timeout_s: float
) -> dict[str, float]:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns, never runs the parent's cleanup
        exit_code = 1
        try:
            import fcntl

            # Move the pipe above stdio, which a daemonised caller may have closed.
            write_fd = fcntl.fcntl(write_fd, fcntl.F_DUPFD, 3)
            log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(log_fd, 1)
            os.dup2(log_fd, 2)
            # Drop every other inherited descriptor: a pipe end of a sibling call running in
            # another thread would otherwise stay open here and delay that call's EOF.
            os.closerange(3, write_fd)
            os.closerange(write_fd + 1, max(write_fd + 2, os.sysconf("SC_OPEN_MAX")))
            try:
                payload = {"ok": work()}
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                payload = {"error": f"{type(exc).__name__}: {exc}"}
            data = json.dumps(payload).encode()
            while data:
                data = data[os.write(write_fd, data) :]
            exit_code = 0
        finally:
            os._exit(exit_code)

    os.close(write_fd)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    finished = timed_out = False
    # poll, not select: descriptor numbers above 1024 are common in a featurizer with many
    # HDF5 shards open.
    poller = select.poll()
    poller.register(read_fd, select.POLLIN)
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            if not poller.poll(remaining * 1000):
                continue
            chunk = os.read(read_fd, 65536)
            if not chunk:
                finished = True
                break
            chunks.append(chunk)
    finally:
        os.close(read_fd)
        if not finished:  # timed out, or interrupted in the parent
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _, status = os.waitpid(pid, 0)

    if timed_out:
        raise DescriptorError(f"Zeo++ did not finish within {timeout_s:g} s")
    if not chunks:
        reason = _last_lines(log_path) or "no output"
        raise _ZeoAborted(
            f"Zeo++ aborted (exit status {os.waitstatus_to_exitcode(status)}): {reason}"
        )
    payload = json.loads(b"".join(chunks))
    if "error" in payload:
        raise DescriptorError(f"Zeo++ failed: {payload['error']}")
    return {key: float(value) for key, value in payload["ok"].items()}


# Zeo++ aborts ("Unable to add edge because nodes have not been added") on ~10 % of CoRE
# MOF CIFs in plain mode, where symmetry makes Voronoi vertices coincide. Displacing the atoms
# by this much (Å, well below the ~1e-3 Å precision of CIF coordinates) breaks the
# degeneracy; the first attempt always uses the coordinates as given.
_JITTER_RETRIES_A = (1e-4, 1e-3)


def zeo_descriptors(
    numbers: np.ndarray,
    frac: np.ndarray,
    cell: np.ndarray,
    wanted: frozenset[str],
    settings: ZeoSettings = FAST_ZEO,
) -> dict[str, float]:
    """Pore descriptors from Zeo++ (see module docstring), keyed by descriptor name; only
    the Zeo++ steps that ``wanted`` needs are run."""
    try:
        # Imported here, before forking, so that children share the loaded library and a
        # missing install fails loudly instead of as a per-structure DescriptorError.
        import pyzeo.extension  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"descriptors {sorted(wanted)} need Zeo++ through pyzeo: pip install pyzeo==0.2.0"
        ) from exc
    _check_no_overlapping_atoms(frac, cell)
    # Seeded, so that a retried structure gives the same numbers in every run.
    displacement_directions = np.random.default_rng(0).normal(size=frac.shape)
    inverse_cell = np.linalg.inv(cell)
    attempts = (0.0, *_JITTER_RETRIES_A)
    for attempt, jitter_a in enumerate(attempts):
        coords = frac + jitter_a * displacement_directions @ inverse_cell
        try:
            values = _zeo_once(numbers, coords, cell, wanted, settings)
            break
        except _ZeoAborted as exc:
            if attempt == len(attempts) - 1:
                raise DescriptorError(
                    f"{exc} (also with atoms displaced by up to ~{jitter_a:g} Å)"
                ) from exc
    for key, value in values.items():
        if not math.isfinite(value):
            raise DescriptorError(f"Zeo++ returned a non-finite {key}")
    return values


def _zeo_once(
    numbers: np.ndarray,
    frac: np.ndarray,
    cell: np.ndarray,
    wanted: frozenset[str],
    settings: ZeoSettings,
) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="mofsieve-zeo-") as workdir:
        cif_path = os.path.join(workdir, "structure.cif")
        with open(cif_path, "w") as handle:
            handle.write(p1_cif_text("mofsieve", numbers, frac - np.floor(frac), cell))
        log_path = os.path.join(workdir, "zeo.log")

        def work() -> dict[str, float]:
            return _zeo_worker(cif_path, workdir, wanted, settings)

        if hasattr(os, "fork"):
            return _run_forked(work, log_path, settings.timeout_s)
        # No fork (Windows): in-process, without crash isolation or timeout.
        return work()


# --- fast geometric pore descriptors (no Zeo++) ---------------------------------------------

# Zeo++'s default atomic radii (Å), index = atomic number: its ``initializeRadTable`` as
# shipped by pyzeo 0.2.0 (read back with ``pyzeo.extension.lookupRadius``; the tests compare
# the two when pyzeo is installed). CoRE MOF 2019 ran Zeo++ with this table. Zeo++ has no
# entry past Lr (103); those elements get its 2.0 Å fallback here (no MOF contains them).
_ZEO_RADII_A = np.array(
    [0.0]  # Z = 0 is not an element
    + [1.09, 1.4, 1.82, 2.0, 2.0, 1.7, 1.55, 1.52, 1.47, 1.54]  # H-Ne
    + [2.27, 1.73, 2.0, 2.1, 1.8, 1.8, 1.75, 1.88, 2.75, 2.0]  # Na-Ca
    + [2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 1.63, 1.4, 1.39]  # Sc-Zn
    + [1.87, 2.0, 1.85, 1.9, 1.85, 2.02, 2.0, 2.0, 2.0, 2.0]  # Ga-Zr
    + [2.0, 2.0, 2.0, 2.0, 2.0, 1.63, 1.72, 1.58, 1.93, 2.17]  # Nb-Sn
    + [2.0, 2.06, 1.98, 2.16, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]  # Sb-Nd
    + [2.0] * 12  # Pm-Hf
    + [2.0, 2.0, 2.0, 2.0, 2.0, 1.72, 1.66, 1.55, 1.96, 2.02]  # Ta-Pb
    + [2.0] * 9  # Bi-Pa
    + [1.86]  # U
    + [2.0] * 26,  # Np-Og
    dtype=np.float64,
)


@dataclass(frozen=True)
class GeometricSettings:
    """Sample sizes of the geometric estimators; fixed per cell, so that the cost is bounded
    by the atom count (neighbour searches) and not by these numbers times the atom count."""

    # Quasi-random points per cell for the void fraction (zero probe). A Kronecker (R3)
    # sequence: its error falls about as 1/N, not 1/√N as Monte Carlo's.
    volume_points: int = 4096
    # The first of those points that seed the largest-sphere search, and how many of the
    # deepest ones are then refined by a pattern search down to ``lcd_tolerance_a``.
    lcd_seed_points: int = 1024
    lcd_refined_points: int = 8
    lcd_tolerance_a: float = 0.01
    surface_probe_radius: float = 1.65
    # Points on the atoms' probe-expanded spheres, per cell, split evenly over the atoms but
    # never fewer than ``surface_points_min_per_atom`` (big cells: linear in the atom count)
    # nor more than ``surface_points_max_per_atom`` (small cells: no gain past it).
    surface_points: int = 12_000
    surface_points_min_per_atom: int = 12
    surface_points_max_per_atom: int = 200
    seed: int = 0


FAST_GEOMETRY = GeometricSettings()

# The R3 low-discrepancy sequence (Roberts 2018): steps 1/g, 1/g², 1/g³ with g the real root
# of x⁴ = x + 1 (the generalised golden ratio in 3-D; the plastic number is the 2-D one).
_R3_RATIO = 1.2207440846057596
_R3_STEP = np.array([1 / _R3_RATIO, 1 / _R3_RATIO**2, 1 / _R3_RATIO**3])
_PBC = np.ones(3, dtype=np.int64)
# Pattern-search moves: the 6 axis and 8 body-diagonal unit vectors.
_PATTERN_DIRECTIONS = np.array(
    [
        (i, j, k)
        for i in (-1, 0, 1)
        for j in (-1, 0, 1)
        for k in (-1, 0, 1)
        if abs(i) + abs(j) + abs(k) in (1, 3)
    ],
    dtype=np.float64,
)
_PATTERN_DIRECTIONS /= np.linalg.norm(_PATTERN_DIRECTIONS, axis=1, keepdims=True)
# Pairs per chunk of the surface-area products: with ≤ 200 points per atom, ≤ 1.6 MB.
_SURFACE_PAIRS_PER_CHUNK = 2048


def _quasi_random_fractions(count: int) -> np.ndarray:
    return (0.5 + np.arange(1, count + 1)[:, None] * _R3_STEP) % 1.0


def _points_within(
    atom_cart: np.ndarray, points: np.ndarray, cell: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(point index, atom index, image, distance) of every atom image within ``radius``."""
    from pymatgen.optimization.neighbors import find_points_in_spheres

    point_index, atom_index, images, distance = find_points_in_spheres(
        atom_cart, np.ascontiguousarray(points), r=float(radius), pbc=_PBC, lattice=cell, tol=1e-8
    )
    return point_index.astype(np.int64), atom_index.astype(np.int64), images, distance


def _surface_clearance(
    atom_cart: np.ndarray,
    radii: np.ndarray,
    points: np.ndarray,
    cell: np.ndarray,
    search_radius: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Per point: min over atoms of (distance − radius), and whether that minimum is exact.

    Only atom images within ``search_radius`` are seen, so a value is exact when it is at most
    ``search_radius − max(radii)`` (any unseen atom is further from its surface than that);
    points that see no atom get that bound as value, marked inexact."""
    bound = search_radius - float(radii.max())
    clearance = np.full(len(points), bound)
    if len(points):
        point_index, atom_index, _, distance = _points_within(
            atom_cart, points, cell, search_radius
        )
        np.minimum.at(clearance, point_index, distance - radii[atom_index])
    return clearance, clearance < bound


def _void_fraction_and_seeds(
    atom_cart: np.ndarray, radii: np.ndarray, cell: np.ndarray, settings: GeometricSettings
) -> tuple[float, np.ndarray]:
    """Zero-probe void fraction, and the Cartesian seed points (outside every atom) for the
    largest-sphere search."""
    points = _quasi_random_fractions(settings.volume_points) @ cell
    point_index, atom_index, _, distance = _points_within(
        atom_cart, points, cell, float(radii.max())
    )
    inside = np.zeros(len(points), dtype=bool)
    inside[point_index[distance < radii[atom_index]]] = True
    seeds = points[: settings.lcd_seed_points][~inside[: settings.lcd_seed_points]]
    return float(1.0 - inside.mean()), seeds


def _largest_sphere_radius(
    atom_cart: np.ndarray,
    radii: np.ndarray,
    cell: np.ndarray,
    seeds: np.ndarray,
    settings: GeometricSettings,
) -> float:
    """Radius of the largest sphere that overlaps no atom: the maximum over space of the
    clearance f(p) = min_i(|p − x_i| − r_i), from the seed points and a local refinement."""
    if len(seeds) == 0:
        return 0.0
    largest_radius = float(radii.max())
    # Growing shells, as in graphs.py: most points are resolved by a small search, and only
    # those still unresolved (all deeper than every resolved one) are searched further.
    candidates, reach = seeds, 1.5
    while True:
        clearance, exact = _surface_clearance(
            atom_cart, radii, candidates, cell, reach + largest_radius
        )
        if exact.all():
            break
        # The deepest points are among the unresolved ones; a fixed, evenly spread subset of
        # them bounds the cost in very large cages.
        deeper = candidates[~exact]
        stride = max(1, len(deeper) // 256)
        candidates, reach = deeper[::stride], reach * 2.0
    order = np.argsort(-clearance, kind="stable")[: settings.lcd_refined_points]
    points, values = candidates[order], clearance[order]

    # Pattern search on the 26 neighbour directions with per-point step halving, each point
    # kept within ``travel`` of where it started. f is 1-Lipschitz, so a trial point there
    # has f ≤ f(start) + travel and its nearest surface belongs to an atom within
    # f(start) + 2 travel + max radius of the start: those atoms, gathered once by one
    # periodic search, make every later evaluation a small dense numpy computation.
    seed_spacing = (cell_volume(cell) / settings.lcd_seed_points) ** (1 / 3)
    travel = seed_spacing
    start_index, atom_index, images, distance = _points_within(
        atom_cart, points, cell, float(values.max()) + 2.0 * travel + largest_radius
    )
    relevant = distance - radii[atom_index] <= values[start_index] + 2.0 * travel
    start_index, atom_index, images = (
        start_index[relevant],
        atom_index[relevant],
        images[relevant],
    )
    order = np.argsort(start_index, kind="stable")
    start_index, atom_index, images = start_index[order], atom_index[order], images[order]
    slot = np.arange(len(start_index)) - np.searchsorted(start_index, start_index)
    width = int(np.bincount(start_index, minlength=len(points)).max())
    # Padded (points × local atoms) arrays; padding atoms sit far away with radius 0.
    local_cart = np.full((len(points), width, 3), 1e4)
    local_radii = np.zeros((len(points), width))
    local_cart[start_index, slot] = atom_cart[atom_index] + images @ cell
    local_radii[start_index, slot] = radii[atom_index]
    # Distances from |t − a|² = |t|² + |a|² − 2 t·a, relative to each start point to keep
    # the cancellation small: a batched matrix product instead of a 4-D difference array.
    local_cart -= points[:, None, :]
    local_cart_t = np.ascontiguousarray(local_cart.transpose(0, 2, 1))
    local_square = np.einsum("pak,pak->pa", local_cart, local_cart)

    position = np.zeros_like(points)  # relative to the start points
    step = np.full(len(points), 0.5 * seed_spacing)
    for _ in range(100):
        active = np.flatnonzero(step >= settings.lcd_tolerance_a)
        if not len(active):
            break
        trials = position[active, None, :] + step[active, None, None] * _PATTERN_DIRECTIONS
        square = (
            np.einsum("tdk,tdk->td", trials, trials)[:, :, None]
            + local_square[active, None, :]
            - 2.0 * np.matmul(trials, local_cart_t[active])
        )
        trial_values = np.min(
            np.sqrt(np.maximum(square, 0.0)) - local_radii[active, None, :], axis=2
        )
        trial_values[np.einsum("tdk,tdk->td", trials, trials) > travel**2] = -np.inf
        best = np.argmax(trial_values, axis=1)
        best_values = trial_values[np.arange(len(active)), best]
        improved = best_values > values[active] + 1e-9
        moved, halved = active[improved], active[~improved]
        position[moved] = trials[improved, best[improved]]
        values[moved] = best_values[improved]
        step[halved] *= 0.5
    return max(0.0, float(values.max()))


def _fibonacci_sphere(count: int) -> np.ndarray:
    k = np.arange(count) + 0.5
    z = 1.0 - 2.0 * k / count
    ring = np.sqrt(1.0 - z * z)
    azimuth = k * math.pi * (3.0 - math.sqrt(5.0))
    return np.stack([ring * np.cos(azimuth), ring * np.sin(azimuth), z], axis=1)


def _random_rotations(count: int, rng: np.random.Generator) -> np.ndarray:
    # Uniform random rotations from normalised Gaussian quaternions (Shoemake).
    w, x, y, z = rng.normal(size=(4, count))
    norm = np.sqrt(w * w + x * x + y * y + z * z)
    w, x, y, z = w / norm, x / norm, y / norm, z / norm
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=1,
    )


def _surface_area_a2(
    atom_cart: np.ndarray, radii: np.ndarray, cell: np.ndarray, settings: GeometricSettings
) -> float:
    """Probe-accessible surface area (Å²) per cell: the part of each atom's sphere of radius
    r + probe that lies inside no other atom's expanded sphere."""
    expanded = radii + settings.surface_probe_radius
    count = len(atom_cart)
    per_atom = int(
        np.clip(
            settings.surface_points // count,
            settings.surface_points_min_per_atom,
            settings.surface_points_max_per_atom,
        )
    )
    directions = _fibonacci_sphere(per_atom)

    # Overlapping pairs (d < R_i + R_j), searched per distinct centre radius so that the
    # search radius is R_i + max R rather than 2 max R (a third fewer pairs for C/H/O).
    centre_parts, neighbour_parts, vector_parts = [], [], []
    largest = float(expanded.max())
    for value in np.unique(expanded):
        centres = np.flatnonzero(expanded == value)
        local, neighbour, images, distance = _points_within(
            atom_cart, atom_cart[centres], cell, value + largest
        )
        centre = centres[local]
        overlapping = (distance < value + expanded[neighbour]) & (distance > 1e-8)
        centre, neighbour, images = centre[overlapping], neighbour[overlapping], images[overlapping]
        vector_parts.append(atom_cart[neighbour] + images @ cell - atom_cart[centre])
        centre_parts.append(centre)
        neighbour_parts.append(neighbour)
    centre = np.concatenate(centre_parts)
    neighbour = np.concatenate(neighbour_parts)
    vector = np.concatenate(vector_parts)
    order = np.argsort(centre, kind="stable")
    centre, neighbour, vector = centre[order], neighbour[order], vector[order]

    # A point u on atom i's expanded sphere lies in atom j's when u·n_ij > t_ij (a spherical
    # cap), with n_ij the unit vector from i to j and t_ij from the law of cosines; as one
    # float32 product: [n_ij, −t_ij] · [u, 1] > 0.
    distance = np.linalg.norm(vector, axis=1)
    own, other = expanded[centre], expanded[neighbour]
    threshold = (distance**2 + own**2 - other**2) / (2.0 * distance * own)
    # Each atom's points get their own seeded random orientation: the estimate is then
    # unbiased and free of the aliasing that one shared point set has with the crystal's
    # symmetry (measured: mean error vs Zeo++ 20 % lower than one orientation per structure).
    # Rotating the pair normals by the inverse is the same and cheaper.
    rotations = _random_rotations(count, np.random.default_rng(settings.seed))
    caps = np.empty((len(centre), 4), dtype=np.float32)
    caps[:, :3] = np.einsum("pk,pkl->pl", vector / distance[:, None], rotations[centre])
    caps[:, 3] = -threshold
    points = np.ones((4, per_atom), dtype=np.float32)
    points[:3] = directions.T

    # Chunks of pairs, cut at atom boundaries, through reused buffers: the products stay in
    # cache and no large array is allocated per structure.
    exposed = np.ones((count, per_atom), dtype=bool)
    starts = np.searchsorted(centre, np.arange(count + 1))
    chunk = max(_SURFACE_PAIRS_PER_CHUNK, int(np.diff(starts).max()))
    product = np.empty((chunk, per_atom), dtype=np.float32)
    buried = np.empty((chunk, per_atom), dtype=bool)
    atom_start = 0
    while atom_start < count:
        atom_end = int(np.searchsorted(starts, starts[atom_start] + chunk, side="right")) - 1
        atom_end = min(count, max(atom_start + 1, atom_end))
        lo, hi = int(starts[atom_start]), int(starts[atom_end])
        if hi > lo:
            rows = hi - lo
            np.matmul(caps[lo:hi], points, out=product[:rows])
            np.greater(product[:rows], 0.0, out=buried[:rows])
            has_pairs = atom_start + np.flatnonzero(np.diff(starts[atom_start : atom_end + 1]))
            exposed[has_pairs] = ~np.logical_or.reduceat(
                buried[:rows], starts[has_pairs] - lo, axis=0
            )
        atom_start = atom_end
    sphere_areas = 4.0 * math.pi * expanded**2
    return float(sphere_areas @ exposed.mean(axis=1))


def geometric_descriptors(
    numbers: np.ndarray,
    frac: np.ndarray,
    cell: np.ndarray,
    wanted: frozenset[str],
    settings: GeometricSettings = FAST_GEOMETRY,
) -> dict[str, float]:
    """The fast pore descriptors (see the module docstring) that ``wanted`` names."""
    radii = _ZEO_RADII_A[numbers]
    atom_cart = (frac - np.floor(frac)) @ cell
    values: dict[str, float] = {}
    if wanted & {"void_fraction_geometric", "largest_sphere_diameter_geometric"}:
        void_fraction, seeds = _void_fraction_and_seeds(atom_cart, radii, cell, settings)
        values["void_fraction_geometric"] = void_fraction
        if "largest_sphere_diameter_geometric" in wanted:
            radius = _largest_sphere_radius(atom_cart, radii, cell, seeds, settings)
            values["largest_sphere_diameter_geometric"] = 2.0 * radius
    if wanted & {"surface_area_m2_cm3_geometric", "surface_area_m2_g_geometric"}:
        # Å²/Å³ = 1e-20 m² / 1e-24 cm³.
        area = _surface_area_a2(atom_cart, radii, cell, settings)
        values["surface_area_m2_cm3_geometric"] = area / cell_volume(cell) * 1e4
    return values


def compute_descriptors(
    names: Sequence[str],
    atomic_number: np.ndarray,
    frac_coords: np.ndarray,
    lattice: np.ndarray,
    *,
    zeo_settings: ZeoSettings = FAST_ZEO,
    geometric_settings: GeometricSettings = FAST_GEOMETRY,
) -> np.ndarray:
    """The named descriptors of one crystal, float32, in the order of ``names``.

    ``lattice`` holds the cell vectors as rows (Å). Raises ``ValueError`` for unknown names
    and :class:`DescriptorError` (a ``ValueError``) when the structure cannot be described.
    """
    names = list(names)
    unknown = [name for name in names if name not in DESCRIPTORS]
    if unknown:
        raise ValueError(f"unknown descriptor(s) {unknown}; valid: {', '.join(DESCRIPTORS)}")
    numbers, frac, cell = _validated(atomic_number, frac_coords, lattice)

    values: dict[str, float] = {}
    a, b, c, alpha, beta, gamma = lattice_parameters(cell)
    values.update(a=a, b=b, c=c, alpha=alpha, beta=beta, gamma=gamma)
    values["volume_per_atom"] = cell_volume(cell) / len(numbers)
    values["density"] = density(numbers, cell)

    wanted = frozenset(names) & frozenset(ZEO_DESCRIPTORS)
    if wanted:
        values.update(zeo_descriptors(numbers, frac, cell, wanted, zeo_settings))
        if "asa_m2_cm3" in values:
            # m²/cm³ ÷ g/cm³; our density rather than Zeo++'s mass table, for consistency.
            values["asa_m2_g"] = values["asa_m2_cm3"] / values["density"]
    wanted = frozenset(names) & frozenset(GEOMETRIC_DESCRIPTORS)
    if wanted:
        values.update(geometric_descriptors(numbers, frac, cell, wanted, geometric_settings))
        if "surface_area_m2_cm3_geometric" in values:
            values["surface_area_m2_g_geometric"] = (
                values["surface_area_m2_cm3_geometric"] / values["density"]
            )
    return np.array([values[name] for name in names], dtype=np.float32)
