"""The shared builder of the compiled kernels (mofsieve.native_build), on a small library of
its own: built once into the cache and reused, named after its sources, headers and flags,
and where the compiler fails or the library lacks a function, None, one warning and nothing
left in the cache. (The three real libraries are tested through their modules in
test_fused.py, test_descriptor_kernels.py and test_energy_grid.py.)"""

from __future__ import annotations

import ctypes
import logging
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from mofsieve import native_build
from mofsieve.native_build import CtypesLibrary

SOURCE = """#include "offset.h"
extern "C" int mofsieve_test_add(int a, int b) { return a + b + kOffset; }
"""
# A compiler that runs and fails, as a broken toolchain or a full disk does: it leaves half an
# output behind, says why on stderr between lines of context (as g++ does) and counts its
# calls.
FAILING_COMPILER = """#!/bin/sh
echo call >> "$(dirname "$0")/calls"
sleep 0.3
while [ $# -gt 0 ]; do
  if [ "$1" = "-o" ]; then printf 'half a library' > "$2"; fi
  shift
done
printf 'add.cpp: In function f:\nadd.cpp:2:1: error: the disk is on fire\n    2 | int\n      | ^~~\n' >&2
exit 1
"""
log = logging.getLogger("mofsieve.tests.native_build")


@pytest.fixture
def cache(monkeypatch, tmp_path) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(native_build.CACHE, str(folder))
    return folder


def _library(folder: Path, symbol: str = "mofsieve_test_add", **flags: list[str]) -> CtypesLibrary:
    source, header = folder / "add.cpp", folder / "offset.h"
    if not source.exists():
        source.write_text(SOURCE)
        header.write_text("constexpr int kOffset = 0;\n")
    return CtypesLibrary(
        "mofsieve_test",
        flags=flags.get("flags", ["-O1", "-std=c++17"]),
        symbols={symbol: ([ctypes.c_int, ctypes.c_int], ctypes.c_int)},
        sources=[source],
        headers=[header],
        switch="MOFSIEVE_TEST_KERNELS",
        subject="test kernels",
        fallback="plain Python adds instead",
        logger=log,
    )


@pytest.fixture
def compiler() -> None:
    if not native_build.compiler_available():
        pytest.skip("no C++ compiler on this machine: nothing can be built")


@pytest.fixture
def failing_compiler(monkeypatch, tmp_path) -> Path:
    script = tmp_path / "bin" / "broken-c++"
    script.parent.mkdir()
    script.write_text(FAILING_COMPILER)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("CXX", str(script))
    return script.parent / "calls"


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_built_once_into_the_cache_with_its_signatures_then_reused(
    compiler, cache, tmp_path, monkeypatch
) -> None:
    library = _library(tmp_path)
    add = library.get()
    assert add is not None and add.mofsieve_test_add(2, 3) == 5
    with pytest.raises(ctypes.ArgumentError, match="argument 1"):
        add.mofsieve_test_add(2.5, 3)  # the signature was bound: no silent float → int
    (built,) = cache.iterdir()  # the library, no build folder
    assert built == library.path(library.spec()) and built.name.startswith("mofsieve_test_")

    def no_build(*args):
        raise AssertionError("rebuilt although the cache holds the library")

    again = _library(tmp_path)  # a new process's view
    monkeypatch.setattr(again, "build_in", no_build)
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))  # reused without a compiler
    reused = again.get()
    assert reused is not None and reused.mofsieve_test_add(40, 2) == 42


def test_the_name_follows_sources_headers_and_flags(tmp_path) -> None:
    library = _library(tmp_path)
    name = library.spec().name
    assert _library(tmp_path).spec().name == name  # stable
    assert _library(tmp_path, flags=["-O2", "-std=c++17"]).spec().name != name
    (tmp_path / "offset.h").write_text("constexpr int kOffset = 1;\n")
    assert library.spec().name != name  # an included header changed: a new library


def test_a_failing_compiler_gives_none_one_warning_and_leaves_nothing(
    cache, tmp_path, failing_compiler, caplog
) -> None:
    cache.mkdir()
    abandoned, live = cache / ".build-killed", cache / ".build-running"
    for folder in (abandoned, live):
        folder.mkdir()
    os.utime(abandoned, (time.time() - 2 * 3600,) * 2)  # an hour old: its process is gone
    library = _library(tmp_path)
    with caplog.at_level(logging.INFO, logger=log.name):
        assert library.get() is None
        assert library.get() is None  # not tried again in this process
    (warning,) = _warnings(caplog)
    assert warning == (  # the error, not the lines around it
        "test kernels unavailable, plain Python adds instead: "
        "add.cpp:2:1: error: the disk is on fire"
    )
    assert failing_compiler.read_text() == "call\n"
    assert list(cache.iterdir()) == [live]  # no half library, no folder of this build


def test_threads_that_ask_together_build_once_and_warn_once(
    cache, tmp_path, failing_compiler, caplog
) -> None:
    library = _library(tmp_path)
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(library.get())) for _ in range(4)]
    with caplog.at_level(logging.WARNING, logger=log.name):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert got == [None] * 4
    assert failing_compiler.read_text() == "call\n"
    assert len(_warnings(caplog)) == 1


def test_a_library_without_its_function_is_not_cached(compiler, cache, tmp_path, caplog) -> None:
    library = _library(tmp_path, symbol="mofsieve_test_missing")
    with caplog.at_level(logging.WARNING, logger=log.name):
        assert library.get() is None
    (warning,) = _warnings(caplog)
    assert warning.startswith("test kernels unavailable") and "mofsieve_test_missing" in warning
    assert list(cache.iterdir()) == []  # the next process builds again rather than trust it


def test_the_switches_turn_it_off_without_building(cache, tmp_path, monkeypatch) -> None:
    library = _library(tmp_path)
    builds: list[Path] = []

    def refuse(spec, folder):
        builds.append(folder)
        raise OSError("no build in this test")

    monkeypatch.setattr(library, "build_in", refuse)
    monkeypatch.setenv(library.switch, "0")
    assert library.get() is None
    monkeypatch.delenv(library.switch)
    with library.switched_off():
        with library.switched_off():
            assert library.get() is None
        assert library.get() is None  # leaving the inner block does not switch it back on
    assert not builds
    assert library.get() is None and len(builds) == 1  # on again: it tried to build
