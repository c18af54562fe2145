"""Force-field descriptors (mofsieve.descriptors.energy_grid): the CO2 Lennard-Jones energies
against hand-computed values, the compiled loops against numpy, invariances, and physics on
real CoRE MOFs."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mofsieve.descriptors import (
    ENERGY_DESCRIPTORS,
    FAST_DESCRIPTORS,
    DescriptorError,
    compute_descriptors,
    energy_grid,
    energy_native,
)
from mofsieve.descriptors.cell import density as cell_density
from mofsieve.featurization_params import (
    ENERGY_REVISION,
    FeaturizationMismatch,
    FeaturizationParams,
)
from mofsieve.native_build import compiler_available

# By hand from the papers, not from mofsieve.forcefield: UFF C (Rappé 1992 Table 1: x 3.851 Å,
# D 0.105 kcal/mol; σ = x / 2^(1/6), ε/k_B = D × 503.2195 K) and TraPPE CO2 (Potoff &
# Siepmann 2001: O 79.0 K, 3.05 Å; C 27.0 K, 2.80 Å; C=O 1.16 Å), Lorentz–Berthelot, 12 Å.
UFF_C = (0.105 * 503.2195, 3.851 / 2 ** (1 / 6))
TRAPPE_O = (79.0, 3.05)
TRAPPE_C = (27.0, 2.80)
BOND = 1.16
CUTOFF = 12.0
CAP = 1.0e4


def lj_shifted(
    r: float, site: tuple[float, float], atom: tuple[float, float] = UFF_C, cutoff: float = CUTOFF
) -> float:
    """Cut-and-shifted Lennard-Jones pair energy (K), Lorentz–Berthelot mixed."""
    eps, sigma = math.sqrt(site[0] * atom[0]), 0.5 * (site[1] + atom[1])

    def lj(x: float) -> float:
        return 4 * eps * ((sigma / x) ** 12 - (sigma / x) ** 6)

    return lj(r) - lj(cutoff) if r < cutoff else 0.0


def _implementations() -> list[str]:
    return ["numpy", "compiled"]


def energies(*args: Any, **kwargs: Any) -> np.ndarray:
    """The molecule's Lennard-Jones energies (K) at Cartesian ``points`` (arguments of
    :func:`both`)."""
    return both(*args, **kwargs)[0]


def both(
    implementation: str,
    numbers: np.ndarray,
    frac: np.ndarray,
    cell: np.ndarray,
    points: np.ndarray,
    axes: np.ndarray,
    offsets: np.ndarray,
    site_eps: np.ndarray,
    site_sigma: np.ndarray,
    cutoff: float = CUTOFF,
    cap: float = CAP,
    charges: np.ndarray | None = None,
    site_charges: np.ndarray | None = None,
    **kernel: float,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The molecule's (Lennard-Jones, Coulomb) energies (K) by one implementation."""
    types, params = energy_grid.pair_parameters(numbers, site_eps, site_sigma, cutoff)
    cart = frac @ cell
    charged = {"charges": charges, "site_charges": site_charges}
    if implementation == "numpy":
        return energy_grid.insertion_energies_numpy(
            cart, types, offsets, params, cell, points, axes, cutoff=cutoff, cap=cap, **charged
        )
    library = energy_native.kernel()
    if library is None:
        if not compiler_available():
            pytest.skip("no C++ compiler: the compiled energy-grid kernel cannot be built")
        pytest.fail("a C++ compiler exists, yet the energy-grid kernel did not build (see log)")
    settings = {"bin_width": 2.5, "near_reach": 4.0} | kernel
    return energy_native.insertion_energies(
        library, cart, types, offsets, params, cell, points, axes, cutoff=cutoff, cap=cap,
        **charged, **settings,
    )  # fmt: skip


