"""The compiled geometric descriptor kernels (mofsieve.descriptors.native,
geometric_kernels.cpp): the same float32 numbers as the numpy implementation and as the
definition the shipped models were trained on, on real CoRE MOFs; the build, its cache, the
switch and the fallback."""

from __future__ import annotations

import logging
import math
import shutil

import numpy as np
import pytest

from mofsieve.descriptors import (
    FAST_DESCRIPTORS,
    GEOMETRIC_DESCRIPTORS,
    compute_descriptors,
    geometric,
    native,
)
from mofsieve.manifest import iter_archive, mof_id_of, package_archive
from mofsieve.structures import StructureError, parse_cif

# The fast geometric descriptors (void fraction, surface m²/cm³, largest-sphere diameter) of
# CoRE MOF 2019-ASR structures as featurize reads them (mofsieve.structures.parse_cif),
# recorded with the numpy implementation as committed before the kernels existed: the
# definition the shipped models' shards were made with. float32, as stored.
RECORDED = {
    "ABULOB_clean": (0.527099609375, 1238.5299072265625, 4.826810359954834),
    "BEWVOQ_clean": (0.768798828125, 2370.54052734375, 10.232617378234863),
    "CUNQOT_clean": (0.5185546875, 1152.1072998046875, 4.929241180419922),
    "ELILER_clean": (0.489501953125, 1097.49072265625, 4.95947790145874),
    "FASFUD_clean": (0.418212890625, 393.784912109375, 4.950417518615723),
    "GISZUD_clean": (0.722412109375, 2636.98193359375, 6.476912975311279),
    "PIYZED03_clean": (0.736572265625, 2641.945556640625, 6.927884578704834),
}
RECORDED_NAMES = [
    "void_fraction_geometric",
    "surface_area_m2_cm3_geometric",
    "largest_sphere_diameter_geometric",
]
# The first CIFs of the archive, besides the recorded ones: 20 to 1,000+ atoms, monoclinic
# and triclinic cells among them.
FIRST_CIFS = 40

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]


def _arrays(data: bytes) -> Arrays:
    crystal = parse_cif(data)
    return crystal.atomic_number, crystal.frac_coords, crystal.lattice


@pytest.fixture(scope="module")
def core_mof() -> dict[str, Arrays]:
    """The recorded structures and the archive's first CIFs, parsed as featurize does, in one
    pass over core-mof's archive."""
    pytest.importorskip("CoRE_MOF", reason="core-mof (the 'demo' extra) not installed")
    found: dict[str, Arrays] = {}
    first = 0
    for member, data in iter_archive(package_archive("core-mof:2019-ASR")):
        name = mof_id_of(member)
        if name in RECORDED or first < FIRST_CIFS:
            try:
                found[name] = _arrays(data)
            except StructureError:
                continue
            first += name not in RECORDED
        if first >= FIRST_CIFS and set(RECORDED) <= set(found):
            break
    assert set(RECORDED) <= set(found), f"missing from core-mof: {set(RECORDED) - set(found)}"
    return found


@pytest.fixture(scope="module")
def kernels():
    if shutil.which("c++") is None:
        pytest.skip("no C++ compiler: the numpy implementation runs (tested everywhere else)")
    library = native.kernels()
    assert library is not None, "a compiler is on PATH, yet the kernels did not build"
    return library


def _fcc_copper() -> Arrays:
    frac = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]], dtype=float)
    return np.full(4, 29), frac, np.eye(3) * 3.615


def _both(arrays: Arrays, names=FAST_DESCRIPTORS) -> tuple[np.ndarray, np.ndarray]:
    compiled = compute_descriptors(names, *arrays)
    with native.switched_off():
        reference = compute_descriptors(names, *arrays)
    return compiled, reference


def test_compiled_equals_numpy_on_core_mofs(kernels, core_mof) -> None:
    differing = []
    for name, arrays in core_mof.items():
        compiled, reference = _both(arrays)
        if not np.array_equal(compiled, reference):
            differing.append(f"{name}: {compiled.tolist()} vs {reference.tolist()}")
    sizes = sorted(len(arrays[0]) for arrays in core_mof.values())
    assert sizes[-1] > 1000  # the set spans small and large cells
    assert not differing, "\n".join(differing)


@pytest.mark.parametrize("implementation", ["compiled", "numpy"])
def test_recorded_definition_is_reproduced(kernels, core_mof, implementation) -> None:
    for name, recorded in RECORDED.items():
        if implementation == "numpy":
            with native.switched_off():
                values = compute_descriptors(RECORDED_NAMES, *core_mof[name])
        else:
            values = compute_descriptors(RECORDED_NAMES, *core_mof[name])
        np.testing.assert_array_equal(values, np.float32(recorded), err_msg=name)


def _rhombohedral(edge: float, angle: float) -> np.ndarray:
    cosine = math.cos(math.radians(angle))
    x = math.sqrt((1 - cosine) / 3)
    z = math.sqrt(1 - x * x)
    return edge * np.array(
        [[x, 0.0, z], [-x / 2, x * math.sqrt(3) / 2, z], [-x / 2, -x * math.sqrt(3) / 2, z]]
    )


