"""Duplicate frameworks: real refinement pairs of CoRE MOF 2019 are one framework, different
arrangements and phases of the same bonds are not, copies of a CIF are grouped through
featurize → rank and flagged once, and rank works without keys."""

from __future__ import annotations

import csv
import logging
import math
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mofsieve import duplicates, rank
from mofsieve.cli import main
from mofsieve.duplicates import (
    FrameworkFileError,
    FrameworkKey,
    duplicate_of,
    framework_key,
    read_framework_keys,
    same_framework,
    write_framework_keys,
)
from mofsieve.featurize import featurize_cif
from mofsieve.store import FeaturizationParams

# CoRE MOF 2019-ASR structures (the core-mof package): refinements of one framework, and
# pairs with the same formula and bonds that are not the same structure
REFINEMENTS = [("KEJQAR", "KEJQAR01"), ("XEKCAT", "XEKCAT01"), ("OKECIQ", "OKECIQ01")]
# Cd–Cd distances 6.95/7.85 Å against 6.69/8.35 Å in cells 0.5 % apart
REARRANGED = ("PEXBIF", "GISMIG")
# breathing (9 % in volume) and spin-crossover (13 %) phases of one compound
PHASES = [("RUGXOI", "RUGXOI01"), ("LUFQUZ01", "LUFQUZ02")]
NAMES = sorted({n for pair in [*REFINEMENTS, REARRANGED, *PHASES] for n in pair})


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def core_cifs() -> dict[str, bytes]:
    """``{refcode: CIF bytes}`` of :data:`NAMES` from the core-mof package."""
    pytest.importorskip("CoRE_MOF", reason="the core-mof package (pip install '.[demo]')")
    from mofsieve.manifest import iter_archive, package_archive

    wanted = {f"{n}_clean.cif" for n in NAMES}
    found = dict(iter_archive(package_archive("core-mof:2019-ASR"), wanted))
    assert set(found) == wanted
    return {name.removesuffix("_clean.cif"): data for name, data in found.items()}


def key_of(mof_id: str, data: bytes) -> FrameworkKey:
    keys: list[FrameworkKey] = []
    featurize_cif(mof_id, mof_id, data, FeaturizationParams(), frameworks=keys)
    assert len(keys) == 1
    return keys[0]


@pytest.fixture(scope="module")
def core_keys(core_cifs: dict[str, bytes]) -> dict[str, FrameworkKey]:
    return {name: key_of(name, data) for name, data in core_cifs.items()}


# ------------------------------------------------------------------------------ the key


@pytest.mark.parametrize(("first", "second"), REFINEMENTS)
def test_refinements_of_one_framework_are_one_framework(
    core_cifs: dict[str, bytes], core_keys: dict[str, FrameworkKey], first: str, second: str
) -> None:
    assert core_cifs[first] != core_cifs[second]  # not copies of one file
    a, b = core_keys[first], core_keys[second]
    assert (a.formula, a.bond_graph) == (b.formula, b.bond_graph)
    assert same_framework(a, b)


@pytest.mark.shared
def test_charged_copies_group_like_and_with_their_uncharged_originals(
    shared_core: Path, core_keys: dict[str, FrameworkKey]
) -> None:
    """The charged CoRE MOF 2019 CIFs of ../shared (partial charges, written out again) give
    the same groups, and the same framework as the package's uncharged copies."""
    from mofsieve.manifest import iter_archive

    pairs = REFINEMENTS[:2]
    wanted = {f"core2019_charged/{n}_clean.cif" for pair in pairs for n in pair}
    found = dict(iter_archive(shared_core / "cifs.tar.xz", wanted))
    assert set(found) == wanted
    charged = {Path(n).name.removesuffix("_clean.cif"): key_of(n, d) for n, d in found.items()}
    for first, second in pairs:
        assert same_framework(charged[first], charged[second])
        assert same_framework(charged[first], core_keys[first])
        assert charged[first].bond_graph == core_keys[first].bond_graph


def test_the_same_bonds_arranged_otherwise_in_nearly_the_same_cell_are_not_merged(
    core_keys: dict[str, FrameworkKey],
) -> None:
    a, b = (core_keys[n] for n in REARRANGED)
    # formula, bonds and cell agree: only the anchor (metal) distances tell them apart
    assert (a.formula, a.bond_graph) == (b.formula, b.bond_graph)
    assert same_framework(a, replace(b, anchor=a.anchor))
    assert abs(a.anchor[0] - b.anchor[0]) > 0.2  # Å (6.95 against 6.69)
    assert not same_framework(a, b)


@pytest.mark.parametrize(("first", "second"), PHASES)
def test_phases_of_different_density_are_not_merged(
    core_keys: dict[str, FrameworkKey], first: str, second: str
) -> None:
    a, b = core_keys[first], core_keys[second]
    assert (a.formula, a.bond_graph) == (b.formula, b.bond_graph)
    assert abs(a.volume - b.volume) / max(a.volume, b.volume) > 0.05
    assert not same_framework(a, b)


