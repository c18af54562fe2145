"""Hand the flagged MOFs to GCMC: ready-to-run RASPA inputs and one ``sbatch --array`` script.

For every row of ``flagged.csv`` a folder ``OUT/<mof_id>/`` gets

- ``<mof_id>.cif``: the P1 unit cell with ``_atom_site_charge`` (when the source has charges),
  labels ``<Element><n>`` so that RASPA's ``RemoveAtomNumberCodeFromLabel`` maps each atom to
  its element's pseudo atom;
- ``simulation.input``: GCMC of pure CO2 at the configured temperature and pressure(s),
  ``UseChargesFromCIFFile yes``, Ewald electrostatics, and ``UnitCells`` chosen so that every
  perpendicular width of the simulation box is at least twice the cutoff;
- ``pseudo_atoms.def``, ``force_field_mixing_rules.def``, ``force_field.def``, ``CO2.def``:
  UFF Lennard-Jones parameters for the framework elements present, TraPPE CO2, and
  Lorentz–Berthelot mixing, written from the tables below (``Forcefield local``).

``OUT/mofs.txt`` lists the folders and ``OUT/run_raspa.sbatch`` runs one of them per array
task. ``OUT/charges.csv`` records the charge check (:mod:`mofsieve.charges`) of every folder.

Force-field sources: UFF — Rappé, A. K. et al. J. Am. Chem. Soc. 114, 10024 (1992), Table 1
(x_i → σ = x_i / 2^(1/6), D_i → ε/k_B = D_i × 503.22 K per kcal/mol); TraPPE CO2 — Potoff, J.
J. & Siepmann, J. I. AIChE J. 47, 1676 (2001) (C: ε/k_B 27.0 K, σ 2.80 Å, q +0.70 e;
O: 79.0 K, 3.05 Å, −0.35 e; C=O 1.16 Å, rigid and linear).
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mofsieve.atomic import write_csv_atomic, write_text_atomic
from mofsieve.charges import DEFAULT_NET_CHARGE_TOLERANCE, charge_status, read_cifs, warn_charges
from mofsieve.structures import p1_cif_text

log = logging.getLogger(__name__)

KCAL_PER_MOL_IN_K = 503.2195  # 1 kcal/mol / k_B
BAR_IN_PA = 1.0e5

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
CO2_CRITICAL = (304.1282, 7377300.0, 0.22394)  # T_c (K), p_c (Pa), acentric factor
CHARGES_COLUMNS = ("mof_id", "charge_status", "net_charge_e", "unit_cells", "note")


class GcmcError(ValueError):
    """A flagged MOF whose GCMC input cannot be written (unreadable CIF, unknown element)."""


def uff_lennard_jones(symbol: str) -> tuple[float, float]:
    """UFF (ε/k_B in K, σ in Å) for an element."""
    try:
        x, d = UFF_X_D[symbol]
    except KeyError:
        raise GcmcError(f"no UFF parameters for element {symbol!r}") from None
    return d * KCAL_PER_MOL_IN_K, x / 2 ** (1 / 6)


# ---------------------------------------------------------------------------------------------
# geometry


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


def unit_cells(lattice: np.ndarray, cutoff: float) -> tuple[int, int, int]:
    """Replications so that every perpendicular width of the box is ≥ 2 × cutoff."""
    widths = perpendicular_widths(lattice)
    # the 1e-9 keeps a cell of exactly 2 × cutoff from asking for a second copy
    n = [max(1, math.ceil(2.0 * cutoff / w - 1e-9)) for w in widths]
    return n[0], n[1], n[2]


# ---------------------------------------------------------------------------------------------
# writing


def _symbol(z: int) -> str:
    from ase.data import chemical_symbols

    return chemical_symbols[int(z)]


def pseudo_atoms_def(elements: Iterable[str]) -> str:
    from ase.data import atomic_masses, atomic_numbers

    rows = []
    for sym in sorted(set(elements)):
        uff_lennard_jones(sym)  # refuse unknown elements here, not at RASPA start-up
        mass = float(atomic_masses[atomic_numbers[sym]])
        rows.append(
            f"{sym:<8} yes  {sym:<3} {sym:<3} 0  {mass:10.5f}  0.0  0.0  1.0  1.0  0  0  "
            "absolute  0"
        )
    for name, (_, _, q, mass) in TRAPPE_CO2.items():
        sym = name.split("_")[0]
        rows.append(
            f"{name:<8} yes  {sym:<3} {sym:<3} 0  {mass:10.5f}  {q:+.4f}  0.0  1.0  1.0  "
            "0  0  absolute  0"
        )
    return (
        "#number of pseudo atoms\n"
        f"{len(rows)}\n"
        "#type    print as  chem oxidation mass charge polarization B-factor radii connectivity "
        "anisotropic anisotropic-type tinker-type\n" + "\n".join(rows) + "\n"
    )


def mixing_rules_def(elements: Iterable[str]) -> str:
    rows = []
    for sym in sorted(set(elements)):
        eps, sigma = uff_lennard_jones(sym)
        rows.append(f"{sym:<8} lennard-jones {eps:10.5f} {sigma:8.5f}   # UFF")
    for name, (eps, sigma, _, _) in TRAPPE_CO2.items():
        rows.append(f"{name:<8} lennard-jones {eps:10.5f} {sigma:8.5f}   # TraPPE")
    return (
        "# general rule for shifted vs truncated\nshifted\n"
        "# general rule tailcorrections\nno\n"
        f"# number of defined interactions\n{len(rows)}\n"
        "# type interaction epsilon/k_B (K) sigma (A)\n" + "\n".join(rows) + "\n"
        "# general mixing rule for Lennard-Jones\nLorentz-Berthelot\n"
    )


FORCE_FIELD_DEF = (
    "# rules to overwrite\n0\n# number of defined interactions\n0\n# mixing rules to overwrite\n0\n"
)


def co2_def() -> str:
    tc, pc, omega = CO2_CRITICAL
    half = TRAPPE_CO2_BOND
    return (
        "# critical constants: Temperature [T], Pressure [Pa], and Acentric factor [-]\n"
        f"{tc}\n{pc}\n{omega}\n"
        "# Number Of Atoms\n3\n# Number of groups\n1\n# CO2-group\nrigid\n# number of atoms\n3\n"
        "# atomic positions\n"
        f"0 O_co2 0.0 0.0 {half:.4f}\n1 C_co2 0.0 0.0 0.0\n2 O_co2 0.0 0.0 {-half:.4f}\n"
        "# Chiral centers Bond  BondDipoles Bend  UrayBradley InvBend  Torsion Imp. Torsion "
        "Bond/Bond Stretch/Bend Bend/Bend Stretch/Torsion Bend/Torsion IntraVDW IntraCoulomb\n"
        "               0    2            0    0            0       0        0            0"
        "         0            0         0               0            0        0            0\n"
        "# Bond stretch: atom n1-n2, type, parameters\n0 1 RIGID_BOND\n1 2 RIGID_BOND\n"
        "# Number of config moves\n0\n"
    )


@dataclass(frozen=True)
class GcmcSettings:
    temperature_k: float = 298.0
    pressures_bar: tuple[float, ...] = (0.15,)
    cycles: int = 20000
    init_cycles: int = 10000
    cutoff: float = 12.0
    print_every: int = 1000
    net_charge_tolerance: float = DEFAULT_NET_CHARGE_TOLERANCE


def simulation_input(
    mof_id: str, cells: tuple[int, int, int], settings: GcmcSettings, charge_note: str = ""
) -> str:
    pressures = " ".join(f"{p * BAR_IN_PA:.6g}" for p in settings.pressures_bar)
    note = f"# WARNING: {charge_note}\n" if charge_note else ""
    return (
        f"# RASPA GCMC of CO2 in {mof_id}, written by mofsieve gcmc\n{note}"
        "SimulationType                MonteCarlo\n"
        f"NumberOfCycles                {settings.cycles}\n"
        f"NumberOfInitializationCycles  {settings.init_cycles}\n"
        f"PrintEvery                    {settings.print_every}\n"
        "RestartFile                   no\n\n"
        "Forcefield                    local\n"
        "UseChargesFromCIFFile         yes\n"
        f"CutOffVDW                     {settings.cutoff}\n"
        f"CutOffChargeCharge            {settings.cutoff}\n"
        "ChargeMethod                  Ewald\n"
        "EwaldPrecision                1e-6\n\n"
        "Framework 0\n"
        f"FrameworkName                 {mof_id}\n"
        "RemoveAtomNumberCodeFromLabel yes\n"
        f"UnitCells                     {cells[0]} {cells[1]} {cells[2]}\n"
        f"ExternalTemperature           {settings.temperature_k}\n"
        f"ExternalPressure              {pressures}\n\n"
        "Component 0 MoleculeName             CO2\n"
        "            MoleculeDefinition       local\n"
        "            TranslationProbability   0.5\n"
        "            RotationProbability      0.5\n"
        "            ReinsertionProbability   0.5\n"
        "            SwapProbability          1.0\n"
        "            CreateNumberOfMolecules  0\n"
    )


def sbatch_array_script(mof_ids: list[str], settings: GcmcSettings, time_limit: str) -> str:
    n = len(mof_ids)
    return f"""#!/bin/bash
