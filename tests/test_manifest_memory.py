"""A shard job's memory must not grow with the size of the screen (issue 13).

In a 10⁵-CIF screen each tar archive holds ~12,500 members, and a late shard's members lie
deep in it. Reading them must not keep the headers of every member walked past (tarfile
does, by default), or a featurize job's memory grows with N.
"""

from __future__ import annotations

import io
import random
import tarfile
import tracemalloc
from pathlib import Path

import pytest

from mofsieve.manifest import archive_source, iter_archive, iter_source_bytes

WANTED = "DEEP_clean.cif"
WANTED_BYTES = b"data_DEEP\n_cell_length_a 10.0\n" * 40


def _archive(path: Path, n_before: int) -> Path:
    """``n_before`` small members, then :data:`WANTED`. Their bytes are random: a gzip
    stream of repetitive members inflates each chunk it reads to MBs, which would swamp what
    the tests measure."""
    noise = random.Random(0)
    with tarfile.open(path, "w:gz" if path.name.endswith(".gz") else "w") as tar:
        for k in range(n_before):
            body = noise.randbytes(400)
            info = tarfile.TarInfo(f"filler_{k:05d}_with_a_csd_like_long_name_clean.cif")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
        info = tarfile.TarInfo(WANTED)
        info.size = len(WANTED_BYTES)
        tar.addfile(info, io.BytesIO(WANTED_BYTES))
    return path


def _peak_reading_wanted(archive: Path) -> int:
    """Peak Python heap (bytes) while reading the one wanted member, as a shard job does."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        found = list(iter_source_bytes([archive_source(archive, WANTED)]))
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert found == [(archive_source(archive, WANTED), WANTED_BYTES)]
    return peak


@pytest.mark.parametrize("suffix", [".tar", ".tar.gz"])  # seeking and streaming reads
def test_reading_a_deep_member_holds_no_headers_of_the_members_before_it(
    tmp_path: Path, suffix: str
) -> None:
    shallow = _archive(tmp_path / f"shallow{suffix}", n_before=10)
    deep = _archive(tmp_path / f"deep{suffix}", n_before=8_000)
    # 8,000 kept TarInfo headers are ~3.5 MB; besides them a read needs the same at any depth
    # (buffers, one header, the member's bytes)
    grown = _peak_reading_wanted(deep) - _peak_reading_wanted(shallow)
    assert grown < 256 * 1024, f"reading 8,000 members deep took {grown / 1e6:.1f} MB more"


def test_a_whole_archive_is_still_read_in_order_with_every_cif(tmp_path: Path) -> None:
    archive = _archive(tmp_path / "all.tar", n_before=3)
    names = [name for name, _ in iter_archive(archive)]
    assert names == [f"filler_{k:05d}_with_a_csd_like_long_name_clean.cif" for k in range(3)] + [
        WANTED
    ]
    picked = dict(iter_archive(archive, {WANTED, names[1]}))
    assert sorted(picked) == sorted([WANTED, names[1]])
    assert picked[WANTED] == WANTED_BYTES and len(picked[names[1]]) == 400
