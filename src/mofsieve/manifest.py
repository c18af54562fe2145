"""Input discovery: CIF files, folders, globs, tar archives and packaged datasets → manifest.

A manifest has one row per CIF: ``mof_id,source,sha1,n_bytes,shard``. ``source`` is a path,
or ``ARCHIVE::MEMBER`` for a member read straight out of a tar archive (clusters hate 10⁵
small files, so archives are never unpacked to disk). Shards are consecutive runs of
``shard_size`` rows, numbered from 0, so that 300,000 CIFs make hundreds of jobs.

This module is the one owner of the manifest format (:func:`read_manifest`,
:func:`write_manifest`, :func:`shard_count`), of the ``ARCHIVE::MEMBER`` notation
(:func:`split_source`, :func:`archive_source`) and of reading a source's bytes
(:func:`iter_source_bytes`). It must stay cheap to import (no torch, no h5py): Snakemake
imports it while it parses the workflow.
"""

from __future__ import annotations

import argparse
import csv
import glob
import hashlib
import logging
import os
import tarfile
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from mofsieve.atomic import write_csv_atomic

log = logging.getLogger(__name__)

ARCHIVE_SEPARATOR = "::"
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tbz2")
PACKAGE_PREFIX = "core-mof:"
MANIFEST_COLUMNS = ("mof_id", "source", "sha1", "n_bytes", "shard")


class InputError(ValueError):
    """Inputs that cannot make a manifest (nothing found, duplicate ids, unknown dataset)."""


@dataclass(frozen=True)
class ManifestRow:
    mof_id: str
    source: str
    sha1: str
    n_bytes: int
    shard: int


def split_source(source: str) -> tuple[str | None, str]:
    """``ARCHIVE::MEMBER`` → ``(ARCHIVE, MEMBER)``; a plain path → ``(None, path)``.

    The split is at the *last* ``::``: an archive path may contain ``::``, a member name may
    not (:func:`archive_source` refuses one, so every source it makes splits back exactly).
    """
    archive, sep, member = source.rpartition(ARCHIVE_SEPARATOR)
    return (archive, member) if sep else (None, source)


def archive_source(archive: str | os.PathLike[str], member: str) -> str:
    """The source string of ``member`` of ``archive``: ``ARCHIVE::MEMBER``.

    Raises ``InputError`` for a member name containing ``::``, which could not be split back.
    """
    if ARCHIVE_SEPARATOR in member:
        raise InputError(
            f"{archive}: member {member!r} contains {ARCHIVE_SEPARATOR!r}, which mofsieve "
            "uses to separate an archive from its member; rename it in the archive"
        )
    return f"{archive}{ARCHIVE_SEPARATOR}{member}"


def is_archive(path: str | os.PathLike[str]) -> bool:
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


def is_cif(name: str) -> bool:
    return name.lower().endswith(".cif")


def mof_id_of(name: str) -> str:
    """The id of a CIF is its file stem: ``dir/ABAVIJ_clean.cif`` → ``ABAVIJ_clean``."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return base[: -len(".cif")] if is_cif(base) else base


def package_archive(spec: str) -> Path:
    """The tar archive behind ``core-mof:DATASET`` (the PyPI package ``core-mof``)."""
    dataset = spec[len(PACKAGE_PREFIX) :]
    try:
        import CoRE_MOF
        from CoRE_MOF import data as package_data
    except ImportError as err:
        raise InputError(
            f"{spec}: the PyPI package core-mof is not installed (pip install core-mof)"
        ) from err
    if dataset not in CoRE_MOF.list_datasets():
        raise InputError(f"{spec}: unknown dataset; core-mof has {CoRE_MOF.list_datasets()}")
    return Path(str(package_data.__path__[0])) / f"{dataset}.tar.xz"


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()


def iter_archive(archive: Path, members: set[str] | None = None) -> Iterator[tuple[str, bytes]]:
    """(member name, bytes) of the CIFs in a tar archive, streamed in archive order.

    With ``members``, only those are read, and reading stops once all were seen. An
    uncompressed ``.tar`` is then read with seeks over the other members' data; a compressed
    one has to be decompressed from its start (so for 10⁵+ CIFs, plain ``.tar`` archives or
    several smaller archives make shard jobs cheaper).

    Holds one member header at a time, however deep in the archive the wanted members lie.
    """
    wanted = None if members is None else set(members)
    seekable = wanted is not None and str(archive).lower().endswith(".tar")
    with tarfile.open(archive, mode="r:" if seekable else "r|*") as tar:
        while (member := tar.next()) is not None:
            # tarfile appends every header it reads to tar.members; a shard job deep in a
            # 12,500-member archive (a 10⁵-CIF screen) would hold all the headers before
            # its own members, so its memory would grow with the screen. None is needed
            # again: a member is read right after its header.
            tar.members.clear()
            if not member.isfile() or not is_cif(member.name):
                continue
            if wanted is not None and member.name not in wanted:
                continue
            handle = tar.extractfile(member)
            if handle is None:
                continue
            yield member.name, handle.read()
            if wanted is not None:
                wanted.discard(member.name)
                if not wanted:
                    return


def _expand_input(item: str) -> Iterator[tuple[str, bytes]]:
    """(source, bytes) for every CIF one command-line input names."""
    if item.startswith(PACKAGE_PREFIX):
        archive = package_archive(item)
        for name, data in iter_archive(archive):
            yield archive_source(archive, name), data
        return
    path = Path(item)
    if path.is_file() and is_archive(path):
        for name, data in iter_archive(path):
            yield archive_source(path, name), data
        return
    if path.is_file():
        yield str(path), path.read_bytes()
        return
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and is_cif(p.name))
    else:
        found = sorted(Path(p) for p in glob.glob(item, recursive=True))
        found = [p for p in found if p.is_file() and (is_cif(p.name) or is_archive(p))]
    if not found and not path.exists():
        raise InputError(f"{item}: no such file, folder, glob match or core-mof dataset")
    for p in found:
        yield from _expand_input(str(p)) if is_archive(p) else [(str(p), p.read_bytes())]


def build_manifest(inputs: Sequence[str], shard_size: int) -> list[ManifestRow]:
    """Rows for every CIF the inputs name, in input order; duplicate ids are an error."""
    if shard_size < 1:
        raise InputError(f"shard size must be at least 1, not {shard_size}")
    rows: list[ManifestRow] = []
    seen: dict[str, str] = {}
    for item in inputs:
        n_before = len(rows)
        for source, data in _expand_input(item):
            mof_id = mof_id_of(split_source(source)[1])
            if mof_id in seen:
                raise InputError(f"duplicate mof_id {mof_id!r}: {seen[mof_id]} and {source}")
            seen[mof_id] = source
            rows.append(
                ManifestRow(mof_id, source, _sha1(data), len(data), len(rows) // shard_size)
            )
        if len(rows) == n_before:
            log.warning("%s: no CIFs found", item)
    if not rows:
        raise InputError(f"no CIF files found in {list(inputs)}")
    return rows


def write_manifest(rows: Iterable[ManifestRow], path: str | os.PathLike[str]) -> Path:
    return write_csv_atomic(
        path, MANIFEST_COLUMNS, ([r.mof_id, r.source, r.sha1, r.n_bytes, r.shard] for r in rows)
    )


def _manifest_records(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) of a manifest CSV, after checking its header."""
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in MANIFEST_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise InputError(f"{path} is not a mofsieve manifest (missing columns {missing})")
        for row in reader:
            yield reader.line_num, row