def one_site(site: tuple[float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.zeros(1), np.array([site[0]]), np.array([site[1]])


def co2() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.array([BOND, 0.0, -BOND]), np.array([TRAPPE_O[0], TRAPPE_C[0], TRAPPE_O[0]]),
            np.array([TRAPPE_O[1], TRAPPE_C[1], TRAPPE_O[1]]))  # fmt: skip


# --- hand-checkable structures ----------------------------------------------------------------


@pytest.mark.parametrize("implementation", _implementations())
def test_one_atom_in_a_big_cell_gives_the_mixed_lennard_jones_formula(implementation) -> None:
    cell = np.eye(3) * 40.0
    centre = np.array([20.0, 20.0, 20.0])
    distances = np.array([2.8, 3.2, 3.6, 4.0, 5.0, 7.0, 11.5, 12.5, 19.0])
    directions = np.random.default_rng(0).normal(size=(len(distances), 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    points = centre + distances[:, None] * directions
    got = energies(implementation, np.array([6]), np.full((1, 3), 0.5), cell, points,
                   directions, *one_site(TRAPPE_O))  # fmt: skip
    want = [lj_shifted(r, TRAPPE_O) for r in distances]
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-4)
    assert got[distances.tolist().index(3.6)] < -50.0  # inside the well, not just finite
    assert got[-2] == got[-1] == 0.0  # beyond the cutoff


@pytest.mark.parametrize("implementation", _implementations())
def test_co2_sums_its_three_sites_along_its_axis(implementation) -> None:
    cell = np.eye(3) * 40.0
    atom = np.array([20.0, 20.0, 20.0])
    # centre 3.8 Å from the atom: along the axis (O at 2.64 Å, C 3.8, O 4.96) and across it
    along = energies(implementation, np.array([6]), np.full((1, 3), 0.5), cell,
                     np.array([atom + [3.8, 0, 0]]), np.array([[1.0, 0, 0]]), *co2())  # fmt: skip
    across = energies(implementation, np.array([6]), np.full((1, 3), 0.5), cell,
                      np.array([atom + [3.8, 0, 0]]), np.array([[0, 0, 1.0]]), *co2())  # fmt: skip
    slant = math.hypot(3.8, BOND)
    want_along = (lj_shifted(3.8 - BOND, TRAPPE_O) + lj_shifted(3.8, TRAPPE_C)
                  + lj_shifted(3.8 + BOND, TRAPPE_O))  # fmt: skip
    want_across = 2 * lj_shifted(slant, TRAPPE_O) + lj_shifted(3.8, TRAPPE_C)
    np.testing.assert_allclose(along, [want_along], rtol=2e-5)
    np.testing.assert_allclose(across, [want_across], rtol=2e-5)
    assert want_along - want_across > 100.0  # end-on is repulsive here, side-on is not


E2_K_A = 167101.0  # e²/(4πε₀ k_B) in K Å: 2.307077e-28 J m / 1e-10 m / 1.380649e-23 J/K
Q_O, Q_C = -0.35, 0.70  # TraPPE CO2 charges (e)


def co2_charges() -> np.ndarray:
    return np.array([Q_O, Q_C, Q_O])


@pytest.mark.parametrize("implementation", _implementations())
def test_co2_coulomb_energy_is_the_sum_over_its_three_charges(implementation) -> None:
    cell = np.eye(3) * 40.0
    atom = np.array([20.0, 20.0, 20.0])
    points = np.array([atom + [4.5, 0, 0], atom + [11.5, 0, 0], atom + [12.5, 0, 0]])
    axes = np.tile([1.0, 0, 0], (3, 1))
    lj, coulomb = both(implementation, np.array([6]), np.full((1, 3), 0.5), cell, points, axes,
                       *co2(), charges=np.array([1.5]), site_charges=co2_charges())  # fmt: skip
    d = np.array([4.5, 11.5])
    want = 1.5 * E2_K_A * (Q_O / (d - BOND) + Q_C / d + Q_O / (d + BOND))
    # the molecule sees the image whole while its centre is within 12 Å (at 11.5 Å, its far
    # O at 12.66 Å too); at 12.5 Å not at all (its near O at 11.34 Å neither): no net charge
    np.testing.assert_allclose(coulomb[:2], want, rtol=2e-5)
    assert coulomb[2] == 0.0
    assert abs(want[0]) > 100.0 and lj[0] < CAP


def test_coulomb_is_zero_where_the_molecule_does_not_fit() -> None:
    cell = np.eye(3) * 40.0
    points = np.array([[20.0, 20.0, 21.0]])  # 1 Å from the atom: capped
    for implementation in _implementations():
        lj, coulomb = both(implementation, np.array([6]), np.full((1, 3), 0.5), cell, points,
                           np.array([[1.0, 0, 0]]), *co2(), charges=np.array([1.0]),
                           site_charges=co2_charges())  # fmt: skip
        assert lj[0] == CAP and coulomb[0] == 0.0


def brute_force(
    frac: np.ndarray,
    cell: np.ndarray,
    sites: list[tuple[np.ndarray, tuple[float, float]]],
    cutoff: float = CUTOFF,
) -> float:
    """Sites (position, TraPPE ε, σ) among C atoms: every image of every atom, summed."""
    total = 0.0
    for shift in itertools.product(range(-6, 7), repeat=3):
        for f in frac:
            image = (f + shift) @ cell
            for where, site in sites:
                total += lj_shifted(float(np.linalg.norm(image - where)), site, cutoff=cutoff)
    return total


def brute_force_coulomb(
    frac: np.ndarray,
    charges: np.ndarray,
    cell: np.ndarray,
    centre: np.ndarray,
    sites: list[tuple[np.ndarray, float]],
    cutoff: float,
) -> float:
    """Site charges around ``centre``: every atom image within ``cutoff`` of the centre."""
    total = 0.0
    for shift in itertools.product(range(-6, 7), repeat=3):
        for f, q in zip(frac, charges, strict=True):
            image = (f + shift) @ cell
            if np.linalg.norm(image - centre) < cutoff:
                total += sum(E2_K_A * q * qs / np.linalg.norm(image - w) for w, qs in sites)
    return total


@pytest.mark.parametrize("implementation", _implementations())
@pytest.mark.parametrize(
    "cell",
    [np.eye(3) * 5.0, np.array([[7.0, 0, 0], [3.1, 6.2, 0], [-2.0, 1.5, 5.5]])],
    ids=["cubic-5A", "triclinic"],
)
def test_periodic_images_within_the_cutoff_are_all_counted(implementation, cell) -> None:
    frac = np.array([[0.1, 0.2, 0.3], [0.6, 0.55, 0.8]])
    rng = np.random.default_rng(1)
    points = rng.random((12, 3)) @ cell + rng.normal(scale=3.0, size=(12, 3))  # some outside
    axes = np.tile([0.0, 0.0, 1.0], (12, 1))
    got = energies(implementation, np.array([6, 6]), frac, cell, points, axes,
                   *one_site(TRAPPE_O))  # fmt: skip
    want = np.array([min(brute_force(frac, cell, [(p, TRAPPE_O)]), CAP) for p in points])
    nearest_only = np.array(
        [
            min(lj_shifted(float(np.linalg.norm(f @ cell - p)), TRAPPE_O) for f in frac)
            for p in points
        ]  # fmt: skip
    )
    assert np.abs(want - nearest_only).max() > 100.0  # the images carry most of it
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=0.05)


@pytest.mark.parametrize("implementation", _implementations())
def test_every_site_reaches_its_own_cutoff_in_a_sheared_cell(implementation) -> None:
    # A 4.5 Å cutoff, where the shifted potential is still steep, and bins far narrower than
    # the molecule: an image a site can reach but the molecule's centre cannot (sites 1.16 Å
    # out) would cost K to tens of K if missed.
    cell = np.array([[7.0, 0, 0], [3.1, 6.2, 0], [-2.0, 1.5, 5.5]])
    frac = np.array([[0.1, 0.2, 0.3], [0.6, 0.55, 0.8]])
    rng = np.random.default_rng(3)
    points = rng.random((40, 3)) @ cell
    axes = rng.normal(size=(40, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    charges = np.array([0.8, -0.8])
    got, coulomb = both(implementation, np.array([6, 6]), frac, cell, points, axes, *co2(),
                        cutoff=4.5, charges=charges, site_charges=co2_charges(),
                        bin_width=0.25)  # fmt: skip
    sites = [(BOND, TRAPPE_O), (0.0, TRAPPE_C), (-BOND, TRAPPE_O)]
    want = np.array([
        min(brute_force(frac, cell, [(p + z * u, site) for z, site in sites], cutoff=4.5), CAP)
        for p, u in zip(points, axes, strict=True)
    ])  # fmt: skip
    assert (want < CAP).sum() >= 10  # enough molecules that fit
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=0.05)
    fits = want < CAP
    charged_sites = [(BOND, Q_O), (0.0, Q_C), (-BOND, Q_O)]
    want_coulomb = np.array([
        brute_force_coulomb(frac, charges, cell, p, [(p + z * u, q) for z, q in charged_sites],
                            cutoff=4.5)
        for p, u in zip(points[fits], axes[fits], strict=True)
    ])  # fmt: skip
    np.testing.assert_allclose(coulomb[fits], want_coulomb, rtol=1e-4, atol=0.05)
    assert np.abs(want_coulomb).max() > 100.0


def test_an_element_without_uff_parameters_is_refused() -> None:
    numbers = np.array([6, 104])  # rutherfordium: past UFF's table
    with pytest.raises(DescriptorError, match="no UFF parameters for element.*Rf"):
        compute_descriptors(ENERGY_DESCRIPTORS, numbers, np.array([[0, 0, 0], [0.5, 0.5, 0.5]]),
                            np.eye(3) * 10.0)  # fmt: skip


def test_a_crowded_cell_gives_finite_capped_descriptors() -> None:
    # fcc copper, neutral: no room for CO2 anywhere; finite, tiny Henry coefficient, nothing
    # bound, and zero charges change nothing
    a = 3.615
    frac = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    values = dict(zip(ENERGY_DESCRIPTORS, compute_descriptors(
        ENERGY_DESCRIPTORS, np.full(4, 29), frac, np.eye(3) * a, charges=np.zeros(4)),
        strict=True))  # fmt: skip
    assert all(math.isfinite(v) for v in values.values())
    assert values["co2_lj_min_energy_kj_mol"] == pytest.approx(CAP * 8.314462618e-3, rel=1e-6)
    assert values["co2_lj_log10_henry_mol_kg_pa"] < -15.0
    assert values["co2_lj_fraction_below_minus10_kj_mol"] == 0.0
    assert values["co2_lj_accessible_fraction"] == values["co2_lj_accessible_volume_cm3_g"] == 0
    assert values["co2_lj_pore_filling_16bar_mol_kg"] < 1e-9  # no room: (next to) nothing
    for name in energy_grid.CHARGED_DESCRIPTORS:
        assert values[name] == values[name.replace("co2_lj_coulomb_", "co2_lj_")]


def test_charged_descriptors_are_nan_without_every_charge_and_the_rest_unchanged(
    small_mof,
) -> None:
    numbers, frac, cell = small_mof
    charges = np.random.default_rng(4).normal(scale=0.3, size=len(numbers))
    charges -= charges.mean()
    full = _named(compute_descriptors(ENERGY_DESCRIPTORS, numbers, frac, cell, charges=charges))
    assert all(math.isfinite(v) for v in full.values())
    some_missing = charges.copy()
    some_missing[3] = np.nan
    charged = [ENERGY_DESCRIPTORS[i] for i in energy_grid.charged_globals(ENERGY_DESCRIPTORS)]
    for missing in (None, some_missing):
        values = _named(compute_descriptors(ENERGY_DESCRIPTORS, numbers, frac, cell,
                                            charges=missing))  # fmt: skip
        for name in ENERGY_DESCRIPTORS:
            if name in charged:
                assert math.isnan(values[name]), name
            else:
                assert values[name] == full[name], name


def test_without_a_compiler_numpy_computes_the_same_descriptors(
    tmp_path, monkeypatch, caplog
) -> None:
    cell = np.eye(3) * 9.0
    frac = np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]])
    settings = energy_grid.EnergySettings(points=256)
    compiled = compute_descriptors(ENERGY_DESCRIPTORS, np.array([30, 8]), frac, cell,
                                   energy_settings=settings, charges=np.array([1.0, -1.0]))  # fmt: skip
    monkeypatch.setenv("MOFSIEVE_KERNEL_CACHE", str(tmp_path))  # nothing built there
    monkeypatch.setenv("CXX", "no-such-compiler")
    energy_native.LIBRARY.forget()
    try:
        assert energy_native.kernel() is None
        assert "energy-grid kernel unavailable" in caplog.text
        fallback = compute_descriptors(ENERGY_DESCRIPTORS, np.array([30, 8]), frac, cell,
                                       energy_settings=settings,
                                       charges=np.array([1.0, -1.0]))  # fmt: skip
    finally:
        energy_native.LIBRARY.forget()  # the next test builds/loads the real one again
    assert np.isfinite(fallback).all()
    np.testing.assert_allclose(fallback, compiled, rtol=1e-4, atol=1e-4)