# GCMC of CO2 ({settings.temperature_k} K; {", ".join(f"{p:g}" for p in settings.pressures_bar)} bar) for the {n} flagged MOFs in mofs.txt.
# Submit from this folder:   sbatch run_raspa.sbatch
# Add partition/account as usual (sbatch -p PART -A ACCOUNT run_raspa.sbatch). If the cluster's
# MaxArraySize is below {n}, submit in pieces: OFFSET=1000 sbatch --array=0-999 run_raspa.sbatch
# RASPA's `simulate` must be on PATH (or set RASPA_SIMULATE=/path/to/simulate).
#SBATCH --job-name=mofsieve-gcmc
#SBATCH --array=0-{n - 1}
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=1
#SBATCH --time={time_limit}
#SBATCH --output=logs/raspa-%A_%a.out
set -euo pipefail
cd "${{SLURM_SUBMIT_DIR:-.}}"
index=$(( SLURM_ARRAY_TASK_ID + ${{OFFSET:-0}} ))
mof=$(sed -n "$(( index + 1 ))p" mofs.txt)
if [ -z "$mof" ]; then echo "no MOF at index $index of mofs.txt" >&2; exit 1; fi
cd "$mof"
echo "array task ${{SLURM_ARRAY_TASK_ID}}: $mof on $(hostname)"
exec "${{RASPA_SIMULATE:-simulate}}" -i simulation.input
"""


def write_mof_folder(
    folder: Path, mof_id: str, crystal: object, settings: GcmcSettings, status: str, net: float
) -> tuple[int, int, int]:
    """Write one MOF's RASPA folder; returns the unit-cell replication used."""
    atomic_number = np.asarray(crystal.atomic_number)  # type: ignore[attr-defined]
    frac = np.asarray(crystal.frac_coords)  # type: ignore[attr-defined]
    lattice = np.asarray(crystal.lattice)  # type: ignore[attr-defined]
    charge = np.asarray(crystal.charge)  # type: ignore[attr-defined]
    elements = {_symbol(int(z)) for z in atomic_number}
    cells = unit_cells(lattice, settings.cutoff)
    note = ""
    if status == "missing":
        note = (
            "the source CIF has no partial charges: every framework atom is neutral here; "
            "assign charges (DDEC, EQeq, ...) to the CIF before running"
        )
    elif status == "net_charge_nonzero":
        note = f"framework net charge {net:+.4f} e is not ~0"
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        f"{mof_id}.cif": p1_cif_text(
            mof_id, atomic_number, frac, lattice, charge, audit="mofsieve gcmc"
        ),
        "simulation.input": simulation_input(mof_id, cells, settings, note),
        "pseudo_atoms.def": pseudo_atoms_def(elements),
        "force_field_mixing_rules.def": mixing_rules_def(elements),
        "force_field.def": FORCE_FIELD_DEF,
        "CO2.def": co2_def(),
    }
    for name, text in files.items():
        write_text_atomic(folder / name, text)
    return cells


