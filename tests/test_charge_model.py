"""The per-atom charge model: neutral cells, the shipped model on real MOFs, `mofsieve charges`."""

from __future__ import annotations

import csv
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from mofsieve.charge_model import (
    DEFAULT_CHARGE_MODEL_DIR,
    MANIFEST_NAME,
    ChargeModelError,
    load_charge_model,
)
from mofsieve.charge_net import ChargeNet
from mofsieve.charge_training import family_split, refcode_family
from mofsieve.cli import main
from mofsieve.structures import Crystal, parse_cif

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _core_mof_cifs(count: int, max_atoms: int) -> list[tuple[str, bytes]]:
    """The first ``count`` charge-less CIFs of the core-mof package with ≤ ``max_atoms`` atoms."""
    pytest.importorskip("CoRE_MOF", reason="the core-mof package (pip install '.[demo]')")
    from mofsieve.manifest import iter_archive, package_archive
    from mofsieve.structures import StructureError

    found = []
    for name, data in iter_archive(package_archive("core-mof:2019-ASR")):
        try:
            crystal = parse_cif(data)
        except StructureError:
            continue
        if crystal.n_atoms <= max_atoms and np.isnan(crystal.charge).all():
            found.append((Path(name).stem, data))
        if len(found) == count:
            return found
    pytest.fail(f"fewer than {count} small charge-less CIFs in core-mof")


@pytest.fixture(scope="module")
def shipped_model():
    return load_charge_model(DEFAULT_CHARGE_MODEL_DIR)


def test_each_crystal_of_a_batch_gets_its_own_total_charge() -> None:
    torch.manual_seed(0)
    network = ChargeNet(atom_dim=16, num_layers=2).eval()
    z = torch.tensor([8, 6, 1, 29, 8, 8, 6])
    batch = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    # a ring within each crystal, both directions
    src = torch.tensor([0, 1, 2, 1, 2, 0, 3, 4, 5, 6, 4, 5, 6, 3])
    dst = torch.tensor([1, 2, 0, 0, 1, 2, 4, 5, 6, 3, 3, 4, 5, 6])
    dist = torch.linspace(1.0, 3.0, src.numel())
    with torch.no_grad():
        neutral = network(z, torch.stack([src, dst]), dist, batch, 2)
        charged = network(z, torch.stack([src, dst]), dist, batch, 2, torch.tensor([0.0, -2.0]))
    sums = torch.zeros(2).index_add_(0, batch, neutral)
    assert torch.allclose(sums, torch.zeros(2), atol=1e-5)
    sums = torch.zeros(2).index_add_(0, batch, charged)
    assert torch.allclose(sums, torch.tensor([0.0, -2.0]), atol=1e-5)
    assert neutral.abs().max() > 1e-3  # not neutral by being all zero


def test_shipped_model_charges_real_chargeless_mofs(shipped_model) -> None:
    """Neutral, finite, and chemically signed: metals positive, O negative, H positive on
    average."""
    metals = {12, 13, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 40, 48}
    seen = {"metal": [], "O": [], "H": []}
    for _, data in _core_mof_cifs(4, max_atoms=200):
        crystal = parse_cif(data)
        charge = shipped_model.predict(crystal)
        assert charge.shape == (crystal.n_atoms,)
        assert np.isfinite(charge).all()
        assert abs(charge.sum()) < 1e-9
        z = crystal.atomic_number
        seen["metal"] += list(charge[np.isin(z, list(metals))])
        seen["O"] += list(charge[z == 8])
        seen["H"] += list(charge[z == 1])
    assert np.mean(seen["metal"]) > 0.3
    assert np.mean(seen["O"]) < -0.1
    assert np.mean(seen["H"]) > 0.05


def test_equivalent_atoms_are_charged_once_as_if_every_atom_were(shipped_model) -> None:
    """The network runs on one atom per set its layers cannot tell apart (fewer rows on real
    symmetric MOFs), every atom of a set gets the same charge, and the charges are those of
    the network run on every atom, to float32 rounding."""
    rows_seen: list[int] = []
    hook = shipped_model.network.embedding.register_forward_hook(
        lambda module, inputs, output: rows_seen.append(int(inputs[0].numel()))
    )
    try:
        atoms, rows = 0, 0
        for _, data in _core_mof_cifs(6, max_atoms=300):
            crystal = parse_cif(data)
            merged = shipped_model.predict(crystal)
            every = shipped_model.predict(crystal, every_atom=True)
            assert rows_seen[-1] == crystal.n_atoms  # the every-atom run
            atoms, rows = atoms + crystal.n_atoms, rows + rows_seen[-2]
            np.testing.assert_allclose(merged, every, atol=2e-6, rtol=0)
            assert abs(merged.sum()) < 1e-9
            # identical charges come in whole sets: as many distinct values as rows run
            assert len(np.unique(merged)) <= rows_seen[-2]
    finally:
        hook.remove()
    assert rows < 0.6 * atoms, f"{rows} rows run for {atoms} atoms: nothing merged"