# --- real structures ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_mof(core_mof_graphs):
    """A real CoRE MOF of at most 60 atoms with room for CO2 (arrays)."""
    graph = core_mof_graphs(1, lambda g: g.n_atoms <= 60)[0]
    return graph.atomic_number.astype(np.int64), graph.frac_coords, graph.lattice


def test_compiled_energies_equal_numpy_on_a_real_mof(small_mof) -> None:
    numbers, frac, cell = small_mof
    settings = energy_grid.EnergySettings(points=384)
    points, axes = energy_grid.sample(cell, settings)
    offsets, eps, sigma, _ = energy_grid.co2_sites()
    reference = energies("numpy", numbers, frac, cell, points, axes, offsets, eps, sigma)
    capped = reference >= CAP
    assert 0 < capped.sum() < len(reference) - 20  # both kinds of points are checked
    assert reference.min() < -1000.0  # somewhere CO2 is bound (> 8 kJ/mol)
    for kernel in ({}, {"near_reach": 1.0, "bin_width": 5.0}, {"near_reach": 8.0}):
        got = energies("compiled", numbers, frac, cell, points, axes, offsets, eps, sigma,
                       **kernel)  # fmt: skip
        np.testing.assert_array_equal(got >= CAP, capped)  # the early exit loses nothing
        np.testing.assert_allclose(got, reference, rtol=1e-4, atol=0.05)
    # A cap among the energies: points whose near images alone exceed it but whose far ones
    # pull them back under must not be cut short.
    for cap in (0.0, 300.0):
        low = energies("numpy", numbers, frac, cell, points, axes, offsets, eps, sigma, cap=cap)
        got = energies("compiled", numbers, frac, cell, points, axes, offsets, eps, sigma,
                       cap=cap, near_reach=2.5)  # fmt: skip
        assert 10 < (low < cap).sum() < len(low) - 10
        np.testing.assert_allclose(got, low, rtol=1e-4, atol=0.05)


