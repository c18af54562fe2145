"""Charge sources and methods (mofsieve.charge_sources): the order they are asked in, the
bounds that computed charges must pass, the charge model loaded once, and what is recorded."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from mofsieve import charge_model as charge_model_module
from mofsieve import charge_sources
from mofsieve.charge_sources import (
    CHARGE_METHODS,
    SOURCES,
    ChargeSourceError,
    assign_charges,
    check_bounds,
    register,
    sources_of,
)
from mofsieve.structures import Crystal, parse_cif

SHIPPED_MODEL = charge_model_module.DEFAULT_CHARGE_MODEL_DIR / charge_model_module.MANIFEST_NAME


@pytest.fixture(autouse=True)
def fresh_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees the module's own sources and no charge model loaded yet."""
    monkeypatch.setattr(charge_sources, "SOURCES", dict(SOURCES))
    monkeypatch.setattr(charge_sources, "BOUNDED", set(charge_sources.BOUNDED))
    monkeypatch.setattr(charge_sources, "_charge_models", {})


def toy(test_data: Path) -> Crystal:
    """A small charged framework (Zn, O, C, N, H; net +0.6 e)."""
    return parse_cif((test_data / "good" / "toy_framework_charged.cif").read_text())


def bare(test_data: Path) -> Crystal:
    """Four Cu atoms without charges."""
    return parse_cif((test_data / "good" / "cu_fcc_p1.cif").read_text())


def test_methods_are_sources_in_order() -> None:
    assert sources_of("cif_or_model") == ("cif", "model")
    assert {m: sources_of(m) for m in ("cif", "model", "eqeq", "none")} == {
        "cif": ("cif",), "model": ("model",), "eqeq": ("eqeq",), "none": ("none",),
    }  # fmt: skip
    assert list(CHARGE_METHODS)[0] == charge_sources.DEFAULT_CHARGE_METHOD == "cif_or_model"
    with pytest.raises(ChargeSourceError, match=r"^unknown charge method 'ddec' \(known: cif_or"):
        sources_of("ddec")


def test_bounds_pass_plausible_charges_and_name_the_worst_atom_otherwise(test_data: Path) -> None:
    crystal = toy(test_data)
    check_bounds(crystal, crystal.charge.astype(np.float64))  # Zn +1.2, O −0.65 … H +0.25
    wrong = crystal.charge.astype(np.float64)
    wrong[2] = 0.9  # O2: oxygen is never this positive
    wrong[9] = 0.7  # H3: within H's range
    with pytest.raises(
        ChargeSourceError,
        match=r"^implausible charge \+0\.900 e on O2, outside O's \[-1\.50, \+0\.50\] e "
        r"\(1 of 10 atoms outside their bounds\)$",
    ):
        check_bounds(crystal, wrong)
    wrong[0] = 3.6  # Zn1: a metal beyond +3 e, and the worst of the two
    with pytest.raises(ChargeSourceError, match=r"\+3\.600 e on Zn1, outside Zn's \[-0\.50, \+3"):
        check_bounds(crystal, wrong)


@pytest.mark.shared
def test_the_bounds_pass_the_reference_charges_of_real_mofs(shared_core: Path) -> None:
    """EQeq charges of CoRE MOFs (the shared copy's own) pass: a Zn, a Cu, an Mg MOF."""
    from mofsieve.manifest import iter_archive

    names = [f"core2019_charged/{n}_clean.cif" for n in ("XEXLOD", "ALAMUW", "DUWTAS")]
    found = dict(iter_archive(shared_core / "cifs.tar.xz", set(names)))
    assert sorted(found) == sorted(names)
    for data in found.values():
        crystal = parse_cif(data)
        check_bounds(crystal, crystal.charge.astype(np.float64))


