"""What decides a crystal graph's shape: the parameters a model and its shards must share.

No heavy imports here: the Snakemake rules (via :mod:`mofsieve.config`) and the model
directory reader (:mod:`mofsieve.modeldir`) use these without loading torch or h5py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


class FeaturizationMismatch(ValueError):
    """Graphs were featurized with other parameters than a model was trained with."""


@dataclass(frozen=True)
class FeaturizationParams:
    """Everything that decides what a graph looks like; a model must match all of it."""

    cutoff: float = 8.0
    max_neighbors: int = 12
    atom_features: str = "atomic_number,charge"
    global_feature_names: tuple[str, ...] = field(default_factory=tuple)

    def to_attrs(self) -> dict[str, object]:
        """HDF5 attributes (the global feature names as one JSON list)."""
        attrs = asdict(self)
        attrs["global_feature_names"] = json.dumps(list(self.global_feature_names))
        return attrs

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, object]) -> FeaturizationParams:
        return cls(
            cutoff=float(attrs["cutoff"]),  # type: ignore[arg-type]
            max_neighbors=int(attrs["max_neighbors"]),  # type: ignore[call-overload]
            atom_features=str(attrs["atom_features"]),
            global_feature_names=tuple(json.loads(str(attrs["global_feature_names"]))),
        )

    def to_json(self) -> dict[str, Any]:
        """The ``featurization`` object of ``model.json``."""
        return {
            "cutoff": self.cutoff,
            "max_neighbors": self.max_neighbors,
            "atom_features": self.atom_features,
            "global_feature_names": list(self.global_feature_names),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> FeaturizationParams:
        return cls(
            cutoff=float(d["cutoff"]),
            max_neighbors=int(d["max_neighbors"]),
            atom_features=str(d["atom_features"]),
            global_feature_names=tuple(d["global_feature_names"]),
        )

    def check_compatible(self, other: FeaturizationParams, what: str = "graphs") -> None:
        """Raise :class:`FeaturizationMismatch` naming the first parameter that differs.

        ``self`` is what a model expects; ``other`` is what the graphs were made with. Graphs
        may carry global features the model does not use, but not lack any it needs.
        """
        for name in ("cutoff", "max_neighbors", "atom_features"):
            want, got = getattr(self, name), getattr(other, name)
            if want != got:
                raise FeaturizationMismatch(
                    f"{what} were featurized with {name}={got!r} but the model expects "
                    f"{name}={want!r}; featurize again with the model's parameters "
                    "(`mofsieve featurize --model MODEL_DIR …`)"
                )
        missing = [n for n in self.global_feature_names if n not in other.global_feature_names]
        if missing:
            raise FeaturizationMismatch(
                f"{what} lack global features {missing} that the model needs "
                f"(they have {list(other.global_feature_names)}); featurize again with "
                "`mofsieve featurize --model MODEL_DIR …`"
            )