def test_shipped_model_reproduces_held_out_cif_charges(shipped_model, shared_core) -> None:
    """Per-atom MAE on MOFs of the model's test split (never trained on) against the CIFs'
    own charges: the model card's figure, checked on a sample."""
    split_file = DEFAULT_CHARGE_MODEL_DIR / "split.csv"
    with open(split_file, newline="") as fh:
        test_ids = [r["mof_id"] for r in csv.DictReader(fh) if r["split"] == "test"]
    wanted = {f"core2019_charged/{m}.cif" for m in test_ids[:400]}
    elements = set(shipped_model.spec.elements)
    errors = []
    with tarfile.open(shared_core / "cifs.tar.xz") as tar:
        for member in tar:
            if member.name not in wanted:
                continue
            crystal = parse_cif(tar.extractfile(member).read())
            if crystal.n_atoms > 400 or not set(crystal.atomic_number) <= elements:
                continue
            errors.append(np.abs(shipped_model.predict(crystal) - crystal.charge))
            if len(errors) == 12:
                break
    assert len(errors) == 12
    assert np.concatenate(errors).mean() < 0.05


def test_elements_never_seen_in_training_are_refused(shipped_model) -> None:
    crystal = Crystal(
        atomic_number=np.array([2, 2], dtype=np.uint8),
        frac_coords=np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]),
        lattice=np.eye(3) * 4.0,
        charge=np.full(2, np.nan, dtype=np.float32),
    )
    with pytest.raises(ChargeModelError, match="He never seen"):
        shipped_model.predict(crystal)


def test_a_missing_or_foreign_model_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ChargeModelError, match="no charge model"):
        load_charge_model(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text(json.dumps({"format": "mofsieve-model"}))
    with pytest.raises(ChargeModelError, match="not a mofsieve-charge-model version 1"):
        load_charge_model(tmp_path)


def test_charges_command_writes_charged_p1_cifs_and_records_failures(
    shipped_model, tmp_path: Path, test_data: Path
) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    cifs = _core_mof_cifs(2, max_atoms=300)
    for mof_id, data in cifs:
        (inputs / f"{mof_id}.cif").write_bytes(data)
    (inputs / "broken.cif").write_bytes((test_data / "broken" / "missing_cell.cif").read_bytes())
    out = tmp_path / "out"
    assert main(["charges", str(inputs), "--out", str(out)]) == 0

    with open(out / "charges.csv", newline="") as fh:
        summary = {r["mof_id"]: r for r in csv.DictReader(fh)}
    assert set(summary) == {m for m, _ in cifs}
    for mof_id, data in cifs:
        written = parse_cif((out / f"{mof_id}.cif").read_bytes())
        expected = shipped_model.predict(parse_cif(data))
        np.testing.assert_allclose(written.charge, expected, atol=1e-6)
        assert abs(float(summary[mof_id]["net_charge_e"])) < 1e-6
        assert summary[mof_id]["charge_method"] == shipped_model.name
    with open(out / "failures.csv", newline="") as fh:
        failures = list(csv.DictReader(fh))
    assert [f["mof_id"] for f in failures] == ["broken"]
    assert "cell" in failures[0]["reason"]
    assert not (out / "broken.cif").exists()


def test_charges_command_without_a_model_stops_with_one_line(tmp_path: Path, test_data: Path):
    good = test_data / "good" / "cu_fcc_p1.cif"
    status = main(["charges", str(good), "--out", str(tmp_path / "o"), "--model", str(tmp_path)])
    assert status == 2
    assert not (tmp_path / "o").exists()


def test_refinements_of_one_refcode_stay_on_one_side_of_the_split() -> None:
    assert refcode_family("KEJQAR01_clean") == refcode_family("KEJQAR_clean") == "KEJQAR"
    ids = [f"{code}{s}_clean" for code in ("KEJQAR", "OKECIQ", "XEKCAT") for s in ("", "01")]
    ids += ["".join(chr(65 + (i // 26**k) % 26) for k in range(4)) + "ZZ_clean" for i in range(200)]
    split = family_split(ids, seed=0)
    for k in range(0, 6, 2):
        assert split[k] == split[k + 1]
    counts = np.bincount(split, minlength=3) / len(split)
    assert counts[0] > 0.7 and counts[1] > 0.05 and counts[2] > 0.05
