"""The AE-CGCNN surrogate (Cong et al.) and its ablations, built from one :class:`ModelConfig`.

Every column of the seed paper's Table I is a preset in :data:`VARIANTS`:

=============  ================================================================
``cgcnn``      CGCNN convolutions (sigmoid gate), fixed Gaussian edge features
``edge``       + edge convolution (edge features updated every layer)
``attention``  + softmax neighbour attention instead of the sigmoid gate
``cg``         + partial charges (C) and cell descriptors (G: lattice lengths and
               angles, volume per atom, density) before the MLP
``atten2``     + 3 attention heads, averaged
``atten3``     + attention over the 3 heads instead of averaging (AE-CGCNN)
``de-atten3``  + shard global descriptors (pore geometry…) before the MLP, the
               descriptor-hybridised variant of Gong et al.
=============  ================================================================

Readout (``mean``, ``sum``, ``attention``) is independent of the variant. Partial charges
enter as ``embed(Z) + Linear(rbf(q)·has_q ⊕ has_q)``: an atom without a charge (a CIF
without ``_atom_site_charge``, NaN in the shard) simply gets the charge-free embedding, and
training drops charges from a share of crystals so that the model stays good without them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch_geometric.utils import scatter

from mofsieve.atomic import atomic_output
from mofsieve.layers import (
    CGConv,
    EdgeConv,
    GaussianExpansion,
    GraphAttentionConv,
    HeadAttentionConv,
    MultiHeadAttentionConv,
    PairProjection,
    regular_degree,
)
from mofsieve.modeldir import (
    ModelDirError,
    ModelSpec,
    read_model,
    write_model_json,
    write_multi_target_model_json,
)
from mofsieve.readouts import READOUTS

MODEL_CLASS = "AECGCNN"
MAX_Z = 119
AVOGADRO_G_CM3 = 1.66053907  # amu/Å³ → g/cm³

CELL_FEATURE_NAMES = (
    "log_a",
    "log_b",
    "log_c",
    "cos_alpha",
    "cos_beta",
    "cos_gamma",
    "log_volume_per_atom",
    "density_g_cm3",
)


@dataclass(frozen=True)
class ModelConfig:
    """Everything that decides the architecture (stored as ``init`` in ``model.json``)."""

    conv: str = "cgcnn"  # "cgcnn" (sigmoid gate) or "attention" (softmax over neighbours)
    heads: int = 1
    head_combine: str = "mean"  # "mean" (AttenII) or "attention" (AttenIII)
    edge_update: bool = False
    use_charge: bool = False
    use_cell: bool = False
    global_features: tuple[str, ...] = field(default_factory=tuple)
    readout: str = "mean"
    num_layers: int = 4
    atom_dim: int = 64
    edge_dim: int = 42
    mlp_hidden: int = 128
    rbf_stop: float = 8.0
    rbf_step: float = 0.2
    charge_dropout: float = 0.0  # share of crystals whose charges are hidden in training
    # Standardised descriptors are clipped to ±descriptor_clip before the MLP (0: never).
    # Force-field descriptors of dense crystals lie 10-20 standard deviations out.
    descriptor_clip: float = 0.0
    # Outputs of the head, one per target (a multi-target model, ``train --target A --target
    # B``); init records it only when above 1, so single-target model.json stay as they were.
    n_targets: int = 1

    def __post_init__(self) -> None:
        if self.conv not in ("cgcnn", "attention"):
            raise ValueError(f"conv must be 'cgcnn' or 'attention', not {self.conv!r}")
        if self.head_combine not in ("mean", "attention"):
            raise ValueError(
                f"head_combine must be 'mean' or 'attention', not {self.head_combine!r}"
            )
        if self.readout not in READOUTS:
            raise ValueError(f"readout must be one of {sorted(READOUTS)}, not {self.readout!r}")
        if self.conv == "cgcnn" and self.heads != 1:
            raise ValueError("the CGCNN convolution has no heads; use conv='attention'")
        check_n_targets(self.n_targets)

    @property
    def columns(self) -> tuple[str, ...]:
        """The optional graph columns this model reads: none."""
        return ()

    def to_json(self) -> dict[str, Any]:
        return config_json(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model config keys {sorted(unknown)}")
        d = dict(d)
        d["global_features"] = tuple(d.get("global_features", ()))
        return cls(**d)


def check_n_targets(n_targets: int) -> None:
    if not (isinstance(n_targets, int) and n_targets >= 1):
        raise ValueError(f"n_targets must be a whole number ≥ 1, not {n_targets!r}")


def config_json(config: Any) -> dict[str, Any]:
    """A model config as ``init`` in ``model.json``: its fields, ``n_targets`` only when the
    model has several outputs (a single-target ``init`` is what it always was)."""
    d = asdict(config)
    d["global_features"] = list(config.global_features)
    if d.get("n_targets") == 1:
        del d["n_targets"]
    return d


_CGCNN = ModelConfig()
_EDGE = replace(_CGCNN, edge_update=True)
_ATTENTION = replace(_EDGE, conv="attention")
_CG = replace(_ATTENTION, use_charge=True, use_cell=True, charge_dropout=0.25)
_ATTEN2 = replace(_CG, heads=3, head_combine="mean")
_ATTEN3 = replace(_ATTEN2, head_combine="attention")
VARIANTS: dict[str, ModelConfig] = {
    "cgcnn": _CGCNN,
    "edge": _EDGE,
    "attention": _ATTENTION,
    "cg": _CG,
    "atten2": _ATTEN2,
    "atten3": _ATTEN3,
    # The global descriptor names are filled in from the shards by `mofsieve train`.
    "de-atten3": _ATTEN3,
}


def variant_config(name: str, **overrides: Any) -> ModelConfig:
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; choose from {sorted(VARIANTS)}")
    return replace(VARIANTS[name], **overrides)


def _atomic_masses() -> Tensor:
    from ase.data import atomic_masses

    masses = torch.zeros(MAX_Z, dtype=torch.float32)
    n = min(MAX_Z, len(atomic_masses))
    masses[:n] = torch.as_tensor(atomic_masses[:n], dtype=torch.float32)
    return masses


def cell_features(
    lattice: Tensor, z: Tensor, batch: Tensor, masses: Tensor, weight: Tensor | None = None
) -> Tensor:
    """G×8 cell descriptors (see :data:`CELL_FEATURE_NAMES`) from lattices (G×3×3) and atoms
    (each counted ``weight`` times where given: rows standing for equivalent atoms)."""
    num_graphs = lattice.size(0)
    lengths = lattice.norm(dim=-1)  # G×3: a, b, c
    a, b, c = lattice[:, 0], lattice[:, 1], lattice[:, 2]

    def cos(u: Tensor, v: Tensor) -> Tensor:
        return (u * v).sum(-1) / (u.norm(dim=-1) * v.norm(dim=-1))

    volume = torch.linalg.det(lattice.double()).abs().to(lattice.dtype)
    count = torch.ones_like(z, dtype=lattice.dtype) if weight is None else weight.to(lattice.dtype)
    n_atoms = scatter(count, batch, 0, dim_size=num_graphs)
    mass = scatter(masses[z] * count, batch, 0, dim_size=num_graphs)
    return torch.stack(
        [
            *lengths.log().unbind(-1),
            cos(b, c),
            cos(a, c),
            cos(a, b),
            (volume / n_atoms).log(),
            mass * AVOGADRO_G_CM3 / volume,
        ],
        dim=-1,
    )


def multiplicity(data: Any) -> Tensor | None:
    """How many atoms each row of a batch stands for (None: one each). Set by predict when it
    merges equivalent atoms (mofsieve.symmetry)."""
    return getattr(data, "multiplicity", None)


def descriptor_scaling(descriptors: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and standard deviation per column of raw descriptors (G×D), NaN left out."""
    mean = torch.nanmean(descriptors, dim=0)
    return mean, torch.sqrt(torch.nanmean((descriptors - mean) ** 2, dim=0)).clamp_min(1e-6)


