"""The partial-charge check (mofsieve.charges), shared by rank and gcmc."""

from __future__ import annotations

import logging
import math
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest

from mofsieve.charges import (
    DEFAULT_NET_CHARGE_TOLERANCE,
    charge_status,
    charge_summaries,
    read_cifs,
)


def cif(charges: list[float] | None) -> str:
    charge_col = "_atom_site_charge\n" if charges else ""
    q = [f" {c}" for c in charges] if charges else ["", ""]
    return (
        "data_t\n_cell_length_a 20\n_cell_length_b 20\n_cell_length_c 20\n"
        "_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma 90\n"
        "loop_\n_atom_site_label\n_atom_site_type_symbol\n_atom_site_fract_x\n"
        f"_atom_site_fract_y\n_atom_site_fract_z\n{charge_col}"
        f"Zn1 Zn 0.1 0.2 0.3{q[0]}\nO1 O 0.6 0.7 0.8{q[1]}\n"
    )


@pytest.mark.parametrize(
    ("charge", "status", "net"),
    [
        ([1.0, -1.0], "ok", 0.0),
        ([1.0, -0.995], "ok", 0.005),  # within the default 0.01 e
        ([1.0, -0.7], "net_charge_nonzero", 0.3),
        ([1.0, np.nan], "missing", math.nan),
        ([], "missing", math.nan),
    ],
)
def test_charge_status(charge: list[float], status: str, net: float) -> None:
    got_status, got_net = charge_status(np.array(charge, dtype=np.float32))
    assert got_status == status
    assert got_net == pytest.approx(net, abs=1e-6, nan_ok=True)


def test_tolerance_is_configurable() -> None:
    assert DEFAULT_NET_CHARGE_TOLERANCE == 0.01
    assert charge_status(np.array([1.0, -0.7]), tolerance=0.5)[0] == "ok"


def test_summaries_read_files_and_archive_members_and_warn(tmp_path: Path, caplog) -> None:
    (tmp_path / "NOQ.cif").write_text(cif(None))
    (tmp_path / "BAD.cif").write_text("data_x\n")
    member = tmp_path / "member.cif"
    member.write_text(cif([1.0, -0.7]))
    archive = tmp_path / "set.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(member, arcname="set/NET.cif")
    sources = {
        "NOQ": str(tmp_path / "NOQ.cif"),
        "BAD": str(tmp_path / "BAD.cif"),
        "NET": f"{archive}::set/NET.cif",
    }
    with caplog.at_level(logging.WARNING):
        got = charge_summaries(sources)
    assert got["NOQ"][0] == "missing"
    assert got["BAD"][0] == "unreadable" and math.isnan(got["BAD"][1])
    assert got["NET"][0] == "net_charge_nonzero"
    assert got["NET"][1] == pytest.approx(0.3, abs=1e-6)
    assert "NOQ: the CIF has no partial charges; GCMC takes them from gcmc.charges" in caplog.text
    assert "NET: framework net charge is +0.3000 e" in caplog.text
    assert "BAD: cannot read" in caplog.text


def test_a_cif_that_cannot_be_read_is_an_error_naming_it(tmp_path: Path) -> None:
    member = tmp_path / "X.cif"
    member.write_text(cif([1, -1]))
    archive = tmp_path / "cifs.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(member, arcname="set/X.cif")
    source = f"{archive}::set/X.cif"
    assert read_cifs([source]) == {source: member.read_bytes()}
    with pytest.raises(
        FileNotFoundError, match=re.escape(f"no CIF member 'set/Y.cif' in {archive}")
    ):
        read_cifs([source, f"{archive}::set/Y.cif"])
    with pytest.raises(FileNotFoundError, match="absent.cif"):
        charge_summaries({"A": str(tmp_path / "absent.cif")})
