from __future__ import annotations

import csv
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from mofsieve.cli import main
from mofsieve.manifest import InputError, build_manifest, iter_archive, package_archive

REPO = Path(__file__).resolve().parents[1]
MOFSIEVE = [sys.executable, "-m", "mofsieve.cli"]


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def shard_contents(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path) as h5:
        return {k: h5[k][()] for k in h5}


def assert_same_shards(a: Path, b: Path) -> None:
    names = sorted(p.name for p in a.glob("shard-*.h5"))
    assert names and names == sorted(p.name for p in b.glob("shard-*.h5"))
    for name in names:
        left, right = shard_contents(a / name), shard_contents(b / name)
        assert left.keys() == right.keys()
        for key in left:
            np.testing.assert_array_equal(left[key], right[key], err_msg=f"{name}:{key}")


def test_every_broken_cif_is_recorded_and_the_rest_go_on(tmp_path, test_data):
    out = tmp_path / "out"
    folders = [str(test_data / "good"), str(test_data / "broken")]  # not checks/: test_checks
    assert main(["featurize", *folders, "--out", str(out), "--shard-size", "7", "--jobs", "1"]) == 0
    manifest = read_csv(out / "manifest.csv")
    n_good = len(list((test_data / "good").glob("*.cif")))
    n_broken = len(list((test_data / "broken").glob("*.cif")))
    assert len(manifest) == n_good + n_broken
    failures = read_csv(out / "failures.csv")
    assert sorted(f["mof_id"] for f in failures) == sorted(
        p.stem for p in (test_data / "broken").glob("*.cif")
    )
    assert all(f["reason"] and f["stage"] in {"parse", "graph"} for f in failures)
    ids = []
    for shard in sorted(out.glob("shard-*.h5")):
        with h5py.File(shard) as h5:
            ids += [s.decode() for s in h5["ids"][()]]
    assert sorted(ids) == sorted(p.stem for p in (test_data / "good").glob("*.cif"))
    assert {int(r["shard"]) for r in manifest} == {0, 1, 2}
    # kept structures' warnings beside the failures: one file per shard, merged; none here
    assert [read_csv(out / f"warnings-{k:05d}.csv") for k in range(3)] == [[], [], []]
    assert read_csv(out / "warnings.csv") == []
    # every kept structure's framework key (mofsieve.duplicates), one file per shard
    keyed = [r["mof_id"] for k in range(3) for r in read_csv(out / f"frameworks-{k:05d}.csv")]
    assert sorted(keyed) == sorted(ids)
    # a shard without its warnings or framework file is not done: a rerun redoes it (only it)
    (out / "warnings-00001.csv").unlink()
    (out / "frameworks-00002.csv").unlink()
    stamp = {k: (out / f"shard-{k:05d}.h5").stat().st_mtime_ns for k in range(3)}
    assert main(["featurize", *folders, "--out", str(out), "--shard-size", "7", "--jobs", "1"]) == 0
    assert (out / "warnings-00001.csv").is_file() and (out / "frameworks-00002.csv").is_file()
    assert [(out / f"shard-{k:05d}.h5").stat().st_mtime_ns == stamp[k] for k in range(3)] == [
        True, False, False,
    ]  # fmt: skip


def test_archives_globs_and_single_shards_agree(tmp_path, test_data):
    archive = tmp_path / "good.tar.xz"
    with tarfile.open(archive, "w:xz") as tar:
        for cif in sorted((test_data / "good").glob("*.cif")):
            tar.add(cif, arcname=f"cifs/{cif.name}")
    whole = tmp_path / "whole"
    assert (
        main(["featurize", str(archive), "--out", str(whole), "--shard-size", "2", "--jobs", "2"])
        == 0
    )
    manifest = read_csv(whole / "manifest.csv")
    assert manifest[0]["source"].endswith("good.tar.xz::cifs/cartesian_only.cif")
    by_shard = tmp_path / "by_shard"
    for shard in range(3):
        assert (
            main(
                [
                    "featurize",
                    "--manifest",
                    str(whole / "manifest.csv"),
                    "--shard",
                    str(shard),
                    "--out",
                    str(by_shard),
                    "--jobs",
                    "1",
                ]
            )
            == 0
        )
        assert (by_shard / f"failures-{shard:05d}.csv").is_file()
    assert_same_shards(whole, by_shard)
    globbed = tmp_path / "globbed"
    assert main(["featurize", str(test_data / "good" / "cu_fcc_*.cif"), "--out", str(globbed)]) == 0
    assert len(read_csv(globbed / "manifest.csv")) == 3


