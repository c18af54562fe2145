from __future__ import annotations

from pathlib import Path

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
