"""The manifest format, the ARCHIVE::MEMBER notation and reading sources: mofsieve.manifest."""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from mofsieve.manifest import (
    InputError,
    ManifestRow,
    archive_source,
    build_manifest,
    iter_source_bytes,
    read_manifest,
    read_sources,
    shard_count,
    split_source,
    write_manifest,
)

HEADER = "mof_id,source,sha1,n_bytes,shard\n"


def tar(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz" if path.name.endswith(".gz") else "w") as archive:
        for name, data in members.items():
            src = path.parent / "member.tmp"
            src.write_bytes(data)
            archive.add(src, arcname=name)
            src.unlink()
    return path


# --- the manifest format ---------------------------------------------------------------------


def test_manifest_round_trips_and_counts_its_shards(tmp_path: Path) -> None:
    for k in range(5):
        (tmp_path / "cifs" / f"M{k}.cif").parent.mkdir(exist_ok=True)
        (tmp_path / "cifs" / f"M{k}.cif").write_text(f"data_{k}\n")
    rows = build_manifest([str(tmp_path / "cifs")], shard_size=2)
    path = write_manifest(rows, tmp_path / "manifest.csv")
    assert read_manifest(path) == rows
    assert [r.shard for r in rows] == [0, 0, 1, 1, 2]
    assert shard_count(path) == 3


def test_shard_count_is_the_largest_shard_plus_one(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text(HEADER + "A,a,x,1,4\nB,b,x,1,1\n")
    assert shard_count(path) == 5
    path.write_text(HEADER)
    assert shard_count(path) == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is not a mofsieve manifest (missing columns ['mof_id', 'source', 'sha1', "),
        ("mof_id,prediction\nA,1.0\n", "is not a mofsieve manifest (missing columns"),
        (
            "mof_id,source,sha1,n_bytes\nA,a,x,1\n",
            "is not a mofsieve manifest (missing columns ['shard'])",
        ),
    ],
)
def test_a_file_that_is_not_a_manifest_is_refused_naming_it(tmp_path, text, message) -> None:
    path = tmp_path / "predictions.csv"
    path.write_text(text)
    for read in (shard_count, read_manifest):
        with pytest.raises(InputError, match=re.escape(f"{path} {message}")):
            read(path)


def test_a_row_with_a_bad_shard_is_refused_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text(HEADER + "A,a,x,1,0\nB,b,x,1,two\n")
    for read in (shard_count, read_manifest):
        with pytest.raises(InputError, match=re.escape(f"{path}:3: shard is 'two'")):
            read(path)


def test_importing_manifest_stays_cheap() -> None:
    """Snakemake imports it (shard_count) while parsing the workflow: no torch, no h5py."""
    code = (
        "import sys, mofsieve.manifest\n"
        "print(sorted(m for m in ('torch', 'h5py', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- ARCHIVE::MEMBER --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("archive", "member"),
    [
        ("cifs.tar", "ABAVIJ_clean.cif"),
        ("/data/run 1/core.tar.xz", "CoRE/2019-ASR/ABAVIJ_clean.cif"),
        ("/odd::folder/set.tar.gz", "dir/X.cif"),  # '::' in the archive path is fine
    ],
)
def test_archive_source_and_split_source_round_trip(archive: str, member: str) -> None:
    source = archive_source(archive, member)
    assert source == f"{archive}::{member}"
    assert split_source(source) == (archive, member)


def test_a_plain_path_has_no_archive() -> None:
    assert split_source("/data/cifs/ABAVIJ.cif") == (None, "/data/cifs/ABAVIJ.cif")


def test_a_member_name_with_the_separator_cannot_be_addressed(tmp_path: Path) -> None:
    """The split is at the last '::' (so archive paths may hold one); member names may not."""
    assert split_source("a.tar::dir::x.cif") == ("a.tar::dir", "x.cif")
    with pytest.raises(InputError, match=re.escape("member 'dir::x.cif' contains '::'")):
        archive_source("a.tar", "dir::x.cif")
    archive = tar(tmp_path / "set.tar", {"ok.cif": b"data_ok\n", "bad::name.cif": b"data_b\n"})
    with pytest.raises(InputError, match=re.escape(f"{archive}: member 'bad::name.cif'")):
        build_manifest([str(archive)], shard_size=10)


# --- reading sources --------------------------------------------------------------------------


def test_sources_are_read_in_order_from_files_and_archives(tmp_path: Path) -> None:
    plain = tmp_path / "P.cif"
    plain.write_bytes(b"data_P\n")
    archive = tar(
        tmp_path / "odd::dir" / "cifs.tar.gz", {"set/X.cif": b"data_X\n", "set/Y.cif": b"data_Y\n"}
    )
    sources = [
        archive_source(archive, "set/Y.cif"),
        str(plain),
        archive_source(archive, "set/X.cif"),
    ]
    assert list(iter_source_bytes(sources)) == [
        (sources[0], b"data_Y\n"),
        (sources[1], b"data_P\n"),
        (sources[2], b"data_X\n"),
    ]


def test_unreadable_sources_give_their_error_in_place(tmp_path: Path) -> None:
    archive = tar(tmp_path / "cifs.tar", {"set/X.cif": b"data_X\n"})
    sources = [
        archive_source(archive, "set/Y.cif"),
        str(tmp_path / "absent.cif"),
        archive_source(tmp_path / "absent.tar", "X.cif"),
        archive_source(archive, "set/X.cif"),
    ]
    got = dict(iter_source_bytes(sources))
    assert got[sources[3]] == b"data_X\n"
    assert isinstance(got[sources[0]], FileNotFoundError)
    assert str(got[sources[0]]) == f"no CIF member 'set/Y.cif' in {archive}"
    assert isinstance(got[sources[1]], FileNotFoundError)
    assert isinstance(got[sources[2]], OSError) and str(tmp_path / "absent.tar") in str(
        got[sources[2]]
    )


def test_manifest_rows_are_read_with_the_same_reader(tmp_path: Path) -> None:
    archive = tar(tmp_path / "cifs.tar", {"X.cif": b"data_X\n"})
    rows = [
        ManifestRow("X", archive_source(archive, "X.cif"), "s", 7, 0),
        ManifestRow("Z", archive_source(archive, "Z.cif"), "s", 7, 0),
    ]
    got = list(read_sources(rows))
    assert [row for row, _ in got] == rows
    assert got[0][1] == b"data_X\n" and isinstance(got[1][1], FileNotFoundError)


def test_a_job_reads_only_the_rows_of_its_shards(tmp_path: Path, test_data: Path) -> None:
    """A featurize job of a few shards keeps its own rows, not the whole manifest."""
    rows = build_manifest([str(test_data / "good")], shard_size=2)
    path = tmp_path / "manifest.csv"
    write_manifest(rows, path)
    assert {r.shard for r in rows} == {0, 1, 2}
    assert read_manifest(path, [2, 0]) == [r for r in rows if r.shard in (0, 2)]
    assert read_manifest(path, [7]) == []
    assert read_manifest(path, None) == rows


def test_featurize_of_a_shard_not_in_the_manifest_says_so(
    tmp_path: Path, test_data: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from mofsieve.cli import main

    path = tmp_path / "m.csv"
    write_manifest(build_manifest([str(test_data / "good")], 2), path)
    out = tmp_path / "graphs"
    assert main(["featurize", "--manifest", str(path), "--shard", "7", "--out", str(out)]) == 2
    assert "shard 7 is not in the manifest" in caplog.text
    assert not (out / "shard-00007.h5").exists()
