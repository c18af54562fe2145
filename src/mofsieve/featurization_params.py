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


# Where the atoms' partial charges (the graph's ``charge`` column and the charged descriptors)
# come from; words of mofsieve.charge_sources.CHARGE_METHODS. "cif": the CIF's own, NaN where
# it has none (what shards and model.json files without the parameter mean); "cif_or_model":
# the CIF's own when every atom has one, else the shipped charge model's.
CHARGES_FROM_CIF = "cif"
FEATURIZATION_CHARGES: tuple[str, ...] = (CHARGES_FROM_CIF, "cif_or_model")

# Revision of the force-field descriptors' numbers (mofsieve.descriptors.energy_grid), what
# `mofsieve featurize` computes now. 1: shards and models from before revision 2 (the
# parameter absent), whose compiled kernel missed the images of atoms on a cell face (a
# fraction a rounding error below 0 wrapped to 1.0): 7 % of the shared CoRE MOFs had other
# values, up to 0.4 in log10 K_H. A model reading these descriptors and its graphs must share
# the revision.
ENERGY_REVISION = 2


@dataclass(frozen=True)
class FeaturizationParams:
    """Everything that decides what a graph looks like; a model must match all of it."""

    cutoff: float = 8.0
    max_neighbors: int = 12
    atom_features: str = "atomic_number,charge"
    global_feature_names: tuple[str, ...] = field(default_factory=tuple)
    # Optional shard columns (mofsieve.graph_columns: "reverse_edges",
    # "orbital_neighbour_sum"); they add to the nearest-neighbour graph, never change it.
    columns: tuple[str, ...] = field(default_factory=tuple)
    charges: str = CHARGES_FROM_CIF  # one of FEATURIZATION_CHARGES
    energy_revision: int = 1  # of the force-field descriptors (ENERGY_REVISION: the current)

    def __post_init__(self) -> None:
        if self.charges not in FEATURIZATION_CHARGES:
            raise ValueError(
                f"featurization charges {self.charges!r}: known are "
                f"{', '.join(FEATURIZATION_CHARGES)}"
            )

    def to_attrs(self) -> dict[str, object]:
        """HDF5 attributes (global feature names and columns each as one JSON list)."""
        attrs = asdict(self)
        attrs["global_feature_names"] = json.dumps(list(self.global_feature_names))
        attrs["columns"] = json.dumps(list(self.columns))
        return attrs

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, object]) -> FeaturizationParams:
        return cls(
            cutoff=float(attrs["cutoff"]),  # type: ignore[arg-type]
            max_neighbors=int(attrs["max_neighbors"]),  # type: ignore[call-overload]
            atom_features=str(attrs["atom_features"]),
            global_feature_names=tuple(json.loads(str(attrs["global_feature_names"]))),
            columns=tuple(json.loads(str(attrs.get("columns", "[]")))),  # format 1: none
            charges=str(attrs.get("charges", CHARGES_FROM_CIF)),  # shards written before it
            energy_revision=int(attrs.get("energy_revision", 1)),  # type: ignore[call-overload]
        )

    def to_json(self) -> dict[str, Any]:
        """The ``featurization`` object of ``model.json`` (``columns`` only when there are
        any, ``charges`` only when not ``cif``: a model without them writes the ``model.json``
        it always did)."""
        out: dict[str, Any] = {
            "cutoff": self.cutoff,
            "max_neighbors": self.max_neighbors,
            "atom_features": self.atom_features,
            "global_feature_names": list(self.global_feature_names),
        }
        if self.columns:
            out["columns"] = list(self.columns)
        if self.charges != CHARGES_FROM_CIF:
            out["charges"] = self.charges
        if self.reads_energy_descriptors():
            out["energy_revision"] = self.energy_revision
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> FeaturizationParams:
        return cls(
            cutoff=float(d["cutoff"]),
            max_neighbors=int(d["max_neighbors"]),
            atom_features=str(d["atom_features"]),
            global_feature_names=tuple(d["global_feature_names"]),
            columns=tuple(d.get("columns", ())),
            charges=str(d.get("charges", CHARGES_FROM_CIF)),
            energy_revision=int(d.get("energy_revision", 1)),
        )

    def reads_energy_descriptors(self) -> bool:
        """Whether any global feature is a force-field descriptor (their revision matters)."""
        from mofsieve.descriptors.energy_grid import ENERGY_DESCRIPTORS  # numpy: not at import

        return any(name in ENERGY_DESCRIPTORS for name in self.global_feature_names)

    def check_compatible(self, other: FeaturizationParams, what: str = "graphs") -> None:
        """Raise :class:`FeaturizationMismatch` naming the first parameter that differs.

        ``self`` is what a model expects; ``other`` is what the graphs were made with. Graphs
        may carry global features and columns the model does not use, but not lack any it
        needs. Charges must match both ways: a model that reads charged descriptors would get
        NaN where ``cif`` graphs have no charges; one trained without model charges never saw
        them.
        """
        for name in ("cutoff", "max_neighbors", "atom_features", "charges"):
            want, got = getattr(self, name), getattr(other, name)
            if want != got:
                raise FeaturizationMismatch(
                    f"{what} were featurized with {name}={got!r} but the model expects "
                    f"{name}={want!r}; featurize again with the model's parameters "
                    "(`mofsieve featurize --model MODEL_DIR …`)"
                )
        if self.energy_revision != other.energy_revision and self.reads_energy_descriptors():
            remedy = (
                "featurize them again with this mofsieve"
                if other.energy_revision < self.energy_revision
                else "fine-tune the model on such graphs (`mofsieve train --init-from MODEL_DIR "
                "…`) or use one trained on them"
            )
            raise FeaturizationMismatch(
                f"{what} carry force-field descriptors of revision {other.energy_revision} but "
                f"the model read revision {self.energy_revision} in training (revision 2 "
                f"counts the images of atoms on a cell face); {remedy}"
            )
        missing = [n for n in self.global_feature_names if n not in other.global_feature_names]
        if missing:
            raise FeaturizationMismatch(
                f"{what} lack global features {missing} that the model needs "
                f"(they have {list(other.global_feature_names)}); featurize again with "
                "`mofsieve featurize --model MODEL_DIR …`"
            )
        lacking = [c for c in self.columns if c not in other.columns]
        if lacking:
            raise FeaturizationMismatch(
                f"{what} lack the graph column(s) {lacking} that the model needs (they have "
                f"{list(other.columns)}); featurize again with `mofsieve featurize --model "
                f"MODEL_DIR …` or `--columns {','.join(self.columns)}`"
            )
