"""Hand the flagged MOFs to GCMC: ready-to-run RASPA inputs and one ``sbatch --array`` script.

For every row of ``flagged.csv`` a folder ``OUT/<mof_id>/`` gets

- ``<mof_id>.cif``: the P1 unit cell with the assigned charges in ``_atom_site_charge``,
  labels ``<Element><n>`` so that RASPA's ``RemoveAtomNumberCodeFromLabel`` maps each atom to
  its element's pseudo atom;
- ``simulation.input``: GCMC of pure CO2 at the configured temperature and pressure(s),
  ``UseChargesFromCIFFile yes``, Ewald electrostatics, and ``UnitCells`` chosen so that every
  perpendicular width of the simulation box is at least twice the cutoff;
- ``pseudo_atoms.def``, ``force_field_mixing_rules.def``, ``force_field.def``, ``CO2.def``:
  UFF Lennard-Jones parameters for the framework elements present, TraPPE CO2, and
  Lorentz–Berthelot mixing (``Forcefield local``);
- ``simulation.json``, ``force_field.json``, ``CO2.json``: the same simulation as RASPA3 JSON
  input (:mod:`mofsieve.raspa3_decks`).

Every parameter comes from :mod:`mofsieve.forcefield`, which ``mofsieve simulate`` uses too.

Charges come from the sources of the charge method asked (``--charges``, default
``cif_or_model``: the CIF's own, else the shipped charge model; :mod:`mofsieve.charge_sources`,
which refuses implausible computed charges). A MOF that gets no sane charges gets no folder:
``charges.csv`` says why (``no_charges``), and it is never written with neutral atoms unless
``--charges none`` was asked.

``OUT/mofs.txt`` lists the folders and ``OUT/run_raspa.sbatch`` runs one of them per array
task. ``OUT/charges.csv`` records, for every flagged MOF, the charge status, the source that
gave the charges (``charge_method``, ``charge_detail``), the net charge and the unit cells.
"""

from __future__ import annotations

import argparse
import csv
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mofsieve.atomic import write_csv_atomic, write_text_atomic
from mofsieve.charge_sources import (
    CHARGE_METHODS,
    DEFAULT_CHARGE_METHOD,
    AssignedCharges,
    ChargeSourceError,
    add_charge_arguments,
    assign_charges,
)
from mofsieve.charges import DEFAULT_NET_CHARGE_TOLERANCE, read_cifs, warn_charges
from mofsieve.forcefield import (
    BAR_IN_PA,
    CO2_ATOMS,
    CO2_CRITICAL,
    DEFAULT_CUTOFF,
    ForceFieldError,
    co2_pseudo_atoms,
    framework_pseudo_atoms,
    unit_cells,
)
from mofsieve.raspa3_decks import write_raspa3_decks
from mofsieve.structures import p1_cif_text

log = logging.getLogger(__name__)

CHARGES_COLUMNS = (
    "mof_id", "charge_status", "charge_method", "charge_detail", "net_charge_e", "unit_cells",
    "note",
)  # fmt: skip


class GcmcError(ValueError):
    """A flagged MOF whose GCMC input cannot be written (unreadable CIF, unknown element)."""


# ---------------------------------------------------------------------------------------------
# writing


def _symbol(z: int) -> str:
    from ase.data import chemical_symbols

    return chemical_symbols[int(z)]


def pseudo_atoms_def(elements: Iterable[str]) -> str:
    """RASPA2 ``pseudo_atoms.def``: framework elements (charges from the CIF), then CO2."""
    # the same bytes as the decks RASPA2 2.0.4 ran (../shared/docs/raspa3.md)
    rows = [
        f"{a.name:<8} yes  {a.element:<3} {a.element:<3} 0  {a.mass:10.5f}  "
        f"{'0.0' if a.framework else f'{a.charge:+.4f}'}  0.0  1.0  1.0  0  0  absolute  0"
        for a in framework_pseudo_atoms(elements) + co2_pseudo_atoms()
    ]
    return (
        "#number of pseudo atoms\n"
        f"{len(rows)}\n"
        "#type    print as  chem oxidation mass charge polarization B-factor radii connectivity "
        "anisotropic anisotropic-type tinker-type\n" + "\n".join(rows) + "\n"
    )


