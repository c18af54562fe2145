"""The GCMC force field, one source of truth: UFF framework, TraPPE CO2, Lorentz–Berthelot.

Every GCMC input mofsieve writes or runs takes its parameters from here: the RASPA2 decks
(``simulation.input`` + ``.def`` files) and the RASPA3 JSON decks of ``mofsieve gcmc``, and the
in-process RASPA3 runs of ``mofsieve simulate``. So do the simulation-box rules: a 12 Å cutoff
for Lennard-Jones and real-space Ewald, Lennard-Jones cut and shifted without tail
corrections, and unit cells replicated until every perpendicular width of the box is at
least twice the cutoff.

Sources: UFF — Rappé, A. K. et al. J. Am. Chem. Soc. 114, 10024 (1992), Table 1
(x_i → σ = x_i / 2^(1/6), D_i → ε/k_B = D_i × 503.22 K per kcal/mol); TraPPE CO2 — Potoff,
J. J. & Siepmann, J. I. AIChE J. 47, 1676 (2001) (C: ε/k_B 27.0 K, σ 2.80 Å, q +0.70 e;
O: 79.0 K, 3.05 Å, −0.35 e; C=O 1.16 Å, rigid and linear); CO2 critical constants for the
Peng–Robinson fugacity as RASPA ships them (T_c 304.1282 K, p_c 7.3773 MPa, ω 0.22394).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

KCAL_PER_MOL_IN_K = 503.2195  # 1 kcal/mol / k_B
BAR_IN_PA = 1.0e5
DEFAULT_CUTOFF = 12.0  # Å, Lennard-Jones and the real-space part of Ewald
MIXING_RULE = "Lorentz-Berthelot"
# Lennard-Jones truncation: "shifted" (cut and shifted, no tail corrections; the default,
# closest to the CoRE MOF 2019 labels) or "truncated" (plain cut with tail corrections).
TRUNCATIONS = ("shifted", "truncated")
DEFAULT_TRUNCATION = "shifted"

# UFF (Rappé et al. 1992, Table 1): element -> (x_i in Å, D_i in kcal/mol)
UFF_X_D: dict[str, tuple[float, float]] = {
    "H": (2.886, 0.044), "He": (2.362, 0.056), "Li": (2.451, 0.025), "Be": (2.745, 0.085),
    "B": (4.083, 0.180), "C": (3.851, 0.105), "N": (3.660, 0.069), "O": (3.500, 0.060),
    "F": (3.364, 0.050), "Ne": (3.243, 0.042), "Na": (2.983, 0.030), "Mg": (3.021, 0.111),
    "Al": (4.499, 0.505), "Si": (4.295, 0.402), "P": (4.147, 0.305), "S": (4.035, 0.274),
    "Cl": (3.947, 0.227), "Ar": (3.868, 0.185), "K": (3.812, 0.035), "Ca": (3.399, 0.238),
    "Sc": (3.295, 0.019), "Ti": (3.175, 0.017), "V": (3.144, 0.016), "Cr": (3.023, 0.015),
    "Mn": (2.961, 0.013), "Fe": (2.912, 0.013), "Co": (2.872, 0.014), "Ni": (2.834, 0.015),
    "Cu": (3.495, 0.005), "Zn": (2.763, 0.124), "Ga": (4.383, 0.415), "Ge": (4.280, 0.379),
    "As": (4.230, 0.309), "Se": (4.205, 0.291), "Br": (4.189, 0.251), "Kr": (4.141, 0.220),
    "Rb": (4.114, 0.040), "Sr": (3.641, 0.235), "Y": (3.345, 0.072), "Zr": (3.124, 0.069),
    "Nb": (3.165, 0.059), "Mo": (3.052, 0.056), "Tc": (2.998, 0.048), "Ru": (2.963, 0.056),
    "Rh": (2.929, 0.053), "Pd": (2.899, 0.048), "Ag": (3.148, 0.036), "Cd": (2.848, 0.228),
    "In": (4.463, 0.599), "Sn": (4.392, 0.567), "Sb": (4.420, 0.449), "Te": (4.470, 0.398),
    "I": (4.500, 0.339), "Xe": (4.404, 0.332), "Cs": (4.517, 0.045), "Ba": (3.703, 0.364),
    "La": (3.522, 0.017), "Ce": (3.556, 0.013), "Pr": (3.606, 0.010), "Nd": (3.575, 0.010),
    "Pm": (3.547, 0.009), "Sm": (3.520, 0.008), "Eu": (3.493, 0.008), "Gd": (3.368, 0.009),
    "Tb": (3.451, 0.007), "Dy": (3.428, 0.007), "Ho": (3.409, 0.007), "Er": (3.391, 0.007),
    "Tm": (3.374, 0.006), "Yb": (3.355, 0.228), "Lu": (3.640, 0.041), "Hf": (3.141, 0.072),
    "Ta": (3.170, 0.081), "W": (3.069, 0.067), "Re": (2.954, 0.066), "Os": (3.120, 0.037),
    "Ir": (2.840, 0.073), "Pt": (2.754, 0.080), "Au": (3.293, 0.039), "Hg": (2.705, 0.385),
    "Tl": (4.347, 0.680), "Pb": (4.297, 0.663), "Bi": (4.370, 0.518), "Po": (4.709, 0.325),
    "At": (4.750, 0.284), "Rn": (4.765, 0.248), "Fr": (4.900, 0.050), "Ra": (3.677, 0.404),
    "Ac": (3.478, 0.033), "Th": (3.396, 0.026), "Pa": (3.424, 0.022), "U": (3.395, 0.022),
    "Np": (3.424, 0.019), "Pu": (3.424, 0.016), "Am": (3.381, 0.014), "Cm": (3.326, 0.013),
    "Bk": (3.339, 0.013), "Cf": (3.313, 0.013), "Es": (3.299, 0.012), "Fm": (3.286, 0.012),
    "Md": (3.274, 0.011), "No": (3.248, 0.011), "Lr": (3.236, 0.011),
}  # fmt: skip

# TraPPE CO2 (Potoff & Siepmann 2001): pseudo atom -> (ε/k_B in K, σ in Å, charge in e, mass)
TRAPPE_CO2: dict[str, tuple[float, float, float, float]] = {
    "C_co2": (27.0, 2.80, 0.70, 12.0107),
    "O_co2": (79.0, 3.05, -0.35, 15.9994),
}
TRAPPE_CO2_BOND = 1.16  # Å
# the rigid molecule: (pseudo atom, z in Å) along its axis, O–C–O
CO2_ATOMS: tuple[tuple[str, float], ...] = (
    ("O_co2", TRAPPE_CO2_BOND),
    ("C_co2", 0.0),
    ("O_co2", -TRAPPE_CO2_BOND),
)
CO2_CRITICAL = (304.1282, 7377300.0, 0.22394)  # T_c (K), p_c (Pa), acentric factor


class ForceFieldError(ValueError):
    """An element without UFF parameters, or a box setting the force field cannot use."""


@dataclass(frozen=True)
class PseudoAtomType:
    """One pseudo atom: its Lennard-Jones parameters, mass and (for CO2) its fixed charge.

    Framework pseudo atoms are named by their element and carry no charge of their own: each
    framework atom brings its partial charge from the CIF (or the charge source).
    """

    name: str
    element: str
    atomic_number: int
    framework: bool
    mass: float  # g/mol
    charge: float  # e
    epsilon_k: float  # ε/k_B, K
    sigma: float  # Å
    source: str


def uff_lennard_jones(symbol: str) -> tuple[float, float]:
    """UFF (ε/k_B in K, σ in Å) for an element."""
    try:
        x, d = UFF_X_D[symbol]
    except KeyError:
        raise ForceFieldError(f"no UFF parameters for element {symbol!r}") from None
    return d * KCAL_PER_MOL_IN_K, x / 2 ** (1 / 6)


def element_mass(symbol: str) -> float:
    """Standard atomic mass (g/mol) of an element, as ASE tabulates it."""
    from ase.data import atomic_masses, atomic_numbers

    if symbol not in atomic_numbers:
        raise ForceFieldError(f"unknown element {symbol!r}")
    return float(atomic_masses[atomic_numbers[symbol]])


def framework_pseudo_atoms(elements: Iterable[str]) -> list[PseudoAtomType]:
    """UFF pseudo atoms for a framework's elements, sorted by symbol; refuses unknown ones."""
    from ase.data import atomic_numbers

    out = []
    for symbol in sorted(set(elements)):
        eps, sigma = uff_lennard_jones(symbol)
        out.append(
            PseudoAtomType(
                name=symbol,
                element=symbol,
                atomic_number=int(atomic_numbers[symbol]),
                framework=True,
                mass=element_mass(symbol),
                charge=0.0,
                epsilon_k=eps,
                sigma=sigma,
                source="UFF, Rappé et al. J. Am. Chem. Soc. 114, 10024 (1992)",
            )
        )
    return out