class CrystalRegressor(nn.Module):
    """What every architecture shares around its graph layers: the optional partial-charge
    term of the atom input, the crystal descriptors (cell, shard globals) standardised by
    buffers, and the MLP head. The config must have ``use_charge``, ``charge_dropout``,
    ``use_cell``, ``global_features``, ``mlp_hidden`` and ``n_targets``.

    Several targets (``n_targets`` > 1) share everything but the last Linear layer, which
    has one output per target: the targets here (CO2 uptake at 0.15 and 16 bar) are the same
    physics at two pressures, so one crystal representation and one hidden layer serve both,
    and the head costs nothing extra per pass. Each output row of that layer only receives
    the gradient of its own target's loss (masked where a MOF lacks the label), so a MOF
    labelled at one pressure trains its own output and the shared layers, never the other
    output."""

    ARCHITECTURE = ""
    config: Any

    def _init_charge(self, atom_dim: int) -> None:
        if self.config.use_charge:
            self.charge_rbf = GaussianExpansion(-2.0, 2.0, 0.25)
            self.charge_embed = nn.Linear(self.charge_rbf.num_features + 1, atom_dim)

    def _init_head(self, pooled_dim: int) -> None:
        cfg = self.config
        n_cell = len(CELL_FEATURE_NAMES) if cfg.use_cell else 0
        n_global = len(cfg.global_features)
        self.register_buffer("masses", _atomic_masses(), persistent=False)
        self.register_buffer("cell_mean", torch.zeros(n_cell))
        self.register_buffer("cell_std", torch.ones(n_cell))
        self.register_buffer("global_mean", torch.zeros(n_global))
        self.register_buffer("global_std", torch.ones(n_global))
        self.mlp_in = nn.Linear(pooled_dim + n_cell + n_global, cfg.mlp_hidden)
        self.mlp_out = nn.Linear(cfg.mlp_hidden, getattr(cfg, "n_targets", 1))

    def add_charge(self, x: Tensor, data: Any) -> Tensor:
        """``x + Linear(rbf(q)·has_q ⊕ has_q)`` (charges hidden for a share of the crystals
        in training), or ``x`` when the config uses no charges."""
        if not self.config.use_charge:
            return x
        has_charge = ~torch.isnan(data.charge)
        self._charges_hidden: Tensor | None = None
        if self.training and self.config.charge_dropout > 0:
            hidden = torch.rand(int(data.num_graphs), device=x.device) < self.config.charge_dropout
            has_charge = has_charge & ~hidden[data.batch]
            self._charges_hidden = hidden  # the head hides the descriptors made from charges
        q = torch.where(has_charge, data.charge, torch.zeros_like(data.charge))
        flag = has_charge.to(x.dtype).unsqueeze(-1)
        return x + self.charge_embed(torch.cat([self.charge_rbf(q) * flag, flag], dim=-1))

    def raw_descriptors(self, data: Any) -> Tensor | None:
        """Unstandardised G×D descriptors (cell, then shard globals), or None if none used."""
        parts = []
        num_graphs = int(data.num_graphs)
        if self.config.use_cell:
            parts.append(
                cell_features(data.lattice, data.z, data.batch, self.masses, multiplicity(data))
            )
        if self.config.global_features:
            parts.append(data.global_features.view(num_graphs, -1))
        return torch.cat(parts, dim=-1) if parts else None

    def fit_descriptor_scaling(self, descriptors: Tensor) -> None:
        """Set the standardisation buffers from the training set's raw descriptors (G×D)."""
        mean, std = descriptor_scaling(descriptors)
        n_cell = self.cell_mean.numel()
        self.cell_mean.copy_(mean[:n_cell])
        self.cell_std.copy_(std[:n_cell])
        self.global_mean.copy_(mean[n_cell:])
        self.global_std.copy_(std[n_cell:])

    def head_inputs(self, pooled: Tensor, data: Any) -> Tensor:
        """What the MLP head reads (G×D): the pooled crystal vectors, then the descriptors
        standardised (and clipped to ±``descriptor_clip`` when the config sets one)."""
        descriptors = self.raw_descriptors(data)
        if descriptors is None:
            return pooled
        hidden = getattr(self, "_charges_hidden", None) if self.training else None
        if hidden is not None and hidden.any():
            descriptors = self._hide_charged_descriptors(descriptors, hidden)
        mean = torch.cat([self.cell_mean, self.global_mean])
        std = torch.cat([self.cell_std, self.global_std])
        # A descriptor that could not be computed (NaN) sits at the training mean.
        scaled = torch.nan_to_num((descriptors - mean) / std)
        clip = getattr(self.config, "descriptor_clip", 0.0)
        if clip:
            scaled = scaled.clamp(-clip, clip)
        return torch.cat([pooled, scaled], dim=-1)

    def _hide_charged_descriptors(self, descriptors: Tensor, hidden: Tensor) -> Tensor:
        """``descriptors`` with those made from partial charges NaN for the crystals whose
        charges the training step hid, as featurization leaves a crystal without charges."""
        from mofsieve.descriptors.energy_grid import charged_globals

        charged = charged_globals(self.config.global_features)
        if not charged:
            return descriptors
        n_cell = self.cell_mean.numel()
        columns = torch.tensor([n_cell + i for i in charged], device=descriptors.device)
        descriptors = descriptors.clone()
        rows = hidden.nonzero().squeeze(1)
        descriptors[rows.unsqueeze(1), columns] = float("nan")
        return descriptors

    def head_output(self, inputs: Tensor) -> Tensor:
        """Standardised predictions from :meth:`head_inputs`: (G,) for one target, G×T for
        several."""
        out = self.mlp_out(F.softplus(self.mlp_in(inputs)))
        return out.squeeze(-1) if out.size(-1) == 1 else out

    def head(self, pooled: Tensor, data: Any) -> Tensor:
        """Standardised predictions (G,) or G×T from the pooled crystal vectors and descriptors."""
        return self.head_output(self.head_inputs(pooled, data))

    def forward(
        self, data: Any, return_atom_weights: bool = False
    ) -> Tensor | tuple[Tensor, Tensor | None]:
        """Standardised predictions (G,), or G×T for a multi-target model; with
        ``return_atom_weights`` also the readout's
        per-atom weights (N,), None unless the readout is attention pooling."""
        pooled, atom_weights = self.crystal_vectors(data)
        out = self.head(pooled, data)
        if return_atom_weights:
            return out, atom_weights
        return out

    def crystal_vectors(self, data: Any) -> tuple[Tensor, Tensor | None]:
        """The graph trunk: pooled crystal vectors (G×F) and the readout's per-atom weights."""
        raise NotImplementedError