def mixing_rules_def(elements: Iterable[str]) -> str:
    """RASPA2 ``force_field_mixing_rules.def``: UFF + TraPPE, shifted, no tail corrections."""
    rows = [
        f"{a.name:<8} lennard-jones {a.epsilon_k:10.5f} {a.sigma:8.5f}   "
        f"# {'UFF' if a.framework else 'TraPPE'}"
        for a in framework_pseudo_atoms(elements) + co2_pseudo_atoms()
    ]
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
    positions = "".join(
        f"{i} {name} 0.0 0.0 {f'{z:.4f}' if z else '0.0'}\n"
        for i, (name, z) in enumerate(CO2_ATOMS)
    )
    return (
        "# critical constants: Temperature [T], Pressure [Pa], and Acentric factor [-]\n"
        f"{tc}\n{pc}\n{omega}\n"
        "# Number Of Atoms\n3\n# Number of groups\n1\n# CO2-group\nrigid\n# number of atoms\n3\n"
        f"# atomic positions\n{positions}"
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
    cutoff: float = DEFAULT_CUTOFF
    print_every: int = 1000
    net_charge_tolerance: float = DEFAULT_NET_CHARGE_TOLERANCE
    charges: tuple[str, ...] = CHARGE_METHODS[DEFAULT_CHARGE_METHOD]  # sources, in order
    charge_model: str | None = None  # the charge model's folder; None: the shipped one


def simulation_input(
    mof_id: str,
    cells: tuple[int, int, int],
    settings: GcmcSettings,
    charge_note: str = "",
    charges_from: str = "",
) -> str:
    pressures = " ".join(f"{p * BAR_IN_PA:.6g}" for p in settings.pressures_bar)
    note = f"# WARNING: {charge_note}\n" if charge_note else ""
    origin = f"# framework charges (in {mof_id}.cif): {charges_from}\n" if charges_from else ""
    return (
        f"# RASPA GCMC of CO2 in {mof_id}, written by mofsieve gcmc\n{origin}{note}"
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


def charges_origin(charges: AssignedCharges) -> str:
    """Where a MOF's charges came from, in words for a deck: ``model (model:charges-…)``."""
    return charges.method + (f" ({charges.detail})" if charges.detail else "")


def write_mof_folder(
    folder: Path,
    mof_id: str,
    crystal: object,
    settings: GcmcSettings,
    charges: AssignedCharges,
    status: str,
) -> tuple[int, int, int]:
    """Write one MOF's RASPA folder with ``charges`` in its P1 CIF; returns the unit cells."""
    atomic_number = np.asarray(crystal.atomic_number)  # type: ignore[attr-defined]
    frac = np.asarray(crystal.frac_coords)  # type: ignore[attr-defined]
    lattice = np.asarray(crystal.lattice)  # type: ignore[attr-defined]
    elements = {_symbol(int(z)) for z in atomic_number}
    cells = unit_cells(lattice, settings.cutoff)
    note = ""
    if charges.method == "none":
        note = "charge method none (asked): every framework atom is neutral, no electrostatics"
    elif status == "net_charge_nonzero":
        note = f"framework net charge {charges.net_charge:+.4f} e is not ~0"
    folder.mkdir(parents=True, exist_ok=True)
    origin = f"{charges_origin(charges)}, net {charges.net_charge:+.6f} e per cell"
    files = {
        f"{mof_id}.cif": p1_cif_text(
            mof_id, atomic_number, frac, lattice, charges.values, audit="mofsieve gcmc"
        ),
        "simulation.input": simulation_input(mof_id, cells, settings, note, origin),
        "pseudo_atoms.def": pseudo_atoms_def(elements),
        "force_field_mixing_rules.def": mixing_rules_def(elements),
        "force_field.def": FORCE_FIELD_DEF,
        "CO2.def": co2_def(),
    }
    for name, text in files.items():
        write_text_atomic(folder / name, text)
    write_raspa3_decks(
        folder, mof_id, elements, cells, settings.temperature_k, settings.pressures_bar,
        settings.cycles, settings.init_cycles, cutoff=settings.cutoff,
        print_every=settings.print_every,
    )  # fmt: skip
    return cells


def _charges_row(
    mof_id: str,
    status: str,
    charges: AssignedCharges | None = None,
    cells: str = "",
    note: str = "",
) -> dict[str, str]:
    return {
        "mof_id": mof_id,
        "charge_status": status,
        "charge_method": charges.method if charges else "",
        "charge_detail": charges.detail if charges else "",
        "net_charge_e": f"{charges.net_charge:.6f}" if charges else "",
        "unit_cells": cells,
        "note": note,
    }


def write_gcmc_inputs(
    flagged_csv: Path, out_dir: Path, settings: GcmcSettings, time_limit: str = "48:00:00"
) -> list[dict[str, str]]:
    """Folders for every flagged MOF that gets charges, ``mofs.txt``, ``charges.csv`` (every
    flagged MOF) and the sbatch script."""
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
        except StructureError as err:
            log.warning("%s: no GCMC input written: %s", mof_id, err)
            records.append(_charges_row(mof_id, "unreadable", note=str(err)))
            continue
        try:
            charges = assign_charges(crystal, settings.charges, settings.charge_model)
        except ChargeSourceError as err:
            log.warning("%s: no GCMC input written: no usable partial charges (%s)", mof_id, err)
            records.append(_charges_row(mof_id, "no_charges", note=str(err)))
            continue
        ok = abs(charges.net_charge) <= settings.net_charge_tolerance
        status = "ok" if ok else "net_charge_nonzero"
        warn_charges(mof_id, status, charges.net_charge)
        try:
            cells = write_mof_folder(out_dir / mof_id, mof_id, crystal, settings, charges, status)
        except (GcmcError, ForceFieldError) as err:
            log.warning("%s: no GCMC input written: %s", mof_id, err)
            records.append(_charges_row(mof_id, "unreadable", charges, note=str(err)))
            continue
        written.append(mof_id)
        records.append(_charges_row(mof_id, status, charges, "x".join(map(str, cells))))
    write_text_atomic(out_dir / "mofs.txt", "".join(f"{m}\n" for m in written))
    write_csv_atomic(
        out_dir / "charges.csv", CHARGES_COLUMNS, ([r[c] for c in CHARGES_COLUMNS] for r in records)
    )
    if written:
        script = out_dir / "run_raspa.sbatch"
        write_text_atomic(script, sbatch_array_script(written, settings, time_limit))
        script.chmod(0o755)
    n_warn = sum(r["charge_status"] == "net_charge_nonzero" for r in records)
    methods = Counter(r["charge_method"] for r in records if r["mof_id"] in written)
    log.info(
        "wrote RASPA inputs for %d of %d flagged MOFs in %s (charges: %s; %d with a net charge; "
        "%d without usable charges, see charges.csv)",
        len(written),
        len(flagged),
        out_dir,
        ", ".join(f"{m} {n}" for m, n in sorted(methods.items())) or "none written",
        n_warn,
        sum(r["charge_status"] == "no_charges" for r in records),
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
    add_charge_arguments(parser)
    parser.add_argument("--time-limit", default="48:00:00", help="sbatch --time of each task")


def run(args: argparse.Namespace) -> int:
    settings = GcmcSettings(
        temperature_k=args.temperature,
        pressures_bar=tuple(args.pressure),
        cycles=args.cycles,
        init_cycles=args.init_cycles,
        cutoff=args.cutoff,
        net_charge_tolerance=args.net_charge_tolerance,
        charges=CHARGE_METHODS[args.charges],
        charge_model=str(args.charge_model),
    )
    write_gcmc_inputs(args.flagged, args.out, settings, args.time_limit)
    return 0