@pytest.fixture(scope="module")
def mof_with_atoms_on_cell_faces():
    """DOYSIT (CoRE MOF 2019-ASR, 56 atoms): atoms with a fractional coordinate of 0, whose
    fractions computed back from Cartesian come out a rounding error below 0."""
    pytest.importorskip("CoRE_MOF", reason="the core-mof package (pip install '.[demo]')")
    from mofsieve.manifest import iter_archive, package_archive
    from mofsieve.structures import parse_cif

    ((_, data),) = iter_archive(package_archive("core-mof:2019-ASR"), {"DOYSIT_clean.cif"})
    crystal = parse_cif(data)
    assert (crystal.frac_coords == 0).any()
    return crystal.atomic_number.astype(np.int64), crystal.frac_coords, crystal.lattice


def test_atoms_on_cell_faces_keep_all_their_images(mof_with_atoms_on_cell_faces) -> None:
    # Such an atom's fraction used to wrap to exactly 1.0: binned in bin 0 but placed a whole
    # cell away from it, so the gather missed images within the cutoff (2.8 K off numpy here at
    # 1,024 points; log10 K_H off by up to 0.4 on 8 % of 1,000 core-mof MOFs).
    numbers, frac, cell = mof_with_atoms_on_cell_faces
    points, axes = energy_grid.sample(cell, energy_grid.EnergySettings(points=1024))
    offsets, eps, sigma, site_charges = energy_grid.co2_sites()
    charges = np.random.default_rng(5).normal(0.0, 0.3, len(numbers))
    charged = {"charges": charges - charges.mean(), "site_charges": site_charges}
    lj, coulomb = both("numpy", numbers, frac, cell, points, axes, offsets, eps, sigma,
                       **charged)  # fmt: skip
    fits = lj < CAP
    assert fits.sum() > 50
    got_lj, got_coulomb = both("compiled", numbers, frac, cell, points, axes, offsets, eps,
                               sigma, bin_width=4.0, **charged)  # fmt: skip
    np.testing.assert_allclose(got_lj, lj, rtol=1e-4, atol=0.05)
    np.testing.assert_allclose(got_coulomb[fits], coulomb[fits], rtol=1e-4, atol=0.05)