def test_the_key_does_not_depend_on_how_the_cif_writes_the_structure(test_data: Path) -> None:
    """fcc copper written out in P1, by symmetry operators and by space-group name."""
    keys = [
        key_of(name, (test_data / "good" / f"{name}.cif").read_bytes())
        for name in ("cu_fcc_p1", "cu_fcc_symmetry", "cu_fcc_spacegroup_name")
    ]
    assert len({(k.formula, k.bond_graph, k.cell, k.anchor) for k in keys}) == 1
    assert keys[0].formula == "Cu4"


def test_the_key_does_not_depend_on_atom_order_or_cell_vectors(core_cifs) -> None:
    """The same crystal with its atoms shuffled and its cell vectors swapped and sheared
    (another basis of the same lattice) has the same key."""
    from mofsieve.checks import find_bonds
    from mofsieve.graphs import neighbour_graph
    from mofsieve.structures import parse_cif

    crystal = parse_cif(core_cifs["XEKCAT"])

    def key(z, frac, lattice) -> FrameworkKey:
        g = neighbour_graph(frac, lattice)
        bonds = find_bonds(z, g.src, g.dst, g.dist, g.image)
        return framework_key("x", z, frac, lattice, bonds.a, bonds.b)

    original = key(crystal.atomic_number, crystal.frac_coords, crystal.lattice)
    order = np.random.default_rng(0).permutation(len(crystal.atomic_number))
    basis = np.array([[0, 1, 0], [1, 0, 0], [0, 1, 1]])  # new vectors b, a, b + c; det −1
    lattice = basis @ crystal.lattice
    frac = (crystal.frac_coords[order] @ np.linalg.inv(basis)) % 1.0
    other = key(crystal.atomic_number[order], frac, lattice)
    assert (other.formula, other.bond_graph) == (original.formula, original.bond_graph)
    np.testing.assert_allclose(other.cell, original.cell, rtol=1e-9)
    np.testing.assert_allclose(other.anchor, original.anchor, rtol=1e-9)
    assert same_framework(original, other, tolerance=1e-6)


def test_the_tolerance_is_relative_and_applies_to_every_length(core_keys) -> None:
    """A cell stretched uniformly by 0.5 % (volume +1.5 %) is the same framework at 2 %; by
    1 % (volume +3 %) it is not; one length off by 3 % alone is enough to differ."""
    key = core_keys["KEJQAR"]

    def stretched(s: float) -> FrameworkKey:
        return replace(key, volume=key.volume * s**3, cell=tuple(c * s for c in key.cell),
                       anchor=tuple(a * s for a in key.anchor))  # fmt: skip

    assert duplicates.TOLERANCE == 0.02
    assert same_framework(key, stretched(1.005))
    assert not same_framework(key, stretched(1.01))
    longer_c = replace(key, cell=(*key.cell[:2], key.cell[2] * 1.03))
    assert not same_framework(key, longer_c)
    nan_anchor = replace(key, anchor=(*key.anchor[:-1], math.nan))
    assert not same_framework(key, nan_anchor)
    assert same_framework(nan_anchor, nan_anchor)


# ------------------------------------------------------------------------------ grouping


def synthetic(mof_id: str, volume: float, formula: str = "C8H4O4Zn") -> FrameworkKey:
    return FrameworkKey(mof_id, formula, "0123456789abcdef", volume, (10.0, 11.0, 12.0),
                        (5.0,) * duplicates.N_ANCHOR_DISTANCES)  # fmt: skip


def test_each_mof_joins_the_best_ranked_leader_it_is_within_tolerance_of() -> None:
    """Leaders are checked against, never chained: C is 1.5 % from B but 3 % from A."""
    keys = {k.mof_id: k for k in (
        synthetic("A", 1000.0), synthetic("B", 1015.0), synthetic("C", 1030.0),
        synthetic("D", 1000.0, formula="C8H6O4Zn"),  # another formula: never grouped
    )}  # fmt: skip
    assert duplicate_of(["A", "B", "C", "D", "E"], keys) == {"B": "A"}
    assert duplicate_of(["C", "B", "A", "D"], keys) == {"B": "C"}  # leader C; A 3 % from it


# ------------------------------------------------------------------------------ frameworks-K.csv


