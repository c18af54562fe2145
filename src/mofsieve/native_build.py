"""Building, caching and loading the project's compiled C++ kernels, one owner for all of them.

Each kernel library (the fused GNN layers in :mod:`mofsieve.fused`, the geometric descriptors
in :mod:`mofsieve.descriptors.native`, the energy grid in
:mod:`mofsieve.descriptors.energy_native`, the neighbour graph's top-k in
:mod:`mofsieve.graph_native`) is one :class:`NativeLibrary`: built the first time
it is needed and kept in ``$MOFSIEVE_KERNEL_CACHE`` (default ``~/.cache/mofsieve``) under a
name that changes with its sources, its compiler flags and (for a torch extension) the torch
version, so a library built on one node is reused by every later process that would build the
same one, compiler or not. Each process builds in a private ``.build-*`` folder of the cache
and renames the loaded result into place: jobs that start together never wait on each other's
lock, a job killed mid-build leaves nothing the next one would trust (its folder is removed by
a later build once an hour old), and a library that does not load is never cached.

Where a library cannot be built or loaded, :meth:`NativeLibrary.get` returns None and says so
once in its module's log; the caller then runs its plain implementation (same numbers,
slower). An environment switch (``MOFSIEVE_..._KERNELS=0``) and
:meth:`NativeLibrary.switched_off` turn a library off.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib.util
import logging
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Generic, TypeVar

CACHE = "MOFSIEVE_KERNEL_CACHE"
# Vector flags for the ctypes libraries on x86-64 CPUs with AVX2 and FMA; elsewhere the
# baseline build (same numbers: the sources state their floating-point rules).
X86_VECTOR_FLAGS = ["-mavx2", "-mfma"]
_ABANDONED_AFTER_S = 3600.0
_BUILD_TIMEOUT_S = 300.0
# What a build or load that cannot succeed raises: no compiler or a failed compile, a
# library that will not load, a symbol it lacks.
_UNAVAILABLE = (ImportError, OSError, RuntimeError, AttributeError, subprocess.SubprocessError)

Library = TypeVar("Library")


def cache_dir() -> Path:
    """Where the compiled libraries are kept (``$MOFSIEVE_KERNEL_CACHE``)."""
    return Path(os.environ.get(CACHE) or Path.home() / ".cache" / "mofsieve")


def compiler_command() -> list[str]:
    """The C++ compiler command (``$CXX``, else ``c++``); OSError when it is not on PATH."""
    command = shlex.split(os.environ.get("CXX") or "c++")
    if not command or shutil.which(command[0]) is None:
        raise OSError(f"no C++ compiler ({os.environ.get('CXX') or 'c++'!r}) on PATH")
    return command


def compiler_available() -> bool:
    """Whether a build can be attempted (for tests and diagnostics)."""
    try:
        compiler_command()
    except OSError:
        return False
    return True


def x86_with_avx2_fma() -> bool:
    """Whether this CPU is x86-64 with AVX2 and FMA (the ctypes libraries' vector build)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next((line for line in cpuinfo.splitlines() if line.startswith("flags")), "")
    return {"avx2", "fma"} <= set(flags.split())


@dataclass(frozen=True)
class BuildSpec:
    """What one build on this machine is: the library's name (``<stem>_<digest>``, its file
    in the cache is ``<name>.so``) and the compiler flags."""

    name: str
    flags: tuple[str, ...]


class NativeLibrary(Generic[Library]):
    """One compiled library: its build spec, its place in the cache, the atomic build, the
    load, the one-time warning when it is unavailable, and the switches that turn it off.

    ``stem``: the library's file name before the digest. ``sources``: what is compiled;
    ``headers``: what they include (both go into the name). ``switch``: the environment
    variable that turns it off with ``0``. ``subject`` and ``fallback``: the log's words for
    the library and for what runs without it. ``logger``: the using module's log.
    Subclasses say how the library is built and opened."""

    def __init__(
        self,
        stem: str,
        *,
        sources: Sequence[Path],
        headers: Sequence[Path] = (),
        switch: str,
        subject: str,
        fallback: str,
        logger: logging.Logger,
        build_time: str = "",
    ) -> None:
        self.stem = stem
        self.sources = tuple(sources)
        self.headers = tuple(headers)
        self.switch = switch
        self.subject = subject
        self.fallback = fallback
        self.log = logger
        self._build_time = build_time
        self._off = False
        self._loaded: tuple[Library | None] | None = None  # (library or None) once tried
        self._loading = threading.Lock()  # threads of one process build once, warn once

    # -- what subclasses provide ----------------------------------------------------------

    def flags(self) -> list[str] | None:
        """The compiler flags for this machine, or None where no build fits it."""
        raise NotImplementedError

    def version_key(self) -> str:
        """Anything besides the sources and flags that a built library depends on."""
        return ""

    def build_in(self, spec: BuildSpec, folder: Path) -> tuple[Path, Library]:
        """Build the library in the private ``folder`` and load it from there: (its file,
        the loaded library)."""
        raise NotImplementedError

    def open(self, spec: BuildSpec, path: Path) -> Library:
        """Load the library built earlier at ``path``."""
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------

    def spec(self) -> BuildSpec | None:
        """The build for this machine, or None where none fits; OSError when a source is
        missing (not installed)."""
        flags = self.flags()
        if flags is None:
            return None
        digest = hashlib.sha256()
        for path in (*self.sources, *self.headers):
            digest.update(path.read_bytes())
        digest.update(" ".join(flags).encode())
        digest.update(self.version_key().encode())
        return BuildSpec(f"{self.stem}_{digest.hexdigest()[:16]}", tuple(flags))

    def path(self, spec: BuildSpec) -> Path:
        """The library's file in the cache."""
        return cache_dir() / f"{spec.name}.so"

    def get(self) -> Library | None:
        """The loaded library, or None: switched off, no build for this machine, or the build
        or load failed (said once in the log)."""
        if self._off or os.environ.get(self.switch, "1") == "0":
            return None
        loaded = self._loaded
        if loaded is None:
            with self._loading:
                if self._loaded is None:
                    self._loaded = (self._load(),)
                loaded = self._loaded
        return loaded[0]

    def forget(self) -> None:
        """Load again on the next :meth:`get`, as a new process would (tests)."""
        self._loaded = None

    @contextlib.contextmanager
    def switched_off(self) -> Iterator[None]:
        """:meth:`get` gives None inside this block (tests and benchmarks compare the two)."""
        before, self._off = self._off, True
        try:
            yield
        finally:
            self._off = before

    def _load(self) -> Library | None:
        try:
            spec = self.spec()
            if spec is None:
                self.log.info("no %s for this CPU, %s", self.subject, self.fallback)
                return None
            target = self.path(spec)
            if target.is_file():
                return self.open(spec, target)
            return self._build(spec, target)
        except _UNAVAILABLE as err:
            self.log.warning("%s unavailable, %s: %s", self.subject, self.fallback, _why(err))
            return None

    def _build(self, spec: BuildSpec, target: Path) -> Library:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_abandoned_builds(target.parent)
        took = f", {self._build_time}" if self._build_time else ""
        self.log.info("building the %s (once per machine%s) into %s", self.subject, took, target)
        with tempfile.TemporaryDirectory(prefix=".build-", dir=target.parent) as folder:
            built, library = self.build_in(spec, Path(folder))
            os.replace(built, target)  # loaded from the folder: only a working library lands
        return library


def _why(err: Exception) -> str:
    """One line on why a build or load failed: the compiler's first error (the cause; its
    last lines are often consequences, context and carets), else the last line said."""
    said = getattr(err, "stderr", None) or str(err)
    lines = [line.strip() for line in said.splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    return next((line for line in lines if "error:" in line), lines[-1])


def _remove_abandoned_builds(folder: Path) -> None:
    """Build folders of processes killed mid-build (SIGKILL skips the clean-up); one left for
    an hour is no live build's."""
    cutoff = time.time() - _ABANDONED_AFTER_S
    for build_dir in folder.glob(".build-*"):
        with contextlib.suppress(OSError):  # another process may be removing it too
            if build_dir.stat().st_mtime < cutoff:
                shutil.rmtree(build_dir)


# A C function's ctypes signature: (argument types, result type).
Signature = tuple[Sequence[Any], Any]


class CtypesLibrary(NativeLibrary[ctypes.CDLL]):
    """Plain C++ with a C interface, compiled with ``$CXX`` (else ``c++``) into a shared
    library and loaded with :mod:`ctypes` (no Python, numpy or torch headers). ``flags`` go
    before ``-shared -fPIC`` and, on x86-64 CPUs with AVX2 and FMA, :data:`X86_VECTOR_FLAGS`;
    ``symbols``: each C function's signature, bound on load."""

    def __init__(
        self,
        stem: str,
        *,
        flags: Sequence[str],
        symbols: Mapping[str, Signature],
        **library: Any,
    ) -> None:
        super().__init__(stem, **library)
        self._flags = list(flags)
        self.symbols = dict(symbols)

    def flags(self) -> list[str]:
        return [*self._flags, "-shared", "-fPIC"] + (
            X86_VECTOR_FLAGS if x86_with_avx2_fma() else []
        )

    def build_in(self, spec: BuildSpec, folder: Path) -> tuple[Path, ctypes.CDLL]:
        built = folder / f"{spec.name}.so"
        subprocess.run(
            [*compiler_command(), *spec.flags, "-o", str(built), *map(str, self.sources)],
            check=True,
            capture_output=True,
            text=True,
            timeout=_BUILD_TIMEOUT_S,
        )
        return built, self.open(spec, built)

    def open(self, spec: BuildSpec, path: Path) -> ctypes.CDLL:
        library = ctypes.CDLL(str(path))
        for name, (arguments, result) in self.symbols.items():
            function = getattr(library, name)  # AttributeError: a library without it
            function.argtypes = list(arguments)
            function.restype = result
        return library


class TorchExtension(NativeLibrary[ModuleType]):
    """A PyTorch C++ extension (a Python module), built with
    :func:`torch.utils.cpp_extension.load` and ``ninja``. ``flags``: the compiler flags for
    this machine, or None where no build fits; ``link_flags``: the linker's. The torch
    version goes into the name (the extension is built against its headers)."""

    def __init__(
        self,
        stem: str,
        *,
        flags: Callable[[], list[str] | None],
        link_flags: Sequence[str] = (),
        **library: Any,
    ) -> None:
        super().__init__(stem, **library)
        self._flags = flags
        self.link_flags = list(link_flags)

    def flags(self) -> list[str] | None:
        return self._flags()

    def version_key(self) -> str:
        import torch

        return torch.__version__

    def build_in(self, spec: BuildSpec, folder: Path) -> tuple[Path, ModuleType]:
        import ninja
        from torch.utils.cpp_extension import load

        # torch looks for ninja on PATH; the venv's bin is not on it when called by full path.
        path = os.environ.get("PATH", "")
        if ninja.BIN_DIR not in path.split(os.pathsep):
            os.environ["PATH"] = os.pathsep.join([ninja.BIN_DIR, path])
        module = load(
            name=spec.name,
            sources=[str(source) for source in self.sources],
            extra_cflags=list(spec.flags),
            extra_ldflags=self.link_flags,
            build_directory=str(folder),
            verbose=False,
        )
        return folder / f"{spec.name}.so", module

    def open(self, spec: BuildSpec, path: Path) -> ModuleType:
        found = importlib.util.spec_from_file_location(spec.name, path)
        if found is None or found.loader is None:
            raise ImportError(f"not a Python extension module: {path}")
        module = importlib.util.module_from_spec(found)
        found.loader.exec_module(module)
        return module