def _named(values: np.ndarray) -> dict[str, float]:
    return dict(zip(ENERGY_DESCRIPTORS, values.tolist(), strict=True))


def test_descriptors_ignore_atom_order_cell_orientation_and_kernel(small_mof) -> None:
    numbers, frac, cell = small_mof
    base = compute_descriptors(ENERGY_DESCRIPTORS, numbers, frac, cell)
    order = np.random.default_rng(2).permutation(len(numbers))
    permuted = compute_descriptors(ENERGY_DESCRIPTORS, numbers[order], frac[order], cell)
    np.testing.assert_allclose(permuted, base, rtol=1e-5, atol=1e-6)
    angle = 0.7
    rotation = np.array([[math.cos(angle), -math.sin(angle), 0],
                         [math.sin(angle), math.cos(angle), 0], [0, 0, 1]])  # fmt: skip
    rotation = rotation @ np.array([[1, 0, 0], [0, 0.6, -0.8], [0, 0.8, 0.6]])
    rotated = compute_descriptors(ENERGY_DESCRIPTORS, numbers, frac, cell @ rotation.T)
    np.testing.assert_allclose(rotated, base, rtol=1e-5, atol=1e-6)
    with energy_native.switched_off():
        reference = compute_descriptors(ENERGY_DESCRIPTORS, numbers, frac, cell)
    np.testing.assert_allclose(reference, base, rtol=1e-4, atol=1e-4)


def test_a_shifted_origin_changes_the_sample_not_the_answer(small_mof) -> None:
    # The sample points are fixed in the cell, so moving the origin moves them over the
    # framework: the values change by sampling noise only (2,048 points; the noise was
    # measured at ~0.1 in log10 K_H and ~1 kJ/mol in the Boltzmann energy on 40 CoRE MOFs).
    numbers, frac, cell = small_mof
    base = _named(compute_descriptors(ENERGY_DESCRIPTORS, numbers, frac, cell))
    moved = _named(compute_descriptors(ENERGY_DESCRIPTORS, numbers, frac + [0.31, 0.17, 0.53],
                                       cell))  # fmt: skip
    assert moved["co2_lj_log10_henry_mol_kg_pa"] == pytest.approx(
        base["co2_lj_log10_henry_mol_kg_pa"], abs=0.5)  # fmt: skip
    assert moved["co2_lj_boltzmann_energy_kj_mol"] == pytest.approx(
        base["co2_lj_boltzmann_energy_kj_mol"], abs=4.0)  # fmt: skip
    assert moved["co2_lj_fraction_below_minus15_kj_mol"] == pytest.approx(
        base["co2_lj_fraction_below_minus15_kj_mol"], abs=0.02)  # fmt: skip


def test_pore_filling_is_henry_law_when_dilute_and_liquid_co2_where_bound(small_mof) -> None:
    # Two limits of the mean-field isotherm. At vanishing pressure the uptake is K_H·P, and the
    # Henry coefficient is computed apart (`landscape`). Sites bound by 3000 K (25 kJ/mol)
    # hold liquid CO2 at 16 bar (x ≈ 940), and sites inside atoms (the cap) hold nothing.
    numbers, frac, cell = small_mof
    settings = energy_grid.DEFAULT_ENERGY
    lj, _ = energy_grid.co2_energies(numbers, frac, cell, settings)
    density = cell_density(numbers, cell)
    values = energy_grid.summarize(lj, None, settings, density)
    pascal = 1e-3  # 1e-8 bar: even the deepest sites far from full
    dilute = energy_grid.pore_filling_mol_kg(lj, settings.temperature_k, pascal / 1e5, density)
    henry = 10 ** values["co2_lj_log10_henry_mol_kg_pa"]
    assert dilute == pytest.approx(henry * pascal, rel=1e-5)
    liquid_mol_kg = energy_grid.CO2_LIQUID_DENSITY_G_CM3 / energy_grid.CO2_MOLAR_MASS_G_MOL / density * 1e3  # fmt: skip
    half_bound = np.repeat([-3000.0, settings.cap_k], 1024)
    filled = energy_grid.pore_filling_mol_kg(half_bound, settings.temperature_k, 16.0, density)
    assert filled == pytest.approx(0.5 * liquid_mol_kg, rel=2e-3)
    # on the real MOF: the isotherm rises with pressure and stays under a cell of liquid CO2
    assert 0.0 < values["co2_lj_accessible_fraction"] < 1.0  # room, and atoms
    low = values["co2_lj_pore_filling_0.15bar_mol_kg"]
    high = values["co2_lj_pore_filling_16bar_mol_kg"]
    assert 0 < low < high < liquid_mol_kg