def test_computed_sources_are_bounded_and_the_cif_is_not(test_data: Path) -> None:
    crystal = toy(test_data)
    runaway = crystal.charge.astype(np.float64)
    runaway[0] = 4.2  # Zn +4.2 e, as Open Babel's EQeq gave Cu on a skewed cell
    register("runaway", lambda c: runaway)
    with pytest.raises(
        ChargeSourceError,
        match=r"^runaway: implausible charge \+4\.200 e on Zn1, outside Zn's \[-0\.50, \+3\.00\] "
        r"e \(1 of 10 atoms outside their bounds\)$",
    ):
        assign_charges(crystal, ["runaway"])
    fallback = assign_charges(crystal, ["runaway", "none"])  # the next source answers
    assert fallback.method == "none" and fallback.values.tolist() == [0.0] * 10
    register("trusted", lambda c: runaway, bounded=False)
    assert assign_charges(crystal, ["trusted"]).values[0] == 4.2
    charged_cif = parse_cif(
        (test_data / "good" / "toy_framework_charged.cif")
        .read_text()
        .replace("0.33333 0.66667 0.25000 1.20", "0.33333 0.66667 0.25000 4.20")
    )
    got = assign_charges(charged_cif, ["cif"])  # a CIF's own charges are the user's
    assert got.method == "cif" and got.values[0] == pytest.approx(4.2) and got.detail == ""


def test_sources_are_tried_in_order_and_all_reasons_are_kept(test_data: Path) -> None:
    crystal = toy(test_data)
    got = assign_charges(crystal, sources_of("cif_or_model"), model_dir="/nonexistent")
    assert got.method == "cif" and got.net_charge == pytest.approx(0.6, abs=1e-6)
    register("broken", lambda c: np.full(c.n_atoms, np.nan))
    with pytest.raises(
        ChargeSourceError,
        match=r"^cif: the CIF has no partial charge for 4 of its 4 atoms; "
        r"broken: gave \(4,\) values, not one finite charge per atom$",
    ):
        assign_charges(bare(test_data), ["cif", "broken"])
    with pytest.raises(
        ChargeSourceError, match=r"unknown charge source 'ddec' \(known: broken, cif, eqeq, mod"
    ):
        assign_charges(crystal, ["ddec"])


def test_a_missing_charge_model_is_a_reason_and_is_looked_for_once(
    test_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = charge_model_module.load_charge_model

    def counting(model_dir):  # type: ignore[no-untyped-def]
        calls.append(str(model_dir))
        return real(model_dir)

    monkeypatch.setattr(charge_model_module, "load_charge_model", counting)
    empty = tmp_path / "charges"
    empty.mkdir()
    reason = (
        f"cif: the CIF has no partial charge for 4 of its 4 atoms; model: no charge model in "
        f"{empty} (charge_model.json missing)"
    )
    for _ in range(3):
        with pytest.raises(ChargeSourceError, match=f"^{re.escape(reason)}$"):
            assign_charges(bare(test_data), sources_of("cif_or_model"), model_dir=empty)
    assert calls == [str(empty)]  # one process, one look at the folder


@pytest.mark.skipif(
    not SHIPPED_MODEL.is_file(), reason=f"the shipped charge model ({SHIPPED_MODEL}) is absent"
)
def test_the_shipped_model_charges_a_chargeless_cif_neutral_finite_and_recorded() -> None:
    """A real CoRE MOF without charges (core-mof's ALAMUW, Cu paddlewheel, 150 atoms)."""
    pytest.importorskip("CoRE_MOF", reason="the core-mof package (pip install '.[demo]')")
    from mofsieve.manifest import iter_archive, package_archive

    data = dict(iter_archive(package_archive("core-mof:2019-ASR"), {"ALAMUW_clean.cif"}))
    crystal = parse_cif(data["ALAMUW_clean.cif"])
    assert np.isnan(crystal.charge).all()
    got = assign_charges(crystal, sources_of("cif_or_model"))
    assert got.method == "model" and got.detail.startswith("model:")
    assert np.isfinite(got.values).all() and got.values.shape == (150,)
    assert abs(got.net_charge) < 1e-6
    check_bounds(crystal, got.values)  # assign_charges applied them: passed
    assert got.values[crystal.atomic_number == 29].min() > 0  # Cu(II) cations
    assert got.values[crystal.atomic_number == 8].max() < 0  # carboxylate O anions


def test_charge_model_predictions_are_bounded(test_data: Path) -> None:
    """A model that predicts a runaway charge is refused like EQeq; the reason names it."""
    crystal = toy(test_data)

    class Runaway:
        name = "model:runaway"

        def predict(self, c: Crystal) -> np.ndarray:
            values = c.charge.astype(np.float64) - 0.06  # neutral
            values[0] = 4.2
            return values

    charge_sources._charge_models[str(Path("/models/runaway").resolve())] = Runaway()
    with pytest.raises(
        ChargeSourceError, match=r"^model: implausible charge \+4\.200 e on Zn1, outside Zn's"
    ):
        assign_charges(crystal, ["model"], model_dir="/models/runaway")