def test_framework_key_files_round_trip_to_the_written_precision(tmp_path, core_keys) -> None:
    keys = [core_keys["KEJQAR"], replace(core_keys["XEKCAT"], anchor=(math.nan,) * 8)]
    path = write_framework_keys(keys, tmp_path / "frameworks-00000.csv")
    back = read_framework_keys(path)
    assert [(k.mof_id, k.formula, k.bond_graph) for k in back] == [
        (k.mof_id, k.formula, k.bond_graph) for k in keys
    ]
    for k, b in zip(keys, back, strict=True):
        np.testing.assert_allclose([b.volume, *b.cell], [k.volume, *k.cell], atol=5e-5)
        np.testing.assert_allclose(b.anchor, k.anchor, atol=5e-5)
        assert same_framework(k, b, tolerance=1e-4)  # 4 decimals of lengths ≥ 1 Å


def test_a_bad_framework_key_file_is_an_error_naming_it_and_the_line(tmp_path) -> None:
    missing = tmp_path / "frameworks-00000.csv"
    missing.write_text("mof_id,formula\nA,C\n")
    with pytest.raises(FrameworkFileError, match=r"frameworks-00000.csv is not a mofsieve "
                       r"framework key file \(missing columns \['bond_graph'"):  # fmt: skip
        read_framework_keys(missing)
    short = tmp_path / "frameworks-00001.csv"
    write_framework_keys([synthetic("A", 1000.0)], short)
    short.write_text(short.read_text() + "B,C2,0123456789abcdef,12.0,1 2,1 2 3 4 5 6 7 8\n")
    with pytest.raises(FrameworkFileError, match=r"frameworks-00001.csv line 3: 2 cell lengths"):
        read_framework_keys(short)


# ------------------------------------------------------------------------------ featurize → rank


@pytest.fixture
def copies_run(tmp_path: Path, core_cifs: dict[str, bytes]) -> Path:
    """XEKCAT under two names (copy_a, copy_b) and PEXBIF (other), featurized one a shard (so
    that the copies' keys come from different files), predicted copy_b > copy_a > other."""
    cifs = tmp_path / "cifs"
    cifs.mkdir()
    for name, refcode in (("copy_a", "XEKCAT"), ("copy_b", "XEKCAT"), ("other", "PEXBIF")):
        (cifs / f"{name}.cif").write_bytes(core_cifs[refcode])
    graphs = tmp_path / "graphs"
    argv = ["featurize", str(cifs), "--out", str(graphs), "--shard-size", "1", "--jobs", "1"]
    assert main(argv) == 0
    value = {"copy_b": 3.0, "copy_a": 2.0, "other": 1.0}
    manifest = read_rows(graphs / "manifest.csv")
    for shard in sorted({r["shard"] for r in manifest}):
        rows = "".join(f"{r['mof_id']},{value[r['mof_id']]},0.1,156\n" for r in manifest
                       if r["shard"] == shard)  # fmt: skip
        path = tmp_path / "predictions" / f"shard-{int(shard):05d}.csv"
        path.parent.mkdir(exist_ok=True)
        path.write_text("mof_id,prediction,uncertainty,n_atoms\n" + rows)
    return tmp_path


def rank_copies(run: Path, *extra: str) -> int:
    return main([
        "rank", "--manifest", str(run / "graphs" / "manifest.csv"),
        "--predictions", str(run / "predictions"), "--failures", str(run / "graphs"),
        "--unit", "mol/kg", "--no-charge-check", "--out-dir", str(run / "out"), *extra,
    ])  # fmt: skip


def test_copies_of_one_cif_are_one_framework_flagged_once(copies_run: Path) -> None:
    graphs = copies_run / "graphs"
    shard_of = {r["mof_id"]: r["shard"] for r in read_rows(graphs / "manifest.csv")}
    assert shard_of["copy_a"] != shard_of["copy_b"]
    written = {
        r["mof_id"]: r for k in range(3) for r in read_rows(graphs / f"frameworks-0000{k}.csv")
    }
    assert set(written) == {"copy_a", "copy_b", "other"}
    assert written["copy_a"] | {"mof_id": ""} == written["copy_b"] | {"mof_id": ""}

    assert rank_copies(copies_run, "--frameworks", str(graphs), "--top-count", "2") == 0
    ranked = read_rows(copies_run / "out" / "ranked.csv")
    assert [(r["mof_id"], r["duplicate_of"], r["flagged"]) for r in ranked] == [
        ("copy_b", "", "yes"),
        ("copy_a", "copy_b", "no"),  # the GCMC run of copy_b serves it
        ("other", "", "yes"),
    ]
    flagged = read_rows(copies_run / "out" / "flagged.csv")
    assert [r["mof_id"] for r in flagged] == ["copy_b", "other"]
    # a fraction is of distinct frameworks: half of 2 is 1
    assert rank_copies(copies_run, "--frameworks", str(graphs), "--top-fraction", "0.5") == 0
    assert [r["mof_id"] for r in read_rows(copies_run / "out" / "flagged.csv")] == ["copy_b"]
    # --flag-duplicates: each MOF by its own rank, duplicate_of still said
    argv = ["--frameworks", str(graphs), "--top-count", "2", "--flag-duplicates"]
    assert rank_copies(copies_run, *argv) == 0
    ranked = read_rows(copies_run / "out" / "ranked.csv")
    assert [(r["mof_id"], r["duplicate_of"], r["flagged"]) for r in ranked] == [
        ("copy_b", "", "yes"), ("copy_a", "copy_b", "yes"), ("other", "", "no"),
    ]  # fmt: skip