def test_an_open_cell_is_accessible_but_for_the_atom() -> None:
    # one carbon atom in a 30 Å cube: CO2 fits everywhere but within ~3.5 Å of it, including
    # the points beyond every atom's cutoff, where the energy is exactly 0
    numbers, frac, cell = np.array([6]), np.zeros((1, 3)), np.eye(3) * 30.0
    values = _named(compute_descriptors(ENERGY_DESCRIPTORS, numbers, frac, cell))
    excluded = 1.0 - values["co2_lj_accessible_fraction"]
    assert excluded < 4 / 3 * math.pi * 4.0**3 / 30.0**3
    lj, _ = energy_grid.co2_energies(numbers, frac, cell)
    assert excluded > np.mean(lj >= CAP) > 0  # repulsive, not only overlapping, keeps CO2 out
    density = cell_density(numbers, cell)
    assert values["co2_lj_accessible_volume_cm3_g"] == pytest.approx(
        values["co2_lj_accessible_fraction"] / density)  # fmt: skip


def test_a_descriptor_asked_alone_is_the_one_asked_with_all(small_mof) -> None:
    # the pore fillings are computed only when named: one named alone, or a descriptor asked
    # without them, has the value it has in the full set
    numbers, frac, cell = small_mof
    charges = np.linspace(-0.4, 0.4, len(numbers))  # neutral: symmetric about 0
    full = _named(compute_descriptors(ENERGY_DESCRIPTORS, numbers, frac, cell, charges=charges))
    for name in ("co2_lj_coulomb_pore_filling_16bar_mol_kg", "co2_lj_pore_filling_0.15bar_mol_kg",
                 "co2_lj_coulomb_log10_henry_mol_kg_pa"):  # fmt: skip
        alone = compute_descriptors([name], numbers, frac, cell, charges=charges)
        assert alone[0] == pytest.approx(full[name], rel=1e-6), name


def test_the_6144_point_descriptors_extend_the_2048_point_sample(small_mof) -> None:
    numbers, frac, cell = small_mof
    charges = np.linspace(-0.4, 0.4, len(numbers))
    base = (*energy_grid.LJ_DESCRIPTORS, *energy_grid.CHARGED_DESCRIPTORS)
    full = _named(compute_descriptors(ENERGY_DESCRIPTORS, numbers, frac, cell, charges=charges))
    # one sample of 6,144 points gives both: the 2,048-point names keep their numbers to the
    # bit (shards and models made before read them)
    alone = compute_descriptors(base, numbers, frac, cell, charges=charges)
    np.testing.assert_array_equal(alone, [full[name] for name in base])
    # the fine names are the same reductions of all 6,144 points (other bins: rounding apart)
    larger = replace(energy_grid.DEFAULT_ENERGY, points=6144)
    want = _named(compute_descriptors(ENERGY_DESCRIPTORS, numbers, frac, cell,
                                      energy_settings=larger, charges=charges))  # fmt: skip
    for name in energy_grid.CHARGED_DESCRIPTORS:
        fine = name + energy_grid.FINE_SUFFIX
        assert full[fine] == pytest.approx(want[name], rel=1e-4, abs=1e-4), fine
        if "min_energy" not in name:  # the lowest point may be among the first 2,048
            assert full[fine] != full[name], fine  # a different sample, not a copy
    # without every charge they are NaN, as the 2,048-point ones
    missing = charges.copy()
    missing[0] = np.nan
    fine_names = energy_grid.FINE_CHARGED_DESCRIPTORS
    assert np.isnan(compute_descriptors(fine_names, numbers, frac, cell, charges=missing)).all()


def test_a_fine_sample_smaller_than_the_base_one_is_refused(small_mof) -> None:
    numbers, frac, cell = small_mof
    settings = replace(energy_grid.DEFAULT_ENERGY, fine_points=1024)
    with pytest.raises(ValueError, match="fine_points"):
        compute_descriptors(energy_grid.FINE_CHARGED_DESCRIPTORS[:1], numbers, frac, cell,
                            energy_settings=settings, charges=np.zeros(len(numbers)))  # fmt: skip