def write_gcmc_inputs(
    flagged_csv: Path, out_dir: Path, settings: GcmcSettings, time_limit: str = "48:00:00"
) -> list[dict[str, str]]:
    """Folders for every flagged MOF, ``mofs.txt``, ``charges.csv`` and the sbatch script."""
    from mofsieve.structures import StructureError, parse_cif

    with open(flagged_csv, newline="") as fh:
        flagged = list(csv.DictReader(fh))
    sources = {row["mof_id"]: row["source"] for row in flagged}
    texts = read_cifs(sources.values())
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "logs").mkdir(exist_ok=True)
    records: list[dict[str, str]] = []
    written: list[str] = []
    for mof_id, source in sources.items():
        try:
            crystal = parse_cif(texts[source])
            status, net = charge_status(crystal.charge, settings.net_charge_tolerance)
            warn_charges(mof_id, status, net)
            cells = write_mof_folder(out_dir / mof_id, mof_id, crystal, settings, status, net)
        except (StructureError, GcmcError) as err:
            log.warning("%s: no GCMC input written: %s", mof_id, err)
            records.append(
                {
                    "mof_id": mof_id,
                    "charge_status": "unreadable",
                    "net_charge_e": "",
                    "unit_cells": "",
                    "note": str(err),
                }
            )
            continue
        written.append(mof_id)
        records.append(
            {
                "mof_id": mof_id,
                "charge_status": status,
                "net_charge_e": "" if math.isnan(net) else f"{net:.6f}",
                "unit_cells": "x".join(map(str, cells)),
                "note": "",
            }
        )
    write_text_atomic(out_dir / "mofs.txt", "".join(f"{m}\n" for m in written))
    write_csv_atomic(
        out_dir / "charges.csv", CHARGES_COLUMNS, ([r[c] for c in CHARGES_COLUMNS] for r in records)
    )
    if written:
        script = out_dir / "run_raspa.sbatch"
        write_text_atomic(script, sbatch_array_script(written, settings, time_limit))
        script.chmod(0o755)
    n_warn = sum(r["charge_status"] != "ok" for r in records)
    log.info(
        "wrote RASPA inputs for %d of %d flagged MOFs in %s (%d with charge warnings)",
        len(written),
        len(flagged),
        out_dir,
        n_warn,
    )
    return records


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--flagged", required=True, type=Path, help="flagged.csv from rank")
    parser.add_argument("--out", required=True, type=Path, help="folder for the GCMC inputs")
    parser.add_argument("--temperature", type=float, default=298.0, help="K")
    parser.add_argument(
        "--pressure",
        type=float,
        nargs="+",
        default=[0.15],
        help="bar; several pressures run in sequence in one RASPA job",
    )
    parser.add_argument("--cycles", type=int, default=20000)
    parser.add_argument("--init-cycles", type=int, default=10000)
    parser.add_argument("--cutoff", type=float, default=12.0, help="Å (LJ and real-space Ewald)")
    parser.add_argument(
        "--net-charge-tolerance",
        type=float,
        default=DEFAULT_NET_CHARGE_TOLERANCE,
        help="e per unit cell",
    )
    parser.add_argument("--time-limit", default="48:00:00", help="sbatch --time of each task")


def run(args: argparse.Namespace) -> int:
    settings = GcmcSettings(
        temperature_k=args.temperature,
        pressures_bar=tuple(args.pressure),
        cycles=args.cycles,
        init_cycles=args.init_cycles,
        cutoff=args.cutoff,
        net_charge_tolerance=args.net_charge_tolerance,
    )
    write_gcmc_inputs(args.flagged, args.out, settings, args.time_limit)
    return 0