@pytest.mark.parametrize(
    "arrays",
    [
        # fcc copper, primitive: one atom in a 2.6 Å cell, every search crosses many images
        (
            np.array([29]),
            np.zeros((1, 3)),
            np.array([[0, 1.8075, 1.8075], [1.8075, 0, 1.8075], [1.8075, 1.8075, 0]]),
        ),
        _fcc_copper(),  # the conventional cell of the same
        # one carbon in a big, strongly oblique cell; atoms on the cell faces
        (np.array([6]), np.array([[0.3, 0.4, 0.5]]), _rhombohedral(20.0, 40.0)),
        (
            np.array([6, 8, 1]),
            np.array([[0.0, 0.0, 0.0], [1.0, 0.5, 0.0], [0.5, 0.999999, 0.5]]),
            _rhombohedral(9.0, 110.0),
        ),
    ],
    ids=["fcc-primitive", "fcc-conventional", "one-atom-oblique", "wrapped-obtuse"],
)
def test_compiled_equals_numpy_on_small_and_oblique_cells(kernels, arrays) -> None:
    compiled, reference = _both(arrays)
    np.testing.assert_array_equal(compiled, reference)


@pytest.mark.shared
@pytest.mark.slow
def test_compiled_equals_numpy_on_shared_core_mofs(kernels, shared_core) -> None:
    count, differing = 0, []
    for name, data in iter_archive(shared_core / "cifs.tar.xz"):
        try:
            arrays = _arrays(data)
        except StructureError:
            continue
        compiled, reference = _both(arrays)
        if not np.array_equal(compiled, reference):
            differing.append(name)
        count += 1
        if count == 300:
            break
    assert count == 300
    assert not differing, differing


def test_switch_turns_the_kernels_off(monkeypatch) -> None:
    monkeypatch.setenv(native.SWITCH, "0")
    assert native.kernels() is None
    values = compute_descriptors(GEOMETRIC_DESCRIPTORS, *_fcc_copper())
    assert 0.0 < values[0] < 0.2  # computed by numpy all the same


@pytest.fixture
def fresh_load(monkeypatch, tmp_path):
    """An empty kernel cache and no library loaded yet; the real ones come back after."""
    monkeypatch.setenv("MOFSIEVE_KERNEL_CACHE", str(tmp_path))
    native.LIBRARY.forget()
    yield tmp_path
    native.LIBRARY.forget()


@pytest.mark.parametrize(
    ("compiler", "said"),
    [
        ("no-such-compiler-here", "no-such-compiler-here"),  # none on PATH
        ("false", "returned non-zero exit status 1"),  # one that runs and fails
    ],
)
def test_failed_build_falls_back_to_numpy_with_one_warning(
    fresh_load, monkeypatch, caplog, compiler, said
):
    if compiler == "false" and shutil.which("false") is None:
        pytest.skip("no `false` command on this machine")
    monkeypatch.setenv("CXX", compiler)
    with caplog.at_level(logging.WARNING, logger=native.__name__):
        first = compute_descriptors(GEOMETRIC_DESCRIPTORS, *_fcc_copper())
        again = compute_descriptors(GEOMETRIC_DESCRIPTORS, *_fcc_copper())
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "numpy computes them instead" in warnings[0]
    assert said in warnings[0]
    with native.switched_off():
        reference = compute_descriptors(GEOMETRIC_DESCRIPTORS, *_fcc_copper())
    np.testing.assert_array_equal(first, reference)
    np.testing.assert_array_equal(again, reference)
    assert list(fresh_load.iterdir()) == []  # nothing half-built left behind


@pytest.mark.slow  # compiles the kernels once more (a few seconds)
def test_build_lands_in_the_cache_and_is_reused(kernels, fresh_load, monkeypatch) -> None:
    assert native.kernels() is not None
    built = list(fresh_load.glob("mofsieve_geometric_*.so"))
    assert len(built) == 1 and not list(fresh_load.glob(".build-*"))
    native.LIBRARY.forget()

    def no_build(*args):
        raise AssertionError("rebuilt although the cache holds the library")

    monkeypatch.setattr(native.LIBRARY, "build_in", no_build)
    assert native.kernels() is not None


def test_mismatched_arrays_are_refused(kernels) -> None:
    with pytest.raises(ValueError, match="positions .* for 2 atoms"):
        native.geometric(
            kernels,
            np.zeros((3, 3)),
            np.ones(2),
            np.eye(3) * 10,
            points=None,
            want_largest_sphere=False,
            seed_points=0,
            refined_points=0,
            tolerance=0.01,
            travel=1.0,
            pattern=geometric._PATTERN_DIRECTIONS,
            probe=1.65,
            rotation_draws=np.zeros((4, 2)),
            surface_directions=np.zeros((12, 3), dtype=np.float32),
        )
