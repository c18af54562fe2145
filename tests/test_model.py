from __future__ import annotations

import json
import math
import re
from dataclasses import replace

import pytest
import torch
from torch_geometric.data import Batch, Data

from mofsieve.featurization_params import FeaturizationParams
from mofsieve.layers import regular_degree
from mofsieve.model import (
    AECGCNN,
    VARIANTS,
    ModelConfig,
    cell_features,
    load_model_dir,
    save_model_dir,
    variant_config,
)
from mofsieve.modeldir import TargetSpec


def _crystal(n: int, seed: int, k: int = 6) -> Data:
    g = torch.Generator().manual_seed(seed)
    k = min(k, n)
    dst = torch.arange(n).repeat_interleave(k)
    src = torch.randint(0, n, (n * k,), generator=g)
    charge = torch.randn(n, generator=g) * 0.5
    return Data(
        z=torch.randint(1, 30, (n,), generator=g),
        charge=charge,
        lattice=(torch.eye(3) * 10 + torch.rand(3, 3, generator=g)).unsqueeze(0),
        edge_index=torch.stack([src, dst]),
        edge_dist=1.0 + 6.0 * torch.rand(n * k, generator=g),
        global_features=torch.rand(1, 2, generator=g),
        num_nodes=n,
    )


def _batch(with_charge: bool = True) -> Batch:
    batch = Batch.from_data_list([_crystal(n, s) for s, n in enumerate([9, 14, 5])])
    if not with_charge:
        batch.charge = torch.full_like(batch.charge, float("nan"))
    return batch


def _config(name: str, **kw) -> ModelConfig:
    extra = {"global_features": ("lcd", "void_fraction")} if name.startswith("de-") else {}
    return variant_config(name, atom_dim=16, edge_dim=12, mlp_hidden=24, **extra, **kw)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_table_variant_runs_and_has_finite_gradients(name):
    torch.manual_seed(0)
    model = AECGCNN(_config(name))
    batch = _batch()
    out = model(batch)
    assert out.shape == (3,)
    out.sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize("readout", ["mean", "sum", "attention"])
def test_model_is_invariant_to_atom_order(readout):
    torch.manual_seed(0)
    model = AECGCNN(_config("atten3", readout=readout)).eval()
    crystals = [_crystal(n, s) for s, n in enumerate([9, 14])]
    permuted = []
    for c in crystals:
        perm = torch.randperm(c.num_nodes)
        inverse = torch.empty_like(perm)
        inverse[perm] = torch.arange(c.num_nodes)
        order = torch.argsort(inverse[c.edge_index[1]], stable=True)  # keep edges grouped by centre
        permuted.append(
            Data(
                z=c.z[perm],
                charge=c.charge[perm],
                lattice=c.lattice,
                edge_index=inverse[c.edge_index][:, order],
                edge_dist=c.edge_dist[order],
                global_features=c.global_features,
                num_nodes=c.num_nodes,
            )
        )
    a = model(Batch.from_data_list(crystals))
    b = model(Batch.from_data_list(permuted))
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_attention_readout_weights_are_returned_per_atom():
    model = AECGCNN(_config("atten3", readout="attention")).eval()
    batch = _batch()
    _, weights = model(batch, return_atom_weights=True)
    sums = torch.zeros(3).index_add_(0, batch.batch, weights)
    torch.testing.assert_close(sums, torch.ones(3))
    assert AECGCNN(_config("cgcnn")).eval()(batch, return_atom_weights=True)[1] is None


def test_charges_are_optional_and_dropout_only_in_training():
    torch.manual_seed(0)
    model = AECGCNN(_config("cg", charge_dropout=1.0))
    charged, uncharged = _batch(True), _batch(False)
    assert torch.isfinite(model.eval()(uncharged)).all()
    # In eval mode charges matter; with dropout 1.0 in training they are all hidden.
    assert not torch.allclose(model.eval()(charged), model.eval()(uncharged))
    model.train()
    torch.testing.assert_close(model.atom_inputs(charged), model.atom_inputs(uncharged))


def test_cell_features_of_a_cubic_cell():
    lattice = (torch.eye(3) * 10.0).unsqueeze(0)
    z = torch.tensor([6, 6, 8])
    masses = AECGCNN(_config("cg")).masses
    f = cell_features(lattice, z, torch.zeros(3, dtype=torch.long), masses)[0]
    assert f[:3].tolist() == pytest.approx([math.log(10.0)] * 3)
    assert f[3:6].abs().max() < 1e-6  # right angles
    assert f[6].item() == pytest.approx(math.log(1000.0 / 3), rel=1e-5)
    mass = 2 * 12.011 + 15.999
    assert f[7].item() == pytest.approx(mass * 1.66053907 / 1000.0, rel=1e-3)