def test_duplicate_ids_are_an_error_naming_both_sources(tmp_path, test_data):
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(test_data / "good" / "cu_fcc_p1.cif", other / "cu_fcc_p1.cif")
    with pytest.raises(
        InputError,
        match=r"duplicate mof_id 'cu_fcc_p1'.*good/cu_fcc_p1.cif and .*other/cu_fcc_p1.cif",
    ):
        build_manifest([str(test_data / "good"), str(other)], shard_size=10)
    assert (
        main(["featurize", str(test_data / "good"), str(other), "--out", str(tmp_path / "o")]) == 2
    )


def test_missing_input_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="no such file, folder, glob match"):
        build_manifest([str(tmp_path / "nowhere")], shard_size=10)
    with pytest.raises(InputError, match="unknown dataset"):
        build_manifest(["core-mof:1999"], shard_size=10)


def test_hostile_file_names_flow_through_safely(tmp_path, test_data):
    inputs = tmp_path / "in put"
    inputs.mkdir()
    name = 'we\'ird "name" $(touch PWNED) `touch PWNED2`; rm -rf x.cif'
    shutil.copy(test_data / "good" / "toy_framework_charged.cif", inputs / name)
    out = tmp_path / "out"
    result = subprocess.run(
        [*MOFSIEVE, "featurize", str(inputs / name), "--out", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert not list(tmp_path.rglob("PWNED*"))
    (row,) = read_csv(out / "manifest.csv")
    assert row["mof_id"] == name[: -len(".cif")]
    with h5py.File(out / "shard-00000.h5") as h5:
        assert h5["ids"][0].decode() == row["mof_id"]
    assert [k["mof_id"] for k in read_csv(out / "frameworks-00000.csv")] == [row["mof_id"]]
    assert sorted(p.name for p in out.iterdir()) == [
        "failures-00000.csv",
        "failures.csv",
        "frameworks-00000.csv",
        "manifest.csv",
        "shard-00000.h5",
        "warnings-00000.csv",
        "warnings.csv",
    ]


def _core_mof_subset(tmp_path: Path, n: int) -> Path:
    archive = tmp_path / "subset.tar"
    with tarfile.open(archive, "w") as tar:
        for i, (name, data) in enumerate(iter_archive(package_archive("core-mof:2019-ASR"))):
            path = tmp_path / "cifs" / Path(name).name
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(data)
            tar.add(path, arcname=Path(name).name)
            if i + 1 == n:
                break
    return archive


@pytest.mark.slow
def test_mpi_two_ranks_give_the_same_shards_as_one_process(tmp_path):
    mpiexec = Path(sys.executable).parent / "mpiexec"
    if not mpiexec.exists():
        pytest.skip("mpiexec (PyPI mpich) not installed in this environment")
    archive = _core_mof_subset(tmp_path, 24)
    single, parallel = tmp_path / "single", tmp_path / "mpi"
    assert (
        main(["featurize", str(archive), "--out", str(single), "--shard-size", "5", "--jobs", "1"])
        == 0
    )
    result = subprocess.run(
        [
            str(mpiexec),
            "-n",
            "2",
            *MOFSIEVE,
            "featurize",
            "--mpi",
            str(archive),
            "--out",
            str(parallel),
            "--shard-size",
            "5",
            "--jobs",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "MPI rank 0 of 2" in result.stderr and "MPI rank 1 of 2" in result.stderr
    assert_same_shards(single, parallel)
    assert (parallel / "failures.csv").read_text() == (single / "failures.csv").read_text()


def _complete_or_absent(out: Path, n_cifs: int) -> bool:
    """True if shard 0 is absent, or present and complete (every CIF a graph or a failure)."""
    shard = out / "shard-00000.h5"
    if not shard.exists():
        return True
    with h5py.File(shard) as h5:
        n_graphs = len(h5["ids"])
        assert h5["node_ptr"][-1] == len(h5["atomic_number"])
    return n_graphs + len(read_csv(out / "failures-00000.csv")) == n_cifs


@pytest.mark.slow
def test_a_killed_featurization_leaves_nothing_that_looks_complete(tmp_path):
    n_cifs = 400
    archive = _core_mof_subset(tmp_path, n_cifs)
    manifest = tmp_path / "manifest.csv"
    assert (
        main(["manifest", str(archive), "--out", str(manifest), "--shard-size", str(n_cifs)]) == 0
    )

    def command(out: Path) -> list[str]:
        return [
            *MOFSIEVE,
            "featurize",
            "--manifest",
            str(manifest),
            "--shard",
            "0",
            "--out",
            str(out),
            "--jobs",
            "1",
        ]

    assert subprocess.run(command(tmp_path / "full"), check=False).returncode == 0

    def appeared(pattern: str) -> Callable[[Path], bool]:
        return lambda out: out.is_dir() and any(out.glob(pattern))

    def after(seconds: float) -> Callable[[Path], bool]:
        deadline = time.perf_counter() + seconds
        return lambda out: time.perf_counter() >= deadline

    # kill -9 at the moments that matter, found by watching the output folder rather than by
    # timing alone (a loaded machine makes run times vary twofold): while CIFs are parsed
    # (nothing written yet), once the failures file is in place (it is written first), and
    # while the shard itself is being written under its temporary name.
    moments = {
        "while parsing": lambda: after(1.5),
        "once the failures file is in place": lambda: appeared("failures-00000.csv"),
        "while the shard is written": lambda: appeared(".shard-00000.h5.tmp-*"),
    }
    killed_midway = []
    for i, (moment, make_trigger) in enumerate(moments.items()):
        out = tmp_path / f"killed-{i}"
        proc = subprocess.Popen(command(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        trigger = make_trigger()
        while proc.poll() is None and not trigger(out):
            time.sleep(0.0005)
        alive = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if alive:
            killed_midway.append(moment)
        assert _complete_or_absent(out, n_cifs), f"half-written shard after a kill {moment}"
    assert len(killed_midway) >= 2, f"runs finished before they could be killed: {killed_midway}"
    # Starting again completes the shard, identical to an uninterrupted run.
    assert subprocess.run(command(tmp_path / "killed-0"), check=False).returncode == 0
    assert_same_shards(tmp_path / "full", tmp_path / "killed-0")


@pytest.mark.shared
@pytest.mark.slow
def test_shared_core_cifs_featurize_without_crashes(tmp_path, shared_core):
    archive = shared_core / "cifs.tar.xz"
    members = set()
    for name, _ in iter_archive(archive):
        members.add(name)
        if len(members) == 300:
            break
    subset = tmp_path / "subset.tar"
    with tarfile.open(subset, "w") as tar:
        for name, data in iter_archive(archive, members):
            path = tmp_path / Path(name).name
            path.write_bytes(data)
            tar.add(path, arcname=Path(name).name)
    out = tmp_path / "out"
    assert main(["featurize", str(subset), "--out", str(out), "--jobs", "2"]) == 0
    with h5py.File(out / "shard-00000.h5") as h5:
        n_graphs = len(h5["ids"])
        assert np.isfinite(h5["charge"][()]).all()  # the shared copies carry charges
        assert np.bincount(h5["edge_dst"][: h5["edge_ptr"][1]]).max() == 12
    failures = read_csv(out / "failures.csv")
    assert n_graphs + len(failures) == 300
    assert all(f["reason"] for f in failures)


def test_failure_records_round_trip_and_merge_in_shard_order(tmp_path):
    from mofsieve.failures import Failure, read_failures, write_failures
    from mofsieve.featurize import failures_path, merge_failures

    shard0 = [
        Failure("A", "dir/a b.cif", "parse", 'CIF syntax error: "loop_", line 3, col 1'),
        Failure("B", "x.tar::B.cif", "graph", "two\nlines, and Å"),
    ]
    shard1 = [Failure("C", "c.cif", "read", "cannot read: gone")]
    write_failures(shard0, failures_path(tmp_path, 0))
    write_failures([], failures_path(tmp_path, 1))
    write_failures(shard1, failures_path(tmp_path, 2))
    assert read_failures(failures_path(tmp_path, 0)) == shard0
    assert read_failures(failures_path(tmp_path, 1)) == []
    merged = merge_failures(tmp_path, 3)
    assert merged == tmp_path / "failures.csv"
    assert read_failures(merged) == shard0 + shard1
    assert merged.read_bytes().startswith(b"mof_id,source,stage,reason\n")


def test_a_failure_file_without_its_columns_is_refused_naming_it(tmp_path):
    from mofsieve.failures import FailureFileError, read_failures
    from mofsieve.featurize import failures_path, merge_failures

    bad = failures_path(tmp_path, 1)
    bad.write_text("mof_id,source,reason\nA,a.cif,broken\n")
    failures_path(tmp_path, 0).write_text("mof_id,source,stage,reason\n")
    message = re.escape(f"{bad} is not a mofsieve failure file (missing columns ['stage'])")
    with pytest.raises(FailureFileError, match=message):
        read_failures(bad)
    with pytest.raises(FailureFileError, match=message):
        merge_failures(tmp_path, 2)
    assert not (tmp_path / "failures.csv").exists()


def test_a_missing_archive_member_is_a_read_failure(tmp_path, test_data):
    archive = tmp_path / "good.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(test_data / "good" / "cu_fcc_p1.cif", arcname="cifs/cu_fcc_p1.cif")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"mof_id,source,sha1,n_bytes,shard\ngone,{archive}::cifs/gone.cif,x,1,0\n")
    out = tmp_path / "out"
    assert main(["featurize", "--manifest", str(manifest), "--shard", "0", "--out", str(out)]) == 0
    (failure,) = read_csv(out / "failures-00000.csv")
    assert failure["stage"] == "read"
    assert failure["reason"] == f"cannot read: no CIF member 'cifs/gone.cif' in {archive}"