class AECGCNN(CrystalRegressor):
    """Crystal graph → one standardised target value per crystal.

    ``forward(data)`` takes a PyG batch with ``z``, ``edge_index``, ``edge_dist``, ``batch``
    and, as the config needs them, ``charge``, ``lattice``, ``global_features`` (already in
    the order of ``config.global_features``), and optionally ``multiplicity`` (rows standing
    for several equivalent atoms, see :func:`multiplicity`). Descriptor standardisation lives
    in buffers, so it travels with the weights.
    """

    ARCHITECTURE = MODEL_CLASS

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        cfg = config
        self.rbf = GaussianExpansion(0.0, cfg.rbf_stop, cfg.rbf_step)
        self.embed = nn.Embedding(MAX_Z, cfg.atom_dim)
        self._init_charge(cfg.atom_dim)  # (creation order = the order weights are drawn in)
        edge_dim = self.rbf.num_features
        if cfg.edge_update:
            self.edge_embed = nn.Linear(edge_dim, cfg.edge_dim)
            edge_dim = cfg.edge_dim
            self.edge_convs = nn.ModuleList(
                EdgeConv(cfg.atom_dim, edge_dim) for _ in range(cfg.num_layers)
            )
        self.convs = nn.ModuleList(self._conv(edge_dim) for _ in range(cfg.num_layers))
        self.readout = (
            READOUTS[cfg.readout](cfg.atom_dim)
            if cfg.readout == "attention"
            else READOUTS[cfg.readout]()
        )
        self._init_head(cfg.atom_dim)

    def _conv(self, edge_dim: int) -> nn.Module:
        cfg = self.config
        if cfg.conv == "cgcnn":
            return CGConv(cfg.atom_dim, edge_dim)
        if cfg.heads == 1:
            return GraphAttentionConv(cfg.atom_dim, edge_dim)
        if cfg.head_combine == "mean":
            return MultiHeadAttentionConv(cfg.atom_dim, edge_dim, heads=cfg.heads)
        return HeadAttentionConv(cfg.atom_dim, edge_dim, heads=cfg.heads)

    def set_per_edge(self, per_edge: bool) -> None:
        """Switch every layer to the straightforward per-edge concatenation (benchmarks)."""
        for module in self.modules():
            if isinstance(module, PairProjection):
                module.per_edge = per_edge

    # -- forward -----------------------------------------------------------------------------

    def atom_inputs(self, data: Any) -> Tensor:
        return self.add_charge(self.embed(data.z), data)

    def crystal_vectors(self, data: Any) -> tuple[Tensor, Tensor | None]:
        num_graphs = int(data.num_graphs)
        edge_index = data.edge_index
        x = self.atom_inputs(data)
        e = self.rbf(data.edge_dist)
        if self.config.edge_update:
            e = self.edge_embed(e)
        degree = regular_degree(edge_index[1], x.size(0))
        for layer in range(self.config.num_layers):
            if self.config.edge_update:
                e = self.edge_convs[layer](x, edge_index, e, degree=degree)
            x = self.convs[layer](x, edge_index, e, degree=degree)
        return self.readout(x, data.batch, num_graphs, multiplicity(data))