@pytest.fixture(scope="module")
def labelled_mofs(shared_core: Path):
    """The first 40 labelled CIFs of the shared CoRE MOF copy (charged): (numbers, frac,
    lattice, charges), 0.15 bar uptake, 16 bar uptake (NaN where unlabelled)."""
    import csv

    from mofsieve.manifest import iter_archive, mof_id_of
    from mofsieve.structures import StructureError, parse_cif

    with open(shared_core / "labels.csv", newline="") as handle:
        labels = {row["mof_id"]: (row["co2_uptake_mol_per_kg_298K_0.15bar"],
                                  row["co2_uptake_mol_per_kg_298K_16bar"])
                  for row in csv.DictReader(handle)}  # fmt: skip
    found = []
    for member, data in iter_archive(shared_core / "cifs.tar.xz"):
        low, high = labels.get(mof_id_of(member), ("", ""))
        if not low:
            continue
        try:
            crystal = parse_cif(data)
        except StructureError:
            continue
        arrays = (crystal.atomic_number.astype(np.int64), crystal.frac_coords, crystal.lattice,
                  crystal.charge)  # fmt: skip
        found.append((arrays, float(low), float(high) if high else math.nan))
        if len(found) == 40:
            return found
    pytest.fail("fewer than 40 labelled CIFs in the shared copy")


def test_real_mofs_narrow_pores_bind_co2_harder_and_henry_tracks_uptake(labelled_mofs) -> None:
    from scipy.stats import spearmanr

    names = ("largest_sphere_diameter_geometric", *ENERGY_DESCRIPTORS)
    table = np.array([compute_descriptors(names, *arrays[:3], charges=arrays[3])
                      for arrays, _, _ in labelled_mofs])  # fmt: skip
    uptake = np.array([y for _, y, _ in labelled_mofs])
    assert np.isfinite(table).all()
    lcd, henry, boltzmann = table[:, 0], table[:, 1], table[:, 2]
    # narrower pores: more framework atoms near the molecule, a deeper Boltzmann energy
    assert spearmanr(lcd, boltzmann).statistic > 0.5
    narrow, wide = np.argmin(lcd), np.argmax(lcd)
    assert boltzmann[narrow] < boltzmann[wide]
    # the low-pressure uptake follows the Henry coefficient (Spearman 0.49 on these, 0.44
    # over all 9,467 shared CoRE MOFs, where none of the 12 cell and geometric descriptors
    # reaches 0.2), and more closely with the framework charges, as in the labels' GCMC
    # (0.68 here, 0.86 over all)
    henry_charged = table[:, 1 + ENERGY_DESCRIPTORS.index("co2_lj_coulomb_log10_henry_mol_kg_pa")]
    lj_rho = spearmanr(henry, uptake).statistic
    charged_rho = spearmanr(henry_charged, uptake).statistic
    assert lj_rho > 0.35
    assert charged_rho > 0.55 and charged_rho > lj_rho + 0.1
    assert (table[:, 3] <= table[:, 2] + 1e-6).all()  # min energy ≤ Boltzmann average


def test_the_6144_point_sample_halves_the_charged_sampling_error(labelled_mofs) -> None:
    # Against a sample of 49,152 points, on 40 real charged MOFs: the mean error of log10 K_H
    # with charges was 0.46 at 2,048 points and 0.24 at 6,144 (ratio 0.53; the Boltzmann
    # energy 0.55, the lowest energy 0.56), about the 1/√3 of three times the points
    names = list(energy_grid.CHARGED_DESCRIPTORS[:3])
    reference = replace(energy_grid.DEFAULT_ENERGY, points=49152)
    base_error, fine_error = [], []
    for arrays, _, _ in labelled_mofs:
        want = compute_descriptors(names, *arrays[:3], charges=arrays[3],
                                   energy_settings=reference)  # fmt: skip
        both = compute_descriptors(names + [n + energy_grid.FINE_SUFFIX for n in names],
                                   *arrays[:3], charges=arrays[3])  # fmt: skip
        base_error.append(np.abs(both[:3] - want))
        fine_error.append(np.abs(both[3:] - want))
    ratio = np.mean(fine_error, axis=0) / np.mean(base_error, axis=0)
    assert (ratio < 0.7).all(), ratio


def test_real_mofs_16bar_uptake_follows_the_pore_filling(labelled_mofs) -> None:
    from scipy.stats import spearmanr

    names = ("void_fraction_geometric", "co2_lj_coulomb_pore_filling_16bar_mol_kg",
             "co2_lj_coulomb_pore_filling_0.15bar_mol_kg")  # fmt: skip
    rows = [(compute_descriptors(names, *arrays[:3], charges=arrays[3]), high)
            for arrays, _, high in labelled_mofs if math.isfinite(high)]  # fmt: skip
    assert len(rows) >= 25
    table = np.array([r[0] for r in rows])
    high = np.array([r[1] for r in rows])
    # Spearman 0.93 with the 16 bar labels over the 4,730 training MOFs of the 16 bar model;
    # the geometric void fraction, the room without the binding, 0.91
    filling = spearmanr(table[:, 1], high).statistic
    assert filling > 0.85
    assert filling > spearmanr(table[:, 0], high).statistic
    # the same number at 0.15 bar is below the 16 bar one (nearer a Henry-law regime, where the
    # Henry coefficient with charges tracks the labels better: 0.86 against 0.42)
    assert (table[:, 2] < table[:, 1]).all()


