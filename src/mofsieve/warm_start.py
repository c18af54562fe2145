"""The source model of a fine-tuning run (``mofsieve train --init-from MODEL_DIR``).

A fine-tuned model is the source model trained further on new labels, so everything that
gives its weights a meaning is the source's and cannot be chosen again: the architecture and
its options, the featurization of the graphs (checked shard by shard), the target and its
normalisation, the number of members, and the split (the source's validation and test MOFs
stay held out; new labelled MOFs train). :func:`load_warm_start` refuses, with the option to
drop, anything that would differ. What the model came from goes into ``model.json``
(``training.init_from``: path, sha1 of the source's ``model.json`` and weights).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mofsieve.modeldir import ModelSpec

log = logging.getLogger(__name__)

FINETUNE_EPOCHS = 10  # defaults of --epochs and --lr with --init-from (50 and 1e-3 without)
FINETUNE_LR = 1e-4

# train options that choose an architecture: a fine-tuned model has its source's
ARCHITECTURE_OPTIONS = (
    "architecture", "variant", "atom_input", "readout", "global_features", "no_charge",
    "charge_dropout",
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

    def check_graphs(self, readers: Sequence[Any]) -> None:
        """:class:`FeaturizationMismatch` unless every shard was featurized as the source
        model's graphs were."""
        for reader in readers:
            self.spec.check_graphs(reader.params, what=f"graphs in {reader.path}")

    def record(self, n_new_train: int) -> dict[str, Any]:
        """``training.init_from`` of the fine-tuned model's ``model.json``."""
        return {
            "path": str(self.directory),
            "model_json_sha1": self.model_json_sha1,
            "weights_sha1": self.weights_sha1,
            "variant": self.spec.variant,
            "target": self.spec.target.name,
            "n_new_train": n_new_train,
        }


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
    if args.target is None:
        args.target = spec.target.name
    elif args.target != spec.target.name:
        raise ValueError(
            f"--target {args.target}: {source} predicts {spec.target.name} (its weights and "
            "normalisation mean that target); fine-tune on labels of the same target"
        )
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
    log.info("warm start from %s (%s, %d members)", source, spec.variant, len(states))
    return WarmStart(
        directory=source,
        spec=spec,
        config=config_from_json(spec.architecture, dict(spec.init)),
        states=states,
        split=read_split(source / "split.csv"),
        model_json_sha1=_sha1(model_json_path(source)),
        weights_sha1=[_sha1(p) for p in spec.weight_paths()],
    )
