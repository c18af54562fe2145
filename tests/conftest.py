from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
TEST_DATA = REPO / "tests" / "data"
SHARED_CORE = REPO.parent / "shared" / "data" / "core2019-co2"


@pytest.fixture(scope="session")
def test_data() -> Path:
    return TEST_DATA


@pytest.fixture(scope="session")
def shared_core() -> Path:
    """The shared CoRE MOF 2019 copy (CIF archive + labels); tests skip when it is absent."""
    if not (SHARED_CORE / "cifs.tar.xz").is_file():
        pytest.skip(f"shared CoRE MOF 2019 data not found at {SHARED_CORE} (developer data only)")
    return SHARED_CORE


@pytest.fixture(scope="session")
def core_mof_graphs() -> Callable[[int, Callable[[Any], bool]], list[Any]]:
    """``core_mof_graphs(count, keep)``, see :func:`_core_mof_graphs`."""
    return _core_mof_graphs


def _core_mof_graphs(count: int, keep: Callable[[Any], bool]) -> list[Any]:
    """The first ``count`` graphs of the core-mof package's CIFs (real CoRE MOF 2019-ASR
    structures, default featurization) for which ``keep(graph)`` holds; skips the test
    without the package, fails it if fewer exist."""
    pytest.importorskip("CoRE_MOF", reason="the core-mof package (pip install '.[demo]')")
    from mofsieve.featurize import featurize_cif
    from mofsieve.manifest import iter_archive, package_archive
    from mofsieve.store import FeaturizationParams
    from mofsieve.structures import StructureError

    found = []
    for name, data in iter_archive(package_archive("core-mof:2019-ASR")):
        try:
            graph = featurize_cif(Path(name).stem, name, data, FeaturizationParams())
        except StructureError:
            continue
        if keep(graph):
            found.append(graph)
        if len(found) == count:
            return found
    pytest.fail(f"fewer than {count} wanted structures among core-mof's CIFs")
