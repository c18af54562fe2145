"""GCMC of CO2 in one framework with RASPA3, in-process (``raspalib``), behind argument checks.

``raspalib`` 3.1.0 (pinned) has sharp edges that take the whole process down rather than
raising (``../shared/docs/raspa3.md``): cell angles are radians although its stubs say
degrees, and a wrong cell corrupts the heap when the system is built. So everything passed to
it is checked here first — cell lengths and angles, the replicated box against the cutoff,
coordinates, elements, charges, temperature, pressure, cycles, seed — and a bad value is an
:class:`EngineInputError` naming it. ``mofsieve simulate`` also runs each MOF in a child
process, so that anything the checks miss costs one MOF, not the run.

The model (all from :mod:`mofsieve.forcefield`): UFF framework atoms carrying their partial
charges, rigid TraPPE CO2, Lorentz–Berthelot, Lennard-Jones cut and shifted at 12 Å without
tail corrections (or truncated with tail corrections), Ewald (RASPA3 picks its parameters
for a relative precision of 1e-6), fugacity from the Peng–Robinson equation of state, moves
translation : rotation : CBMC reinsertion : CBMC swap = 0.5 : 0.5 : 0.5 : 1.0 as in the
RASPA2 and RASPA3 decks (:data:`MOVES`).
The uptake is the absolute loading, 1000 × molecules / framework mass (g/mol) of the box in
mol/kg, the formula RASPA3's own output uses; its error is RASPA3's 95 % confidence half-width
over 5 blocks of the production cycles.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mofsieve import forcefield as ff

RASPALIB_VERSION = "3.1.0"  # == the pin in pyproject.toml and envs/mofsieve.yaml
MIN_CELL_LENGTH = 0.5  # Å
MAX_ABS_CHARGE = 8.0  # e; a partial charge beyond this is a broken charge source
MAX_FRAMEWORK_ATOMS = 100_000  # in the replicated box
MAX_SEED = 2**63 - 1
# Monte Carlo moves of CO2, relative weights. Insertions and deletions are configurational-bias
# (CBMC) swaps, as RASPA2's and RASPA3's ``SwapProbability`` mean in their input files: with
# plain random swaps, MOFs with small or crowded pores were far from equilibrium after the
# same cycles (JEXSOV_clean at 16 bar, 300 + 800 cycles: 0.62 mol/kg with plain swaps, 1.42
# with CBMC swaps, published 1.70; ZEZPIF_clean 4.56 vs 7.20, published 7.37).
MOVES = {
    "translation_probability": 0.5,
    "rotation_probability": 0.5,
    "reinsertion_cbmc_probability": 0.5,
    "swap_cbmc_probability": 1.0,
}


Triple = tuple[float, float, float]


class EngineInputError(ValueError):
    """A value that must not reach raspalib (it would crash or silently mislead it)."""


class EngineError(RuntimeError):
    """raspalib missing, of another version, or returning no usable loading."""


@dataclass(frozen=True)
class FrameworkInput:
    """One framework as raspalib takes it: P1 cell (Å, radians), fractional coordinates."""

    name: str
    lengths: Triple  # a, b, c in Å
    angles_rad: Triple  # α, β, γ in radians
    elements: tuple[str, ...]  # one symbol per atom
    frac_coords: np.ndarray  # (n, 3)
    charges: np.ndarray  # (n,) e
    unit_cells: tuple[int, int, int]


@dataclass(frozen=True)
class Protocol:
    """One GCMC run: conditions, cycles and the force-field settings that may vary."""

    temperature_k: float
    pressure_bar: float
    cycles: int
    init_cycles: int
    seed: int
    cutoff: float = ff.DEFAULT_CUTOFF
    truncation: str = ff.DEFAULT_TRUNCATION


@dataclass(frozen=True)
class GcmcResult:
    uptake_mol_per_kg: float
    uptake_error_mol_per_kg: float  # 95 % confidence half-width (5 blocks)
    molecules: float  # per simulation box
    framework_mass_g_per_mol: float  # of the simulation box
    wall_s: float
    seconds_per_cycle: float


def lattice_to_cell(lattice: np.ndarray) -> tuple[Triple, Triple]:
    """(a, b, c) in Å and (α, β, γ) in radians of a lattice given as rows of cell vectors."""
    cell = np.asarray(lattice, dtype=np.float64)
    if cell.shape != (3, 3) or not np.isfinite(cell).all():
        raise EngineInputError(f"lattice must be a finite 3×3 matrix, got {cell.tolist()}")
    lengths = np.linalg.norm(cell, axis=1)
    if (lengths < MIN_CELL_LENGTH).any():
        raise EngineInputError(f"degenerate cell: lengths {np.round(lengths, 4).tolist()} Å")

    def angle(i: int, j: int) -> float:
        cosine = float(cell[i] @ cell[j] / (lengths[i] * lengths[j]))
        return math.acos(min(1.0, max(-1.0, cosine)))

    a, b, c = (float(x) for x in lengths)
    return (a, b, c), (angle(1, 2), angle(0, 2), angle(0, 1))


def cell_matrix(lengths: Sequence[float], angles_rad: Sequence[float]) -> np.ndarray:
    """Rows a, b, c of a cell from its lengths and angles (radians), a along x, b in the xy plane."""
    a, b, c = lengths
    alpha, beta, gamma = angles_rad
    cos_a, cos_b, cos_g = math.cos(alpha), math.cos(beta), math.cos(gamma)
    sin_g = math.sin(gamma)
    cx = c * cos_b
    cy = c * (cos_a - cos_b * cos_g) / sin_g
    cz = math.sqrt(max(c * c - cx * cx - cy * cy, 0.0))
    return np.array([[a, 0.0, 0.0], [b * cos_g, b * sin_g, 0.0], [cx, cy, cz]])


def validate_cell(lengths: Sequence[float], angles_rad: Sequence[float]) -> None:
    """Positive finite lengths; angles in radians, each in (0, π), that close a cell."""
    values = [float(x) for x in (*lengths, *angles_rad)]
    if len(values) != 6 or not all(math.isfinite(x) for x in values):
        raise EngineInputError(f"cell must be 3 finite lengths and 3 finite angles, got {values}")
    a, b, c, alpha, beta, gamma = values
    if min(a, b, c) < MIN_CELL_LENGTH:
        raise EngineInputError(
            f"degenerate cell: lengths {a:g}, {b:g}, {c:g} Å (each must be ≥ {MIN_CELL_LENGTH} Å)"
        )
    angles = (alpha, beta, gamma)
    if any(x >= math.pi for x in angles):
        raise EngineInputError(
            f"cell angles {alpha:g}, {beta:g}, {gamma:g} are not in (0, π): raspalib takes "
            "radians (degrees given?)"
        )
    if any(x <= 0.0 for x in angles):
        raise EngineInputError(f"cell angles {alpha:g}, {beta:g}, {gamma:g} must be > 0 radians")
    cos_a, cos_b, cos_g = (math.cos(x) for x in angles)
    factor = 1 - cos_a**2 - cos_b**2 - cos_g**2 + 2 * cos_a * cos_b * cos_g
    if factor < 1e-6:
        degrees = ", ".join(f"{math.degrees(x):.4g}" for x in angles)
        raise EngineInputError(f"degenerate cell: angles {degrees} degrees do not close a cell")


def validate_framework(fw: FrameworkInput, cutoff: float) -> None:
    """Raise :class:`EngineInputError` for anything in ``fw`` that raspalib must not see."""
    if not isinstance(fw.name, str) or not fw.name.strip():
        raise EngineInputError("framework name must be a non-empty string")
    validate_cell(fw.lengths, fw.angles_rad)
    frac = np.asarray(fw.frac_coords, dtype=np.float64)
    n = len(fw.elements)
    if n == 0:
        raise EngineInputError(f"{fw.name}: no atoms")
    if frac.shape != (n, 3):
        raise EngineInputError(f"{fw.name}: {frac.shape} coordinates for {n} atoms")
    if not np.isfinite(frac).all():
        i = int(np.flatnonzero(~np.isfinite(frac).all(axis=1))[0])
        raise EngineInputError(f"{fw.name}: non-finite coordinates {frac[i].tolist()} at atom {i}")
    charges = np.asarray(fw.charges, dtype=np.float64)
    if charges.shape != (n,):
        raise EngineInputError(f"{fw.name}: {charges.shape} charges for {n} atoms")
    if not np.isfinite(charges).all():
        i = int(np.flatnonzero(~np.isfinite(charges))[0])
        raise EngineInputError(f"{fw.name}: non-finite charge {charges[i]} at atom {i}")
    if (np.abs(charges) > MAX_ABS_CHARGE).any():
        i = int(np.argmax(np.abs(charges)))
        raise EngineInputError(
            f"{fw.name}: charge {charges[i]:+.3f} e at atom {i} ({fw.elements[i]}) is beyond "
            f"±{MAX_ABS_CHARGE:g} e"
        )
    try:
        ff.framework_pseudo_atoms(fw.elements)
    except ff.ForceFieldError as err:
        raise EngineInputError(f"{fw.name}: {err}") from None
    cells = fw.unit_cells
    if len(cells) != 3 or not all(isinstance(k, int | np.integer) and k >= 1 for k in cells):
        raise EngineInputError(f"{fw.name}: unit cells must be 3 integers ≥ 1, got {cells}")
    if n * math.prod(cells) > MAX_FRAMEWORK_ATOMS:
        raise EngineInputError(
            f"{fw.name}: {n} atoms × {cells} unit cells exceeds {MAX_FRAMEWORK_ATOMS} "
            "framework atoms in the box"
        )
    widths = ff.perpendicular_widths(cell_matrix(fw.lengths, fw.angles_rad)) * np.array(cells)
    if (widths < 2.0 * cutoff - 1e-6).any():
        raise EngineInputError(
            f"{fw.name}: box widths {np.round(widths, 3).tolist()} Å with {cells} unit cells are "
            f"below twice the {cutoff:g} Å cutoff"
        )


def validate_protocol(p: Protocol) -> None:
    """Conditions and cycles raspalib can run: finite, positive, integral where counted."""
    for name, value in (("temperature", p.temperature_k), ("pressure", p.pressure_bar)):
        if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            raise EngineInputError(f"{name} must be a finite number > 0, got {value!r}")
    if not isinstance(p.cutoff, int | float) or not math.isfinite(p.cutoff) or p.cutoff <= 0:
        raise EngineInputError(f"cutoff must be a finite number > 0 Å, got {p.cutoff!r}")
    for name, value, low in (("cycles", p.cycles, 1), ("init_cycles", p.init_cycles, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise EngineInputError(f"{name} must be an integer ≥ {low}, got {value!r}")
    if not isinstance(p.seed, int) or isinstance(p.seed, bool) or not 0 <= p.seed <= MAX_SEED:
        raise EngineInputError(f"seed must be an integer in [0, 2^63), got {p.seed!r}")
    try:
        ff.check_truncation(p.truncation)
    except ff.ForceFieldError as err:
        raise EngineInputError(str(err)) from None


def _raspalib() -> Any:
    """The raspalib module, once its version is the one mofsieve was checked with."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("raspalib")
    except PackageNotFoundError:
        raise EngineError(
            f"raspalib is not installed (pip install raspalib=={RASPALIB_VERSION})"
        ) from None
    if installed != RASPALIB_VERSION:
        raise EngineError(
            f"raspalib {installed} is installed; mofsieve is checked with {RASPALIB_VERSION} "
            f"(pip install raspalib=={RASPALIB_VERSION})"
        )
    os.environ.setdefault("RASPALIB_QUIET", "1")  # no OpenCL warning on import
    import raspalib

    return raspalib


