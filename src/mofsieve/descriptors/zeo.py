"""The Zeo++ runner: pore descriptors from Zeo++ through the PyPI package ``pyzeo``
(0.1–60 s per CIF), each call run in a forked, time-limited child process.

- ``lcd``, ``pld``: largest cavity / pore-limiting diameter (Å), Zeo++ ``-res``.
- ``void_fraction``: Zeo++ ``-vol`` with a zero probe radius, which is what CoRE MOF 2019's
  ``AV_VF`` column is (checked against the ``core-mof`` package's table; a helium-sized
  1.2–1.4 Å probe gives values 5–7× smaller on ABULOB).
- ``asa_m2_cm3``, ``asa_m2_g``: accessible surface area, Zeo++ ``-sa`` with a 1.65 Å probe,
  the radius that reproduces CoRE MOF 2019's ``ASA_m2_cm3`` (fitted on 8 CIFs; 1.86 Å, the
  usual N2 radius, gives values 3–34 % lower). m²/g is derived by ``compute_descriptors``
  with :func:`mofsieve.descriptors.cell.density`. Note that core-mof's ``cm3_g`` column is in
  fact the density in g/cm³.

Zeo++ runs in a forked child process: it prints its progress to stdout, keeps global tables,
needs files on disk, and on some degenerate Voronoi networks calls ``exit()``, which would
otherwise kill the caller's pool worker. The child writes into a private temporary directory,
reports through a pipe, and is killed after ``ZeoSettings.timeout_s``. Failures become
:class:`DescriptorError`.

Cost (bench/descriptors.py): lcd/pld dominate. pyzeo 0.2.0 reaches Zeo++'s ``-res`` only
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
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mofsieve.descriptors.cell import DescriptorError
from mofsieve.structures import p1_cif_text

ZEO_DESCRIPTORS: tuple[str, ...] = ("lcd", "pld", "void_fraction", "asa_m2_cm3", "asa_m2_g")

# Atoms closer than this (Å) are a broken structure, not chemistry; Zeo++ misbehaves on them.
_MIN_ATOM_DISTANCE_A = 0.1


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
