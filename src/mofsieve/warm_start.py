"""The source model of a fine-tuning run (``mofsieve train --init-from MODEL_DIR``).

A fine-tuned model is the source model trained further on new labels, so everything that
gives its weights a meaning is the source's and cannot be chosen again: the architecture and
its options, the featurization of the graphs (checked shard by shard), the target and its
normalisation, the number of members, and the split (the source's validation and test MOFs
stay held out; new labelled MOFs train). :func:`load_warm_start` refuses, with the option to
drop, anything that would differ. What the model came from goes into ``model.json``
(``training.init_from``: path, sha1 of the source's ``model.json`` and weights).

Two things may be added: descriptors the MLP head reads (``--global-features``, their input
weights start at zero), and targets (``--target`` repeated, naming every target of the source
and new ones: a multi-target model on the source's graph trunk). A new target has no trained
output to start from, and an output added to a hidden layer tuned for the source's target
learns less than a head trained anew on the same frozen trunk (measured on the shipped
0.15 bar model: 16 bar validation MAE 0.55 with the source's hidden layer, 0.52 anew), so the
MLP head then starts anew (seeded) while the graph trunk keeps the source's weights; a new
target is standardised on this run's training labels.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mofsieve.modeldir import ModelSpec

log = logging.getLogger(__name__)

FINETUNE_EPOCHS = 10  # defaults of --epochs and --lr with --init-from (50 and 1e-3 without)
FINETUNE_LR = 1e-4

# train options that choose an architecture: a fine-tuned model has its source's
# (--global-features may only add descriptors after the source's: see added_global_features)
ARCHITECTURE_OPTIONS = (
    "architecture", "variant", "atom_input", "readout", "no_charge", "charge_dropout",
)  # fmt: skip


# what the fine-tuned model's card repeats of how its source was trained
SOURCE_TRAINING_KEYS = (
    "epochs_run", "best_epochs", "seconds_per_epoch_mean", "threads", "device",
    "max_atoms_train", "n_train_over_atom_cap", "time_budget_min_per_member", "ensemble",
)  # fmt: skip


@dataclass(frozen=True)
class WarmStart:
    """The source model: its spec, architecture config, member weights and split."""

    directory: Path
    spec: ModelSpec
    config: Any
    states: list[dict[str, Any]]  # one state dict per member, on the CPU
    split: dict[str, str]
    model_json_sha1: str
    weights_sha1: list[str]
    added_globals: tuple[str, ...] = ()  # descriptors the fine-tuned head reads in addition
    targets: tuple[str, ...] = ()  # the fine-tuned model's, in its output order
    added_targets: tuple[str, ...] = ()  # those the source does not predict

    def normalisation(self, y_train: Any) -> tuple[Any, Any]:
        """The fine-tuned model's target standardisation: the source's for its targets (its
        weights were trained on it), the training labels' (``y_train``, G×T) for added ones;
        floats for one target, arrays for several."""
        from mofsieve.train import target_normalisation

        source = dict(zip(self.spec.target_names, self.spec.normalisations, strict=True))
        if len(self.targets) == 1:
            return source[self.targets[0]]
        mean, std = target_normalisation(y_train, list(self.targets))
        for t, name in enumerate(self.targets):
            if name in source:
                mean[t], std[t] = source[name]
        return mean, std

    def check_graphs(self, readers: Sequence[Any]) -> Any:
        """The featurization of the fine-tuned model: the source's, with the descriptors its
        head adds (:func:`added_global_features`), except that shards whose
        CIFs without charges got the charge model's (``charges: cif_or_model``) may fine-tune
        a source trained on CIF charges (a CIF with charges gives the same graph either way),
        and that the force-field descriptors may be of another revision than the source read
        (fine-tuning on the graphs' own is how a model moves to their revision).
        :class:`FeaturizationMismatch` unless every shard fits."""
        from mofsieve.featurization_params import CHARGES_FROM_CIF

        wanted = self.spec.featurization
        wanted = replace(
            wanted,
            global_feature_names=wanted.global_feature_names + self.added_globals,
            energy_revision=readers[0].params.energy_revision if readers else 1,
        )
        charges = {reader.params.charges for reader in readers}
        if wanted.charges == CHARGES_FROM_CIF and charges == {"cif_or_model"}:
            wanted = replace(wanted, charges="cif_or_model")
        for reader in readers:
            wanted.check_compatible(reader.params, what=f"graphs in {reader.path}")
        return wanted

    def record(self, n_new_train: int) -> dict[str, Any]:
        """``training.init_from`` of the fine-tuned model's ``model.json``."""
        return {
            "path": str(self.directory),
            "model_json_sha1": self.model_json_sha1,
            "weights_sha1": self.weights_sha1,
            "variant": self.spec.variant,
            **(
                {"targets": list(self.spec.target_names)}
                if self.spec.is_multi_target
                else {"target": self.spec.target_names[0]}
            ),
            **({"added_targets": list(self.added_targets)} if self.added_targets else {}),
            "n_new_train": n_new_train,
            **({"added_global_features": list(self.added_globals)} if self.added_globals else {}),
            # how the source itself came to be, when it was fine-tuned too (the chain)
            **({"source_init_from": source_init} if (source_init := self._source_init()) else {}),
            "source_training": {
                key: self.spec.metadata.get("training", {}).get(key) for key in SOURCE_TRAINING_KEYS
            },
        }

    def _source_init(self) -> dict[str, Any] | None:
        return self.spec.metadata.get("training", {}).get("init_from")

    def set_added_scaling(self, mean: Any, std: Any) -> None:
        """Standardisation of the added descriptors (training-split statistics, one value
        per added descriptor) into every member's state; the source's stay as they were."""
        n_added = len(self.added_globals)
        for state in self.states:
            state["global_mean"][-n_added:] = mean
            state["global_std"][-n_added:] = std


def added_global_features(source: Sequence[str], asked: Sequence[str] | None) -> tuple[str, ...]:
    """The descriptors ``--global-features`` adds to the source model's (which must come
    first, in the source's order: the trained head reads them by position)."""
    if asked is None or list(asked) == list(source):
        return ()
    if list(asked[: len(source)]) != list(source):
        raise ValueError(
            f"--global-features must start with the source model's {list(source)} in that "
            "order (its head reads them by position), then name the descriptors to add"
        )
    added = tuple(asked[len(source) :])
    if len(set(added)) != len(added) or set(added) & set(source):
        raise ValueError(f"--global-features names a descriptor twice: {list(asked)}")
    return added


def extend_head_inputs(state: dict[str, Any], n_added: int) -> dict[str, Any]:
    """A member's state with ``n_added`` more descriptor inputs to its MLP head: their weights
    start at zero (the fine-tuning starts from exactly the source's predictions), their
    standardisation at mean 0, std 1 until :meth:`WarmStart.set_added_scaling`."""
    import torch

    state = dict(state)
    weight = state["mlp_in.weight"]
    state["mlp_in.weight"] = torch.cat([weight, weight.new_zeros(weight.shape[0], n_added)], 1)
    state["global_mean"] = torch.cat([state["global_mean"], weight.new_zeros(n_added)])
    state["global_std"] = torch.cat([state["global_std"], weight.new_ones(n_added)])
    return state


def settle_finetune_targets(
    args: argparse.Namespace, source: Path, source_targets: Sequence[str]
) -> tuple[list[str], tuple[str, ...]]:
    """The fine-tuned model's targets (``--target``, or the source's) and those it adds;
    ``args.targets`` and ``args.target`` (None for several) set to them."""
    asked = list(getattr(args, "targets", None) or ([args.target] if args.target else []))
    targets = asked or list(source_targets)
    dropped = [t for t in source_targets if t not in targets]
    if dropped:
        raise ValueError(
            f"--target {' '.join(asked)}: {source} predicts {list(source_targets)} (its "
            "weights and normalisation mean those targets); fine-tune on labels of the same "
            f"target, or name them all with --target to add targets (dropping {dropped} is "
            "not fine-tuning)"
        )
    args.targets = targets
    args.target = targets[0] if len(targets) == 1 else None
    return targets, tuple(t for t in targets if t not in source_targets)


def new_head(state: dict[str, Any], config: Any, seed: int) -> dict[str, Any]:
    """A member's state with a newly initialised MLP head (``mlp_in``, ``mlp_out``: seeded as
    a model trained from scratch would be) for ``config``'s outputs; the trunk, descriptor
    scaling included, is the member's."""
    import torch

    from mofsieve.model import build_model

    torch.manual_seed(seed)
    fresh = build_model(config).state_dict()
    state = dict(state)
    for name in ("mlp_in.weight", "mlp_in.bias", "mlp_out.weight", "mlp_out.bias"):
        state[name] = fresh[name]
    return state


def reorder_outputs(state: dict[str, Any], order: Sequence[int]) -> dict[str, Any]:
    """A member's state with its outputs in ``order`` (output i = the source's ``order[i]``)."""
    state = dict(state)
    state["mlp_out.weight"] = state["mlp_out.weight"][list(order)]
    state["mlp_out.bias"] = state["mlp_out.bias"][list(order)]
    return state


def _sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def load_warm_start(args: argparse.Namespace) -> WarmStart:
    """Read ``args.init_from`` and settle ``args.target`` and ``args.ensemble`` from it;
    ``ValueError`` naming the option if the command asks for something the source is not."""
    import torch

    from mofsieve.model import config_from_json
    from mofsieve.modeldir import model_json_path, read_model
    from mofsieve.training_data import read_split

    source = Path(args.init_from)
    if Path(args.out).resolve() == source.resolve():
        raise ValueError(
            f"--out {args.out} is the --init-from model: write the fine-tuned model to a new "
            "directory (the source's weights stay as they are)"
        )
    spec = read_model(source)
    given = [
        name for name in ARCHITECTURE_OPTIONS if getattr(args, name, None) not in (None, False)
    ]
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise ValueError(
            f"{flags}: a fine-tuned model keeps the architecture of {source} "
            f"({spec.architecture}, variant {spec.variant}); leave {flags} out"
        )
    targets, added_targets = settle_finetune_targets(args, source, spec.target_names)
    if args.ensemble is None:
        args.ensemble = len(spec.weights)
    elif args.ensemble != len(spec.weights):
        raise ValueError(
            f"--ensemble {args.ensemble}: {source} has {len(spec.weights)} members, and each "
            "fine-tuned member starts from one of them; leave --ensemble out"
        )
    states = [
        torch.load(path, map_location="cpu", weights_only=True) for path in spec.weight_paths()
    ]
    config = config_from_json(spec.architecture, dict(spec.init))
    added = added_global_features(config.global_features, args.global_features)
    clip = getattr(args, "descriptor_clip", None)
    if clip is not None and not added and clip != getattr(config, "descriptor_clip", 0.0):
        raise ValueError(
            "--descriptor-clip changes what the source's head reads: only with --global-features "
            "that add descriptors (the head is then trained again)"
        )
    if added:
        config = replace(config, global_features=config.global_features + added)
        if clip is not None:
            config = replace(config, descriptor_clip=clip)
        states = [extend_head_inputs(state, len(added)) for state in states]
        log.info("the fine-tuned head also reads %s", list(added))
    if tuple(targets) != spec.target_names:
        config = replace(config, n_targets=len(targets))
        if added_targets:
            states = [new_head(state, config, args.seed + k) for k, state in enumerate(states)]
            log.info("new target(s) %s: the MLP head starts anew on %s's graph trunk",
                     list(added_targets), source)  # fmt: skip
        else:  # the same targets in another order: the outputs follow
            order = [spec.target_names.index(t) for t in targets]
            states = [reorder_outputs(state, order) for state in states]
    log.info("warm start from %s (%s, %d members)", source, spec.variant, len(states))
    return WarmStart(
        directory=source,
        spec=spec,
        config=config,
        added_globals=added,
        states=states,
        targets=tuple(targets),
        added_targets=added_targets,
        split=read_split(source / "split.csv"),
        model_json_sha1=_sha1(model_json_path(source)),
        weights_sha1=[_sha1(p) for p in spec.weight_paths()],
    )