def co2_pseudo_atoms() -> list[PseudoAtomType]:
    """The two TraPPE CO2 pseudo atoms, ``C_co2`` then ``O_co2``."""
    out = []
    for name, (eps, sigma, charge, mass) in TRAPPE_CO2.items():
        element = name.split("_")[0]
        out.append(
            PseudoAtomType(
                name=name,
                element=element,
                atomic_number=6 if element == "C" else 8,
                framework=False,
                mass=mass,
                charge=charge,
                epsilon_k=eps,
                sigma=sigma,
                source="TraPPE, Potoff & Siepmann, AIChE J. 47, 1676 (2001)",
            )
        )
    return out


def lorentz_berthelot(a: PseudoAtomType, b: PseudoAtomType) -> tuple[float, float]:
    """Mixed (ε/k_B, σ) of two pseudo atoms: geometric mean of ε, arithmetic mean of σ."""
    return math.sqrt(a.epsilon_k * b.epsilon_k), 0.5 * (a.sigma + b.sigma)


def check_truncation(truncation: str) -> str:
    if truncation not in TRUNCATIONS:
        raise ForceFieldError(f"truncation must be one of {TRUNCATIONS}, not {truncation!r}")
    return truncation


# ---------------------------------------------------------------------------------------------
# the simulation box


def perpendicular_widths(lattice: np.ndarray) -> np.ndarray:
    """Distances between opposite faces of the cell (Å): V / |b × c|, V / |c × a|, V / |a × b|."""
    a, b, c = np.asarray(lattice, dtype=np.float64)
    volume = abs(float(np.dot(a, np.cross(b, c))))
    areas = np.array(
        [
            np.linalg.norm(np.cross(b, c)),
            np.linalg.norm(np.cross(c, a)),
            np.linalg.norm(np.cross(a, b)),
        ]
    )
    return volume / areas


def unit_cells(lattice: np.ndarray, cutoff: float = DEFAULT_CUTOFF) -> tuple[int, int, int]:
    """Replications so that every perpendicular width of the box is ≥ 2 × cutoff."""
    widths = perpendicular_widths(lattice)
    # the 1e-9 keeps a cell of exactly 2 × cutoff from asking for a second copy
    n = [max(1, math.ceil(2.0 * cutoff / w - 1e-9)) for w in widths]
    return n[0], n[1], n[2]
