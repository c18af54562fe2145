"""Force-field descriptors: the energy landscape of a CO2 molecule in the cell.

The GCMC labels come from UFF framework atoms with their partial charges, rigid TraPPE CO2,
Lorentz–Berthelot mixing, a 12 Å cut-and-shifted Lennard-Jones potential and Ewald
electrostatics (:mod:`mofsieve.forcefield`). These descriptors take that physics from the same
tables: a rigid TraPPE CO2 (O–C–O, three sites) is put at ``points`` fixed quasi-random
positions of the cell (the R3 sequence of the geometric void fraction), each with its own
quasi-random orientation (an R2 sequence over the sphere, in the cell's own frame, so a
rotated copy of a structure gets the same numbers), and its energy with the framework atom
images is summed. A short deterministic Widom insertion run; the whole sample gives:

- ``co2_lj_log10_henry_mol_kg_pa``: log10 of the Henry coefficient, K_H = ⟨exp(−βU)⟩ /
  (R T ρ_framework) in mol kg⁻¹ Pa⁻¹, of the Lennard-Jones energy alone (every image within
  12 Å of each site, pair by pair cut and shifted as in the labels' GCMC): the low-pressure
  slope of the isotherm without electrostatics;
- ``co2_lj_boltzmann_energy_kj_mol``: ⟨U exp(−βU)⟩ / ⟨exp(−βU)⟩, the energy of an adsorbed
  molecule at infinite dilution (Q_st ≈ RT − this);
- ``co2_lj_min_energy_kj_mol``: the lowest sampled energy (the strongest site found);
- ``co2_lj_fraction_below_minus{10,15,20,25}_kj_mol``: the share of the cell's volume (of
  the samples) where the molecule is bound by more than 10, 15, 20, 25 kJ/mol: a coarse
  histogram of the landscape;
- ``co2_lj_accessible_fraction`` and ``co2_lj_accessible_volume_cm3_g``: the share of the
  cell where the molecule's Lennard-Jones energy is not above zero (where it fits), and that volume
  per gram of framework: the room CO2 has, which decides uptake at high pressure;
- ``co2_lj_pore_filling_{0.15,16}bar_mol_kg``: a mean-field uptake at the labels' two
  pressures. Each sample point holds CO2 at the bulk gas's density times its Boltzmann
  factor, saturating at the density of liquid CO2 (a local Langmuir form): with
  x = ρ_gas e^(−βU) / ρ_liquid, the local density is ρ_liquid x / (1 + x). Summed over the
  cell, no molecule sees another, so it is no GCMC: it joins the room and the binding
  energies in one number shaped like an isotherm;
- ``co2_lj_coulomb_{log10_henry_mol_kg_pa,boltzmann_energy_kj_mol,min_energy_kj_mol}`` and
  ``co2_lj_coulomb_pore_filling_{0.15,16}bar_mol_kg``: the Henry coefficient, Boltzmann and
  lowest energies and the pore filling with the Coulomb energy of CO2's charges (C +0.70 e,
  O −0.35 e) in the framework's partial charges added. Not Ewald: plain 1/r sums over the atom images within
  12 Å of the molecule's centre, each image seen by all three sites (the molecule is neutral,
  so a distant image acts through its field gradient and the truncation adds no net
  charge). NaN unless every atom has a charge (the CoRE MOF package's CIFs have none);
- the same five charged ones named with ``_6144_points`` at the end: from 6,144 points
  (``EnergySettings.fine_points``) whose first 2,048 are the sample above, so one sample gives
  both and the 2,048-point names keep their numbers. A few strongly bound points carry the
  charged Henry coefficient: at 2,048 points its sampling error is ~0.46 in log10 K_H on
  real charged CoRE MOFs, at 6,144 ~0.24 (``bench/fine_sample.py``), for ~2.3 times the cost.

Positions where a site overlaps an atom (Lennard-Jones energy above ``cap_k``, 10⁴ K, a
Boltzmann factor of e⁻³³) count at ``cap_k``, charged or not: a structure with no room for CO2
gets a finite, very low Henry coefficient rather than −∞. The sample is fixed in fractional
coordinates, so moving a structure's origin changes the numbers by sampling noise (at 2,048
points ~0.1 in log10 K_H, ~1 kJ/mol in the Boltzmann energy; the histogram far less).
Changing :class:`EnergySettings`' defaults changes what the names mean: give such values new
names rather than mixing them with shards made before.

The energies come from compiled loops (``energy_kernels.cpp`` via
:mod:`mofsieve.descriptors.energy_native`, a few ms per CoRE MOF) or, where those cannot be
built, from :func:`insertion_energies_numpy`, the reference the tests hold them to (the same
numbers to ~1e-5 relative, ~1000 times slower).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mofsieve import forcefield as ff
from mofsieve.descriptors import energy_native
from mofsieve.descriptors.cell import DescriptorError
from mofsieve.descriptors.geometric import _quasi_random_fractions

# Energy thresholds (kJ/mol) of the histogram descriptors, by name.
FRACTION_THRESHOLDS_KJ_MOL: dict[str, float] = {
    f"co2_lj_fraction_below_minus{t}_kj_mol": -float(t) for t in (10, 15, 20, 25)
}
# Pressures (bar) of the pore-filling descriptors, by the name's part: the labels' two.
PORE_FILLING_PRESSURES_BAR: dict[str, float] = {"0.15bar": 0.15, "16bar": 16.0}
LJ_DESCRIPTORS: tuple[str, ...] = (
    "co2_lj_log10_henry_mol_kg_pa",
    "co2_lj_boltzmann_energy_kj_mol",
    "co2_lj_min_energy_kj_mol",
    *FRACTION_THRESHOLDS_KJ_MOL,
    "co2_lj_accessible_fraction",
    "co2_lj_accessible_volume_cm3_g",
    *(f"co2_lj_pore_filling_{p}_mol_kg" for p in PORE_FILLING_PRESSURES_BAR),
)
# The same sample with the framework's partial charges: Lennard-Jones + Coulomb.
CHARGED_DESCRIPTORS: tuple[str, ...] = (
    "co2_lj_coulomb_log10_henry_mol_kg_pa",
    "co2_lj_coulomb_boltzmann_energy_kj_mol",
    "co2_lj_coulomb_min_energy_kj_mol",
    *(f"co2_lj_coulomb_pore_filling_{p}_mol_kg" for p in PORE_FILLING_PRESSURES_BAR),
)
# The charged ones again from a larger sample (see the module docstring); the name says its size.
FINE_POINTS = 6144
FINE_SUFFIX = f"_{FINE_POINTS}_points"
FINE_CHARGED_DESCRIPTORS: tuple[str, ...] = tuple(n + FINE_SUFFIX for n in CHARGED_DESCRIPTORS)
ENERGY_DESCRIPTORS: tuple[str, ...] = (
    LJ_DESCRIPTORS + CHARGED_DESCRIPTORS + FINE_CHARGED_DESCRIPTORS
)


def charged_globals(global_features: Sequence[str]) -> list[int]:
    """Positions of the descriptors made from partial charges among ``global_features``."""
    charged = frozenset(CHARGED_DESCRIPTORS + FINE_CHARGED_DESCRIPTORS)
    return [i for i, name in enumerate(global_features) if name in charged]


GAS_CONSTANT = 8.314462618  # J mol⁻¹ K⁻¹
K_TO_KJ_MOL = GAS_CONSTANT / 1000.0
BOLTZMANN_J_K = 1.380649e-23
AVOGADRO_PER_A3 = 0.602214076  # N_A × 1e-24: mol/cm³ → molecules/Å³
CO2_MOLAR_MASS_G_MOL = 44.0095
# saturated liquid CO2 at 298 K (NIST webbook: 712 kg/m³): where pore filling saturates
CO2_LIQUID_DENSITY_G_CM3 = 0.712
COULOMB_K_A = 167101.0  # e²/(4πε₀ k_B) in K Å (as energy_kernels.cpp's kCoulombK)


@dataclass(frozen=True)
class EnergySettings:
    """The sample and the physics of the energy descriptors (the labels' 298 K, 12 Å)."""

    points: int = 2048  # positions (each with one orientation) per cell
    # the ``…_6144_points`` descriptors' sample: these many positions, the first ``points`` of
    # them the sample above (the R3 and R2 sequences extend), in the bins of ``points``
    fine_points: int = FINE_POINTS
    temperature_k: float = 298.0
    cutoff: float = ff.DEFAULT_CUTOFF
    cap_k: float = 1.0e4  # energies above this count as this (a site inside an atom)
    # compiled loops only (neither changes a number beyond single-precision rounding): the
    # points are binned about this many to a bin (each bin gathers the atom images within
    # reach once), bins no narrower than ``min_bin_width`` Å; and images within
    # ``near_reach`` Å are summed first, to find overlapping sites early. 32 rather than 16
    # since the Coulomb sums were vectorized: the gather became the larger cost (3.1 → 2.3 ms
    # per CIF; descriptors within 3e-4 kJ/mol on 1,000 core-mof MOFs)
    points_per_bin: int = 32
    min_bin_width: float = 2.0
    near_reach: float = 4.0


DEFAULT_ENERGY = EnergySettings()

# R2 sequence (Roberts 2018): steps 1/g, 1/g² with g the plastic number (x³ = x + 1);
# independent of the R3 positions' steps, so orientation and position do not correlate.
_PLASTIC = 1.324717957244746
_R2_STEP = np.array([1 / _PLASTIC, 1 / _PLASTIC**2])


@functools.cache
def _orientations(count: int) -> np.ndarray:
    """``count`` unit vectors, quasi-uniform over the sphere; shared by every call."""
    u = (0.5 + np.arange(1, count + 1)[:, None] * _R2_STEP) % 1.0
    z = 1.0 - 2.0 * u[:, 0]
    ring = np.sqrt(np.maximum(0.0, 1.0 - z * z))
    azimuth = 2.0 * math.pi * u[:, 1]
    axes = np.stack([ring * np.cos(azimuth), ring * np.sin(azimuth), z], axis=1)
    axes.flags.writeable = False
    return axes


@functools.cache
def _uff_table() -> tuple[np.ndarray, np.ndarray]:
    """UFF (ε/k_B in K, σ in Å) by atomic number; NaN where UFF has no parameters."""
    from ase.data import chemical_symbols

    eps = np.full(len(chemical_symbols), np.nan)
    sigma = np.full(len(chemical_symbols), np.nan)
    for z, symbol in enumerate(chemical_symbols):
        if symbol in ff.UFF_X_D:
            eps[z], sigma[z] = ff.uff_lennard_jones(symbol)
    eps.flags.writeable = sigma.flags.writeable = False
    return eps, sigma


def co2_sites() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """TraPPE CO2's sites, O, C, O: offsets along the axis (Å), ε/k_B (K), σ (Å), charges
    (e)."""
    offsets = np.array([z for _, z in ff.CO2_ATOMS])
    eps, sigma, charge = (np.array([ff.TRAPPE_CO2[name][k] for name, _ in ff.CO2_ATOMS])
                          for k in range(3))  # fmt: skip
    return offsets, eps, sigma, charge


def pair_parameters(
    numbers: np.ndarray, site_eps: np.ndarray, site_sigma: np.ndarray, cutoff: float
) -> tuple[np.ndarray, np.ndarray]:
    """(each atom's type, types × sites × 3): the framework's elements as types 0, 1, …, and
    for each type and site A = 4εσ¹², B = 4εσ⁶ (K Å¹², K Å⁶), Lorentz–Berthelot mixed with
    UFF, and the shift A/rc¹² − B/rc⁶ that cuts and shifts the pair at ``cutoff``. Raises
    :class:`DescriptorError` for an element without UFF parameters."""
    elements, types = np.unique(numbers, return_inverse=True)
    table_eps, table_sigma = _uff_table()
    type_eps, type_sigma = table_eps[elements], table_sigma[elements]
    if np.isnan(type_eps).any():
        from ase.data import chemical_symbols

        missing = [chemical_symbols[z] for z in elements[np.isnan(type_eps)]]
        raise DescriptorError(f"no UFF parameters for element(s) {', '.join(missing)}")
    eps = np.sqrt(type_eps[:, None] * site_eps[None, :])
    sigma = 0.5 * (type_sigma[:, None] + site_sigma[None, :])
    b = 4.0 * eps * sigma**6
    a = b * sigma**6
    shift = a / cutoff**12 - b / cutoff**6
    return types.astype(np.int32), np.stack([a, b, shift], axis=-1)


def insertion_energies_numpy(
    atom_cart: np.ndarray,
    types: np.ndarray,
    site_offsets: np.ndarray,
    pair_params: np.ndarray,
    cell: np.ndarray,
    points: np.ndarray,
    axes: np.ndarray,
    *,
    cutoff: float,
    cap: float,
    charges: np.ndarray | None = None,
    site_charges: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """(Lennard-Jones, Coulomb) energies (K) of a rigid linear molecule, sites at
    ``site_offsets`` along the unit ``axes``, centred at each of ``points`` (Cartesian, Å) in
    the periodic framework. Lennard-Jones: every atom image within ``cutoff`` of each site,
    pairs cut and shifted (``pair_params``, see :func:`pair_parameters`), the total capped at
    ``cap``. Coulomb (only with ``charges``, else None): the sites' charges with every atom
    image within ``cutoff`` of the molecule's centre, plain 1/r, where the Lennard-Jones
    energy is below ``cap`` (0 elsewhere). The reference for the compiled loops: plain sums
    over explicit images, in float64."""
    inv = np.linalg.inv(cell)
    frac = atom_cart @ inv
    wrapped = (frac - np.floor(frac)) @ cell
    reach = cutoff + float(np.max(np.abs(site_offsets)))
    # point and atom both wrapped into the cell: image shifts beyond ±(reach · recip + 1) are
    # farther than the reach along that axis
    recip = np.linalg.norm(inv, axis=0)
    spans = [np.arange(-n, n + 1) for n in np.ceil(reach * recip).astype(int) + 1]
    shifts = np.stack(np.meshgrid(*spans, indexing="ij"), axis=-1).reshape(-1, 3)
    images = (wrapped[None, :, :] + (shifts @ cell)[:, None, :]).reshape(-1, 3)
    # sites × images × 3, images shift-major as ``images``
    params = np.tile(pair_params[types].transpose(1, 0, 2), (1, len(shifts), 1))
    point_frac = points @ inv
    centres = (point_frac - np.floor(point_frac)) @ cell
    image_charges = None if charges is None else np.tile(charges, len(shifts))
    energies = np.empty(len(points))
    coulomb = None if charges is None else np.zeros(len(points))
    chunk = max(1, 2_000_000 // max(1, len(images)))
    cutoff2 = cutoff * cutoff
    for start in range(0, len(points), chunk):
        stop = min(start + chunk, len(points))
        total = np.zeros(stop - start)
        electrostatic = np.zeros(stop - start)
        near_centre = (((centres[start:stop, None, :] - images[None, :, :]) ** 2).sum(-1)
                       < cutoff2)  # fmt: skip
        for site, offset in enumerate(site_offsets):
            where = centres[start:stop] + offset * axes[start:stop]
            r2 = ((where[:, None, :] - images[None, :, :]) ** 2).sum(axis=-1)
            inside = r2 < cutoff2
            with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
                inv6 = np.where(inside, 1.0 / r2, 0.0) ** 3
                a, b, shift = params[site, :, 0], params[site, :, 1], params[site, :, 2]
                pair = (a * inv6 - b) * inv6 - shift
                if image_charges is not None and site_charges is not None:
                    potential = np.where(near_centre, image_charges / np.sqrt(r2), 0.0)
                    electrostatic += site_charges[site] * COULOMB_K_A * potential.sum(axis=1)
            total += np.where(inside, pair, 0.0).sum(axis=1)
        energies[start:stop] = np.minimum(np.nan_to_num(total, nan=cap, posinf=cap), cap)
        if coulomb is not None:
            fits = energies[start:stop] < cap
            coulomb[start:stop] = np.where(fits, np.nan_to_num(electrostatic), 0.0)
    return energies, coulomb


def cell_frame(cell: np.ndarray) -> np.ndarray:
    """Orthonormal rows attached to the cell (Gram–Schmidt of a, b, c): orientations given in
    this frame turn with the cell, so a rotated copy of a structure gets the same sample."""
    frame = np.array(cell, dtype=np.float64)
    for i in range(3):
        for j in range(i):
            frame[i] -= (frame[i] @ frame[j]) * frame[j]
        frame[i] /= np.linalg.norm(frame[i])
    return frame


def sample(
    cell: np.ndarray, settings: EnergySettings, count: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The insertion positions (Cartesian, Å) and orientations (unit axes) in ``cell``: fixed
    in the cell's fractional coordinates and its own frame (:func:`cell_frame`). ``count``
    (default ``settings.points``) of them; a longer sample starts with a shorter one."""
    count = settings.points if count is None else count
    points = _quasi_random_fractions(count) @ cell
    return points, _orientations(count) @ cell_frame(cell)


def co2_energies(
    numbers: np.ndarray,
    frac: np.ndarray,
    cell: np.ndarray,
    settings: EnergySettings = DEFAULT_ENERGY,
    charges: np.ndarray | None = None,
    count: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """TraPPE CO2's (Lennard-Jones, Coulomb) energies (K) at each of the first ``count``
    (default ``settings.points``) sample positions of the cell (:func:`sample`), Coulomb only
    with the atoms' ``charges`` (else None); see :func:`insertion_energies_numpy`. Compiled
    where the kernel can be built, numpy otherwise. The bins are those of ``settings.points``
    whatever ``count``, so the first ``settings.points`` energies are the same numbers."""
    offsets, site_eps, site_sigma, site_charges = co2_sites()
    types, params = pair_parameters(numbers, site_eps, site_sigma, settings.cutoff)
    atom_cart = (frac - np.floor(frac)) @ cell
    points, axes = sample(cell, settings, count)
    charged = {} if charges is None else {"charges": np.asarray(charges, np.float64),
                                          "site_charges": site_charges}  # fmt: skip
    library = energy_native.kernel()
    if library is None:
        return insertion_energies_numpy(atom_cart, types, offsets, params, cell, points, axes,
                                        cutoff=settings.cutoff, cap=settings.cap_k,
                                        **charged)  # fmt: skip
    volume = abs(float(np.linalg.det(cell)))
    return energy_native.insertion_energies(
        library, atom_cart, types, offsets, params, cell, points, axes,
        cutoff=settings.cutoff, cap=settings.cap_k,
        bin_width=max(settings.min_bin_width,
                      (volume * settings.points_per_bin / settings.points) ** (1 / 3)),
        near_reach=settings.near_reach, **charged,
    )  # fmt: skip


def landscape(
    energies_k: np.ndarray, temperature_k: float, density_g_cm3: float
) -> dict[str, float]:
    """log10 K_H (mol kg⁻¹ Pa⁻¹), the Boltzmann-weighted and the lowest energy (kJ/mol) of a
    sample of energies (K), keyed ``log10_henry``, ``boltzmann`` and ``min``; Boltzmann sums
    taken relative to the lowest energy, so never 0/0 or overflow."""
    lowest = float(energies_k.min())
    weights = np.exp(-(energies_k - lowest) / temperature_k)
    total = float(weights.sum())
    # ln⟨exp(−βU)⟩ = −βU_min + ln⟨exp(−β(U − U_min))⟩
    log_mean = -lowest / temperature_k + math.log(total / len(energies_k))
    # K_H = ⟨exp(−βU)⟩ / (R T ρ), ρ in kg/m³ (g/cm³ × 1000)
    log_rt_rho = math.log(GAS_CONSTANT * temperature_k * density_g_cm3 * 1e3)
    return {
        "log10_henry": (log_mean - log_rt_rho) / math.log(10.0),
        "boltzmann": float(energies_k @ weights) / total * K_TO_KJ_MOL,
        "min": lowest * K_TO_KJ_MOL,
    }


def pore_filling_mol_kg(
    energies_k: np.ndarray, temperature_k: float, pressure_bar: float, density_g_cm3: float
) -> float:
    """Mean-field uptake (mol/kg) of a sample of energies (K) at ``pressure_bar``: each point
    at the bulk gas's density times its Boltzmann factor, saturating at liquid CO2's density
    (ρ_liquid x / (1 + x), x = ρ_gas e^(−βU) / ρ_liquid), averaged over the cell and divided
    by the framework's density."""
    gas = pressure_bar * 1e5 / (BOLTZMANN_J_K * temperature_k) * 1e-30  # molecules/Å³
    liquid = CO2_LIQUID_DENSITY_G_CM3 / CO2_MOLAR_MASS_G_MOL * AVOGADRO_PER_A3
    log_x = math.log(gas / liquid) - np.asarray(energies_k, np.float64) / temperature_k
    # x / (1 + x) as exp(−log(1 + 1/x)): no overflow for the deepest sites
    filled = float(np.mean(np.exp(-np.logaddexp(0.0, -log_x))))
    # molecules/Å³ of the cell ÷ (g of framework/Å³ × N_A) → mol/g → mol/kg
    return liquid * filled / (density_g_cm3 * AVOGADRO_PER_A3) * 1e3


def summarize(
    lj_k: np.ndarray,
    coulomb_k: np.ndarray | None,
    settings: EnergySettings,
    density_g_cm3: float,
    wanted: frozenset[str] = frozenset(ENERGY_DESCRIPTORS),
) -> dict[str, float]:
    """The :data:`ENERGY_DESCRIPTORS` values from the sampled energies (K, as
    :func:`co2_energies` gives them) and the framework density; the charged ones NaN without
    Coulomb energies. The pore-filling ones only where ``wanted`` names them (each is a pass
    of exp/log over the sample), the rest always."""
    temperature_k, cap = settings.temperature_k, settings.cap_k
    lj = landscape(lj_k, temperature_k, density_g_cm3)
    values = {
        "co2_lj_log10_henry_mol_kg_pa": lj["log10_henry"],
        "co2_lj_boltzmann_energy_kj_mol": lj["boltzmann"],
        "co2_lj_min_energy_kj_mol": lj["min"],
    }
    for name, threshold in FRACTION_THRESHOLDS_KJ_MOL.items():
        values[name] = float(np.mean(lj_k * K_TO_KJ_MOL < threshold))
    # ≤: beyond the cutoff of every atom (the middle of a pore over 24 Å) the energy is 0
    accessible = float(np.mean(lj_k <= 0.0))
    values["co2_lj_accessible_fraction"] = accessible
    values["co2_lj_accessible_volume_cm3_g"] = accessible / density_g_cm3
    for part, bar in PORE_FILLING_PRESSURES_BAR.items():
        if (name := f"co2_lj_pore_filling_{part}_mol_kg") in wanted:
            values[name] = pore_filling_mol_kg(lj_k, temperature_k, bar, density_g_cm3)
    if coulomb_k is None:
        values.update(dict.fromkeys(CHARGED_DESCRIPTORS, math.nan))
    else:
        # where the Lennard-Jones energy is at the cap the molecule does not fit, charged or
        # not (the Coulomb sum there is 0, not computed)
        total = np.minimum(np.where(lj_k < cap, lj_k + coulomb_k, cap), cap)
        full = landscape(total, temperature_k, density_g_cm3)
        values["co2_lj_coulomb_log10_henry_mol_kg_pa"] = full["log10_henry"]
        values["co2_lj_coulomb_boltzmann_energy_kj_mol"] = full["boltzmann"]
        values["co2_lj_coulomb_min_energy_kj_mol"] = full["min"]
        for part, bar in PORE_FILLING_PRESSURES_BAR.items():
            if (name := f"co2_lj_coulomb_pore_filling_{part}_mol_kg") in wanted:
                values[name] = pore_filling_mol_kg(total, temperature_k, bar, density_g_cm3)
    return values


def energy_descriptors(
    numbers: np.ndarray,
    frac: np.ndarray,
    cell: np.ndarray,
    wanted: frozenset[str],
    settings: EnergySettings = DEFAULT_ENERGY,
    *,
    density: float,
    charges: np.ndarray | None = None,
) -> dict[str, float]:
    """The energy descriptors ``wanted`` names (all cost the same one sample) of a validated
    structure; ``density`` in g/cm³ (:func:`mofsieve.descriptors.cell.density`). The charged
    ones need every atom's partial charge (``charges``, e): NaN where any is missing."""
    usable = charges is not None and len(charges) == len(numbers)
    usable = usable and bool(np.isfinite(np.asarray(charges, np.float64)).all())
    fine = frozenset(n.removesuffix(FINE_SUFFIX) for n in wanted & frozenset(FINE_CHARGED_DESCRIPTORS))  # fmt: skip
    with_coulomb = usable and bool((wanted | fine) & frozenset(CHARGED_DESCRIPTORS))
    if fine and settings.fine_points < settings.points:
        raise ValueError(f"fine_points ({settings.fine_points}) below points ({settings.points})")  # fmt: skip
    lj, coulomb = co2_energies(numbers, frac, cell, settings,
                               charges if with_coulomb else None,
                               settings.fine_points if fine else settings.points)  # fmt: skip
    n = settings.points
    values = summarize(lj[:n], None if coulomb is None else coulomb[:n], settings, density, wanted)
    if fine:
        fine_values = summarize(lj, coulomb, settings, density, fine)
        values.update({name + FINE_SUFFIX: fine_values[name] for name in fine})
    return {name: values[name] for name in wanted}