def run_gcmc(fw: FrameworkInput, protocol: Protocol) -> GcmcResult:
    """Validate, then run one GCMC of CO2 in ``fw``; same inputs and seed, same result."""
    validate_protocol(protocol)
    validate_framework(fw, protocol.cutoff)
    r = _raspalib()
    framework_atoms = ff.framework_pseudo_atoms(fw.elements)
    co2_atoms = ff.co2_pseudo_atoms()
    types = framework_atoms + co2_atoms
    force_field = r.ForceField(
        pseudo_atoms=[
            r.PseudoAtom(
                name=t.name,
                framework_type=t.framework,
                mass=t.mass,
                charge=t.charge,
                atomic_number=t.atomic_number,
            )
            for t in types
        ],
        parameters=[r.VDWParameters(epsilon=t.epsilon_k, sigma=t.sigma) for t in types],
        mixing_rule=r.ForceField.MixingRule.LORENTZ_BERTHELOT,
        cutoff_framework_vdw=float(protocol.cutoff),
        cutoff_molecule_vdw=float(protocol.cutoff),
        cutoff_coulomb=float(protocol.cutoff),
        shifted=protocol.truncation == "shifted",
        tail_corrections=protocol.truncation == "truncated",
        use_charge=True,
    )
    index = {t.name: i for i, t in enumerate(types)}
    frac = np.asarray(fw.frac_coords, dtype=np.float64)
    frac = frac - np.floor(frac)
    atoms = [
        r.Atom(position=[float(x) for x in xyz], charge=float(q), type=index[symbol])
        for xyz, q, symbol in zip(
            frac, np.asarray(fw.charges, dtype=np.float64), fw.elements, strict=True
        )
    ]
    a, b, c = (float(x) for x in fw.lengths)
    alpha, beta, gamma = (float(x) for x in fw.angles_rad)
    box = r.SimulationBox(a=a, b=b, c=c, alpha=alpha, beta=beta, gamma=gamma)
    framework = r.Framework(
        force_field=force_field,
        component_name=fw.name,
        simulation_box=box,
        space_group_hall_number=1,
        defined_atoms=atoms,
        number_of_unit_cells=[int(k) for k in fw.unit_cells],
    )
    tc, pc, omega = ff.CO2_CRITICAL
    co2 = r.Component(
        force_field=force_field,
        component_name="CO2",
        critical_temperature=tc,
        critical_pressure=pc,
        acentric_factor=omega,
        defined_atoms=[
            r.Atom(position=[0.0, 0.0, z], charge=ff.TRAPPE_CO2[name][2], type=index[name])
            for name, z in ff.CO2_ATOMS
        ],
        particle_probabilities=r.MCMoveProbabilities(**MOVES),
    )
    system = r.System(
        force_field=force_field,
        external_temperature=float(protocol.temperature_k),
        external_pressure=float(protocol.pressure_bar) * ff.BAR_IN_PA,
        framework_components=framework,
        components=[co2],
        initial_number_of_molecules=[0],
    )
    mc = r.MonteCarlo(
        number_of_cycles=protocol.cycles,
        number_of_initialization_cycles=protocol.init_cycles,
        systems=[system],
        random_seed=protocol.seed,
    )
    start = time.perf_counter()
    mc.run()
    wall = time.perf_counter() - start
    done = mc.systems[0]  # the MonteCarlo object holds its own copy of the system
    molecules, error = done.average_loadings.average_loading_number_of_molecules(0)
    mass = done.framework_mass()
    if mass is None or not mass > 0 or not math.isfinite(molecules):
        raise EngineError(f"{fw.name}: raspalib returned no usable loading ({molecules})")
    return GcmcResult(
        uptake_mol_per_kg=1000.0 * molecules / mass,
        uptake_error_mol_per_kg=1000.0 * error / mass,
        molecules=float(molecules),
        framework_mass_g_per_mol=float(mass),
        wall_s=wall,
        seconds_per_cycle=wall / (protocol.cycles + protocol.init_cycles),
    )
