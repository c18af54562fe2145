"""The partial-charge check of a CIF before GCMC: present on every atom, and a neutral cell.

``mofsieve rank`` records it in ``flagged.csv`` for the CIF's own charges. RASPA's Ewald sum
assumes a neutral framework, and a CIF without charges would run without electrostatics, which
for CO2 matter: ``mofsieve gcmc`` and ``simulate`` then take charges from the configured
sources (:mod:`mofsieve.charge_sources`) or refuse the MOF.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping

import numpy as np

from mofsieve.manifest import iter_source_bytes

log = logging.getLogger(__name__)

DEFAULT_NET_CHARGE_TOLERANCE = 0.01  # e per unit cell


def charge_status(
    charge: np.ndarray, tolerance: float = DEFAULT_NET_CHARGE_TOLERANCE
) -> tuple[str, float]:
    """``(status, net charge)``: ``missing`` if any atom lacks a charge, ``net_charge_nonzero``
    if the cell's charges do not sum to 0 within ``tolerance``, else ``ok``."""
    if charge.size == 0 or np.isnan(charge).any():
        return "missing", math.nan
    net = float(np.sum(charge.astype(np.float64)))
    return ("ok" if abs(net) <= tolerance else "net_charge_nonzero"), net


def read_cifs(sources: Iterable[str]) -> dict[str, bytes]:
    """The bytes of each source (path or ``ARCHIVE::MEMBER``); raises the first read error.

    The charge check and the GCMC hand-off need every flagged CIF: a missing one is an error
    before anything is written, not a MOF silently left out.
    """
    out: dict[str, bytes] = {}
    for source, data in iter_source_bytes(sources):
        if isinstance(data, OSError):
            raise data
        out[source] = data
    return out


def charge_summaries(
    sources_by_mof: Mapping[str, str], tolerance: float = DEFAULT_NET_CHARGE_TOLERANCE
) -> dict[str, tuple[str, float]]:
    """Charge status of each MOF's CIF; unparseable ones are ``unreadable`` (logged, not raised).

    A CIF that cannot be read at all raises its ``OSError`` (:func:`read_cifs`).
    """
    from mofsieve.structures import StructureError, parse_cif

    texts = read_cifs(sources_by_mof.values())
    out: dict[str, tuple[str, float]] = {}
    for mof_id, source in sources_by_mof.items():
        try:
            crystal = parse_cif(texts[source])
        except StructureError as err:
            log.warning("%s: cannot read %s for the charge check: %s", mof_id, source, err)
            out[mof_id] = ("unreadable", math.nan)
            continue
        out[mof_id] = charge_status(crystal.charge, tolerance)
        warn_charges(mof_id, *out[mof_id])
    return out


def warn_charges(mof_id: str, status: str, net: float) -> None:
    """Log what a GCMC user must fix: no charges, or a charged cell."""
    if status == "missing":
        log.warning(
            "%s: the CIF has no partial charges; GCMC takes them from gcmc.charges (default: "
            "the charge model) or refuses the MOF; neutral atoms only when asked (none)",
            mof_id,
        )
    elif status == "net_charge_nonzero":
        log.warning(
            "%s: framework net charge is %+.4f e, not ~0; RASPA's Ewald sum assumes a neutral cell",
            mof_id,
            net,
        )