def _integer(path: str | os.PathLike[str], line: int, row: dict[str, str], column: str) -> int:
    try:
        return int(row[column])
    except (TypeError, ValueError):
        raise InputError(
            f"{path}:{line}: {column} is {row[column]!r}, not a whole number"
        ) from None


def read_manifest(
    path: str | os.PathLike[str], shards: Collection[int] | None = None
) -> list[ManifestRow]:
    """The rows of a manifest, in order (only those of ``shards`` when given: a job of a few
    shards then holds its own rows, not a 10⁵-row manifest); ``InputError`` naming the file
    if it is not one."""
    wanted = None if shards is None else set(shards)
    rows = []
    for line, row in _manifest_records(path):
        shard = _integer(path, line, row, "shard")
        if wanted is None or shard in wanted:
            rows.append(
                ManifestRow(
                    row["mof_id"],
                    row["source"],
                    row["sha1"],
                    _integer(path, line, row, "n_bytes"),
                    shard,
                )
            )
    return rows


def shard_count(path: str | os.PathLike[str]) -> int:
    """Number of shards of a manifest: its largest ``shard`` + 1 (0 for a header-only file).

    Streams the file without keeping rows. Raises ``InputError`` naming the file if it is not
    a manifest.
    """
    return max(
        (_integer(path, line, row, "shard") + 1 for line, row in _manifest_records(path)),
        default=0,
    )


def iter_source_bytes(sources: Iterable[str]) -> Iterator[tuple[str, bytes | OSError]]:
    """``(source, bytes)`` of each source, in the order given, or ``(source, OSError)`` for
    one that cannot be read. A source is a path or ``ARCHIVE::MEMBER``; the members of one
    archive are read in a single streaming pass over it, before anything is yielded.
    """
    sources = list(sources)
    by_archive: dict[str, set[str]] = {}
    for source in sources:
        archive, member = split_source(source)
        if archive is not None:
            by_archive.setdefault(archive, set()).add(member)
    contents: dict[str, bytes | OSError] = {}
    for archive, members in by_archive.items():
        try:
            for name, data in iter_archive(Path(archive), members):
                contents[archive_source(archive, name)] = data
        except (OSError, tarfile.TarError) as err:
            for member in members:
                contents.setdefault(archive_source(archive, member), OSError(f"{archive}: {err}"))
    for source in sources:
        archive, member = split_source(source)
        if archive is not None:
            yield (
                source,
                contents.get(source, FileNotFoundError(f"no CIF member {member!r} in {archive}")),
            )
        else:
            try:
                yield source, Path(source).read_bytes()
            except OSError as err:
                yield source, err


def read_sources(rows: Sequence[ManifestRow]) -> Iterator[tuple[ManifestRow, bytes | OSError]]:
    """The bytes of each manifest row's CIF (or the OSError reading it), in manifest order."""
    for row, (_, data) in zip(rows, iter_source_bytes(r.source for r in rows), strict=True):
        yield row, data


def add_input_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """INPUT… and --shard-size, shared by `mofsieve manifest` and `mofsieve featurize`."""
    parser.add_argument(
        "inputs",
        nargs="+" if required else "*",
        metavar="INPUT",
        help="CIF files, folders (recursive), globs, tar archives, or core-mof:DATASET",
    )
    parser.add_argument(
        "--shard-size", type=int, default=1000, help="CIFs per shard (default 1000)"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_input_arguments(parser)
    parser.add_argument("--out", required=True, help="manifest CSV to write")


def run(args: argparse.Namespace) -> int:
    try:
        rows = build_manifest(args.inputs, args.shard_size)
    except InputError as err:
        log.error("%s", err)
        return 2
    write_manifest(rows, args.out)
    n_shards = rows[-1].shard + 1
    log.info(
        "%d CIFs in %d shards of up to %d → %s", len(rows), n_shards, args.shard_size, args.out
    )
    return 0