def test_per_edge_switch_gives_the_same_predictions():
    model = AECGCNN(_config("atten3")).eval()
    batch = _batch()
    fast = model(batch)
    model.set_per_edge(True)
    torch.testing.assert_close(model(batch), fast, rtol=1e-4, atol=1e-5)


def test_model_dir_round_trip_with_weights_only(tmp_path):
    """What save_model_dir writes is what load_model_dir gives back: every member's weights
    and buffers, in order, and every field of the spec."""
    torch.manual_seed(0)
    config = _config("de-atten3", readout="attention")
    members = [AECGCNN(config).eval() for _ in range(2)]
    members[0].fit_descriptor_scaling(torch.rand(20, 8 + 2))
    featurization = FeaturizationParams(
        cutoff=7.5, max_neighbors=10, global_feature_names=("lcd", "void_fraction")
    )
    target = TargetSpec(
        name="co2_uptake_mol_per_kg_298K_0.15bar",
        unit="mol/kg",
        gas="CO2",
        temperature_K=298.0,
        pressure_bar=0.15,
        clip_min=0.0,
    )
    saved = save_model_dir(
        tmp_path,
        members,
        featurization=featurization,
        target=target,
        normalisation_mean=1.0,
        normalisation_std=2.0,
        variant="de-atten3",
    )
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["init"]["global_features"] == ["lcd", "void_fraction"]

    loaded, spec = load_model_dir(tmp_path)
    assert spec == saved  # nothing lost through JSON
    assert spec.directory == tmp_path and spec.architecture == "AECGCNN"
    assert spec.weights == ("member-0.pt", "member-1.pt")
    assert all(path.is_file() for path in spec.weight_paths())
    assert spec.featurization == featurization and spec.target == target
    assert (spec.normalisation_mean, spec.normalisation_std) == (1.0, 2.0)
    assert spec.variant == "de-atten3" and spec.readout == "attention" and spec.has_atom_weights
    assert spec.num_layers == config.num_layers
    assert ModelConfig.from_json(dict(spec.init)) == config

    assert len(loaded) == len(members)
    first = members[0].state_dict()
    assert any(not torch.equal(t, members[1].state_dict()[k]) for k, t in first.items())
    for k, (a, b) in enumerate(zip(members, loaded, strict=True)):  # each member its own file
        assert not b.training and b.config == config
        want, got = a.state_dict(), b.state_dict()
        assert list(got) == list(want), f"member {k}"
        for name, tensor in want.items():
            assert torch.equal(got[name], tensor), f"member {k}: {name}"
    batch = _batch()
    for a, b in zip(members, loaded, strict=True):
        torch.testing.assert_close(a(batch), b(batch), rtol=0, atol=0)


def test_config_rejects_nonsense():
    with pytest.raises(ValueError, match="conv must be 'cgcnn' or 'attention', not 'transformer'"):
        ModelConfig(conv="transformer")
    with pytest.raises(ValueError, match="the CGCNN convolution has no heads"):
        replace(VARIANTS["cgcnn"], heads=3)
    with pytest.raises(ValueError, match=re.escape("unknown model config keys ['colour']")):
        ModelConfig.from_json({"conv": "cgcnn", "colour": "red"})


@pytest.mark.parametrize("name", ["cgcnn", "de-atten3"])
def test_regular_neighbour_layout_gives_the_same_predictions_and_gradients(name):
    """Batches with K edges per atom take the dense path; shuffling the edges forces PyG's
    ``propagate``. Both must agree, values and gradients."""
    torch.manual_seed(0)
    model = AECGCNN(_config(name)).train()
    model.config = replace(model.config, charge_dropout=0.0)  # same atoms in both passes
    batch = Batch.from_data_list([_crystal(n, s) for s, n in enumerate([9, 14, 7])])
    assert regular_degree(batch.edge_index[1], batch.num_nodes) == 6
    shuffled = batch.clone()
    perm = torch.randperm(batch.edge_index.size(1), generator=torch.Generator().manual_seed(1))
    shuffled.edge_index, shuffled.edge_dist = batch.edge_index[:, perm], batch.edge_dist[perm]
    assert regular_degree(shuffled.edge_index[1], batch.num_nodes) is None
    results = []
    for data in (batch, shuffled):
        model.zero_grad()
        out = model(data)
        out.sum().backward()
        results.append((out.detach(), [p.grad.clone() for p in model.parameters()]))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-4, atol=1e-5)
    for a, b in zip(results[0][1], results[1][1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)
