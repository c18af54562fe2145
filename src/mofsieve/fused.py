"""Fused CPU kernels for inference (``fused_kernels.cpp``), compiled once per machine.

The layers' per-edge chain (gather, add, activation, weighted sum over neighbours) runs as
one pass per edge instead of one PyTorch operator per step: ``bench/predict.py`` measures
what that gains. They are used only where they give the same numbers as the layers written
in PyTorch (within float32 rounding): CPU, float32, no gradients, evaluation mode, the
shards' regular neighbour layout. Everything else, and every machine where they cannot be
built, runs the PyTorch layers.

Building needs a C++ compiler and ``ninja`` (a Python dependency); it takes about half a
minute, once: the library is kept in ``$MOFSIEVE_KERNEL_CACHE`` (default
``~/.cache/mofsieve``) under a name that changes with the source, the compiler flags and the
torch version. Each process builds in a private folder and renames the result into place,
so jobs that start together on a cluster never wait on each other's lock, and a job killed
mid-build leaves nothing behind that the next one would trust (its folder is removed by a
later build once an hour old). ``MOFSIEVE_FUSED_KERNELS=0`` turns the kernels off.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("fused_kernels.cpp")
SWITCH = "MOFSIEVE_FUSED_KERNELS"
CACHE = "MOFSIEVE_KERNEL_CACHE"

# Vector width as PyTorch itself dispatches on this CPU; ATen's vector headers select their
# implementation from these macros.
_CAPABILITY_FLAGS = {
    "AVX512": [
        "-mavx512f",
        "-mavx512bw",
        "-mavx512vl",
        "-mavx512dq",
        "-mfma",
        "-DCPU_CAPABILITY_AVX512",
        "-DCPU_CAPABILITY=AVX512",
    ],
    "AVX2": ["-mavx2", "-mfma", "-DCPU_CAPABILITY_AVX2", "-DCPU_CAPABILITY=AVX2"],
}
# ATen's parallel_for is OpenMP in PyTorch's CPU builds.
_COMMON_FLAGS = ["-O3", "-fopenmp"]
_ABANDONED_AFTER_S = 3600.0


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE) or Path.home() / ".cache" / "mofsieve")


def _build_spec() -> tuple[str, list[str]] | None:
    """(module name, compiler flags) for this CPU, or None where no vector width fits."""
    import torch

    flags = _CAPABILITY_FLAGS.get(torch.backends.cpu.get_cpu_capability())
    if flags is None:
        return None
    digest = hashlib.sha256()
    digest.update(SOURCE.read_bytes())
    digest.update(" ".join(_COMMON_FLAGS + flags).encode())
    digest.update(torch.__version__.encode())
    return f"mofsieve_fused_{digest.hexdigest()[:16]}", flags


def _import(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _build(name: str, flags: list[str], target: Path) -> ModuleType:
    import ninja
    from torch.utils.cpp_extension import load

    # torch looks for ninja on PATH; the venv's bin is not on it when called by full path.
    path = os.environ.get("PATH", "")
    if ninja.BIN_DIR not in path.split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([ninja.BIN_DIR, path])
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_builds(target.parent)
    log.info("building the fused CPU kernels (once per machine, ~30 s) into %s", target)
    with tempfile.TemporaryDirectory(prefix=".build-", dir=target.parent) as build_dir:
        module = load(
            name=name,
            sources=[str(SOURCE)],
            extra_cflags=_COMMON_FLAGS + flags,
            extra_ldflags=["-fopenmp"],
            build_directory=build_dir,
            verbose=False,
        )
        os.replace(Path(build_dir) / f"{name}.so", target)
    return module


_switched_off = False


@contextlib.contextmanager
def switched_off() -> Iterator[None]:
    """Run the PyTorch layers inside this block (benchmarks and tests compare the two)."""
    global _switched_off
    before, _switched_off = _switched_off, True
    try:
        yield
    finally:
        _switched_off = before


def kernels() -> ModuleType | None:
    """The compiled kernels, or None (switched off, unsupported CPU, or the build failed:
    said once in the log; the PyTorch layers then run, same numbers, slower)."""
    if _switched_off or os.environ.get(SWITCH, "1") == "0":
        return None
    return _load()


def _remove_abandoned_builds(folder: Path) -> None:
    """Build folders of processes killed mid-build (SIGKILL skips the clean-up); one left for
    an hour is no live build's."""
    cutoff = time.time() - _ABANDONED_AFTER_S
    for build_dir in folder.glob(".build-*"):
        with contextlib.suppress(OSError):  # another process may be removing it too
            if build_dir.stat().st_mtime < cutoff:
                shutil.rmtree(build_dir)


@functools.cache
def _load() -> ModuleType | None:
    spec = _build_spec()
    if spec is None:
        log.info("no fused CPU kernels for this CPU's vector width; PyTorch layers run")
        return None
    name, flags = spec
    target = cache_dir() / f"{name}.so"
    try:
        if target.is_file():
            return _import(name, target)
        return _build(name, flags, target)
    except (ImportError, OSError, RuntimeError, subprocess.CalledProcessError) as err:
        log.warning(
            "fused CPU kernels unavailable, the PyTorch layers run instead (same "
            "numbers, slower): %s",
            str(err).strip().splitlines()[-1] if str(err) else err,
        )
        return None


def compiler_available() -> bool:
    """Whether a build can be attempted (for tests and diagnostics)."""
    return shutil.which(os.environ.get("CXX", "c++")) is not None