def test_a_framework_whose_best_copy_is_skipped_for_checks_flags_its_next_copy(
    copies_run: Path,
) -> None:
    graphs = copies_run / "graphs"
    shard = read_rows(graphs / "manifest.csv")
    k = next(int(r["shard"]) for r in shard if r["mof_id"] == "copy_b")
    (graphs / f"warnings-{k:05d}.csv").write_text(
        "mof_id,source,check,detail\ncopy_b,copy_b.cif,coordination,1 C bonded to 5\n"
    )
    argv = ["--frameworks", str(graphs), "--warnings", str(graphs), "--top-count", "2"]
    assert rank_copies(copies_run, *argv) == 0
    ranked = read_rows(copies_run / "out" / "ranked.csv")
    assert [(r["mof_id"], r["duplicate_of"], r["flagged"]) for r in ranked] == [
        ("copy_b", "", "no"),  # coordination: skipped by default
        ("copy_a", "copy_b", "yes"),  # the framework's GCMC run goes to its clean copy
        ("other", "", "yes"),
    ]


def test_without_framework_keys_rank_works_and_says_so(copies_run: Path, caplog) -> None:
    graphs = copies_run / "graphs"
    old = copies_run / "old-graphs"  # featurized before there were frameworks-K.csv
    shutil.copytree(graphs, old)
    for path in old.glob("frameworks-*.csv"):
        path.unlink()
    with caplog.at_level(logging.WARNING):
        assert rank_copies(copies_run, "--frameworks", str(old), "--top-count", "2") == 0
    assert "no framework keys" in caplog.text and "duplicate_of is empty" in caplog.text
    ranked = read_rows(copies_run / "out" / "ranked.csv")
    assert [(r["mof_id"], r["duplicate_of"], r["flagged"]) for r in ranked] == [
        ("copy_b", "", "yes"), ("copy_a", "", "yes"), ("other", "", "no"),
    ]  # fmt: skip
    # one shard's keys missing: its MOF is never grouped, the others as far as they can be
    shard_of = {r["mof_id"]: int(r["shard"]) for r in read_rows(graphs / "manifest.csv")}
    (graphs / f"frameworks-{shard_of['copy_a']:05d}.csv").unlink()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert rank_copies(copies_run, "--frameworks", str(graphs), "--top-count", "3") == 0
    assert "1 of 3 ranked MOFs have no framework key" in caplog.text
    assert all(r["duplicate_of"] == "" for r in read_rows(copies_run / "out" / "ranked.csv"))


def test_a_bad_framework_key_file_stops_rank_naming_it(copies_run: Path, caplog) -> None:
    bad = copies_run / "graphs" / "frameworks-00002.csv"
    bad.write_text("mof_id,bond_graph\nother,0\n")
    with caplog.at_level(logging.ERROR):
        assert rank_copies(copies_run, "--frameworks", str(bad.parent), "--top-count", "1") == 1
    assert f"{bad} is not a mofsieve framework key file" in caplog.text
    assert not (copies_run / "out" / "ranked.csv").exists()


def test_rank_groups_100000_mofs_quickly() -> None:
    """Grouping is a dictionary walk: 100,000 MOFs in 20,000 buckets take well under a
    second (the project's goal: rank and report of 100,000 rows within 30 s)."""
    import time

    rng = np.random.default_rng(0)
    keys = {
        f"m{i}": synthetic(f"m{i}", 1000.0 * (1 + 0.05 * rng.random()), formula=f"C{i % 20000}")
        for i in range(100_000)
    }
    start = time.perf_counter()
    groups = duplicate_of(list(keys), keys)
    assert time.perf_counter() - start < 5.0
    assert 0 < len(groups) < 100_000 - 20_000
    assert all(keys[m].formula == keys[lead].formula for m, lead in groups.items())


def test_ranked_rows_name_their_leader_through_rank_predictions() -> None:
    preds = {m: rank.Prediction(m, v, 0.1, 10) for m, v in (("A", 1.0), ("B", 3.0), ("C", 2.0))}
    keys = {"A": synthetic("A", 1000.0), "B": synthetic("B", 1001.0)}
    rows, _ = rank.rank_predictions(preds, {}, top_count=2, frameworks=keys)
    assert [(r.mof_id, r.duplicate_of, r.flagged) for r in rows] == [
        ("B", "", True), ("C", "", True), ("A", "B", False),
    ]  # fmt: skip