# ---------------------------------------------------------------------------------------------
# Model directories: model.json + one weights file per ensemble member (design §3).


def member_filename(k: int) -> str:
    return f"member-{k}.pt"


def config_from_json(architecture: str, init: dict[str, Any]) -> Any:
    """The config object of ``architecture`` (``model.json``'s ``class``) from its ``init``."""
    if architecture == MODEL_CLASS:
        return ModelConfig.from_json(init)
    from mofsieve.ocrystalnet import ARCHITECTURE, OCrystalNetConfig

    if architecture == ARCHITECTURE:
        return OCrystalNetConfig.from_json(init)
    raise ModelDirError(f"unknown model architecture {architecture!r}")


def build_model(config: Any) -> CrystalRegressor:
    """A freshly initialised model of the architecture ``config`` belongs to."""
    if isinstance(config, ModelConfig):
        return AECGCNN(config)
    from mofsieve.ocrystalnet import OCrystalNet, OCrystalNetConfig

    if isinstance(config, OCrystalNetConfig):
        return OCrystalNet(config)
    raise TypeError(f"no architecture takes a {type(config).__name__}")


def save_model_dir(out: Path, members: Sequence[CrystalRegressor], **model_json: Any) -> ModelSpec:
    """Write every member's weights, then ``model.json`` (last, atomically) through
    :func:`mofsieve.modeldir.write_model_json` (or, given ``targets``,
    :func:`~mofsieve.modeldir.write_multi_target_model_json`); ``model_json`` holds its
    keyword arguments other than the architecture, ``init`` and weights, which come from the
    members."""
    out.mkdir(parents=True, exist_ok=True)
    for k, member in enumerate(members):
        with atomic_output(out / member_filename(k)) as tmp:
            torch.save(member.state_dict(), tmp)
    write = write_multi_target_model_json if "targets" in model_json else write_model_json
    return write(
        out,
        architecture=type(members[0]).ARCHITECTURE,
        init=members[0].config.to_json(),
        weights=[member_filename(k) for k in range(len(members))],
        **model_json,
    )


def load_model_dir(
    model_dir: Path, device: str | torch.device = "cpu"
) -> tuple[list[CrystalRegressor], ModelSpec]:
    """All ensemble members (eval mode, on ``device``) and the model's :class:`ModelSpec`;
    the architecture is the one ``model.json`` names."""
    spec = read_model(model_dir)
    config = config_from_json(spec.architecture, dict(spec.init))
    members = []
    for path in spec.weight_paths():
        if not path.is_file():
            raise ModelDirError(f"{path} is missing (model.json lists it)")
        model = build_model(config)
        state = torch.load(path, map_location=device, weights_only=True)
        model.load_state_dict(state)
        members.append(model.to(device).eval())
    return members, spec