# --- featurize --------------------------------------------------------------------------------


def test_featurize_stores_the_named_energy_descriptors(tmp_path, test_data) -> None:
    from mofsieve.cli import main
    from mofsieve.store import ShardReader
    from mofsieve.structures import parse_cif

    charged = test_data / "good" / "toy_framework_charged.cif"
    uncharged = test_data / "good" / "cu_fcc_p1.cif"
    names = (*FAST_DESCRIPTORS, *ENERGY_DESCRIPTORS)
    assert main(["featurize", str(charged), str(uncharged), "--out", str(tmp_path / "out"),
                 "--jobs", "1", "--global-features", ",".join(names)]) == 0  # fmt: skip
    reader = ShardReader(tmp_path / "out" / "shard-00000.h5")
    assert reader.params.global_feature_names == names
    assert reader.params.energy_revision == ENERGY_REVISION  # what this kernel computes
    stored = {graph.source: graph.global_features for graph in reader}
    assert len(stored) == 2  # the CIF without charges is kept, not a failure
    for cif in (charged, uncharged):
        crystal = parse_cif(cif.read_bytes())
        want = compute_descriptors(names, crystal.atomic_number, crystal.frac_coords,
                                   crystal.lattice, charges=crystal.charge)  # fmt: skip
        got = next(v for source, v in stored.items() if source.endswith(cif.name))
        np.testing.assert_array_equal(got, want)
        charged_part = got[energy_grid.charged_globals(names)]
        assert len(charged_part) == 2 * len(energy_grid.CHARGED_DESCRIPTORS)
        assert np.isfinite(charged_part).all() == (cif == charged)
        assert np.isfinite(got[: len(FAST_DESCRIPTORS) + len(energy_grid.LJ_DESCRIPTORS)]).all()


def test_featurize_refuses_an_unknown_global_feature_at_once(tmp_path, test_data, caplog) -> None:
    from mofsieve.cli import main

    cif = test_data / "good" / "toy_framework_charged.cif"
    code = main(["featurize", str(cif), "--out", str(tmp_path / "out"),
                 "--global-features", "density,co2_lj_henry"])  # fmt: skip
    assert code == 2
    assert "unknown descriptor(s) ['co2_lj_henry']" in caplog.text
    assert not (tmp_path / "out" / "shard-00000.h5").exists()


def test_a_model_and_its_graphs_must_share_the_force_field_revision() -> None:
    reads = FeaturizationParams(global_feature_names=("density", "co2_lj_min_energy_kj_mol"),
                                energy_revision=ENERGY_REVISION)  # fmt: skip
    older = replace(reads, energy_revision=ENERGY_REVISION - 1)
    with pytest.raises(FeaturizationMismatch, match="featurize them again with this mofsieve"):
        reads.check_compatible(older)
    with pytest.raises(FeaturizationMismatch, match="fine-tune the model on such graphs"):
        older.check_compatible(reads)
    reads.check_compatible(reads)
    # a model without force-field descriptors takes graphs of any revision
    plain = FeaturizationParams(global_feature_names=("density",))
    plain.check_compatible(older)
    plain.check_compatible(reads)
    # model.json names the revision only where it matters; files from before it mean 1
    assert reads.to_json()["energy_revision"] == ENERGY_REVISION
    assert "energy_revision" not in plain.to_json()
    legacy = {k: v for k, v in reads.to_json().items() if k != "energy_revision"}
    assert FeaturizationParams.from_json(legacy).energy_revision == 1
    attrs = {k: v for k, v in reads.to_attrs().items() if k != "energy_revision"}
    assert FeaturizationParams.from_attrs(attrs).energy_revision == 1
    assert FeaturizationParams.from_attrs(reads.to_attrs()) == reads


@pytest.mark.parametrize("pressure", ["0.15", "16"])
def test_shipped_models_read_the_current_force_field_revision_and_say_how(
    pressure, tmp_path
) -> None:
    from mofsieve.modelcard import write_model_card
    from mofsieve.modeldir import read_model

    folder = Path(__file__).resolve().parents[1] / "models" / f"co2_298K_{pressure}bar"
    spec = read_model(folder)
    assert spec.featurization.energy_revision == ENERGY_REVISION
    write_model_card(tmp_path / "card.md", spec)
    card = (folder / "MODEL_CARD.md").read_text()
    assert (tmp_path / "card.md").read_text() == card  # the committed card is this one
    assert f"Force-field descriptors of revision {ENERGY_REVISION}." in card
    if "revised" not in spec.metadata:
        # trained on graphs of this revision (training records the graphs' revision)
        assert "without retraining" not in card
        return
    move = spec.metadata["revised"][-1]
    assert (move["energy_revision_from"], move["energy_revision_to"]) == (1, ENERGY_REVISION)
    assert f"moved to revision {ENERGY_REVISION} without retraining" in card
    for metrics in (move["metrics"], move["metrics_before"]):
        assert f"test {metrics['test']['mae']:.4f} / {metrics['test']['spearman']:.4f}" in card
