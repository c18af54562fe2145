"""`mofsieve boost`: gradient-boosted trees on a crystal's descriptors, blended with the graph network.

Why a second learner: the graph network reads the global descriptors (cell, density, pore
geometry, CO2 force-field energies) only through a small MLP after pooling, while gradient-boosted
trees on those descriptors plus the crystal's composition come within 5–10 % of its validation
MAE on their own (CoRE MOF 2019, both pressures) and err elsewhere: their blend beats either.
``models/README.md`` has the figures.

The blended prediction is ``(1 − w)·(graph ensemble mean) + w·(mean of the trees)``, with ``w``
the weight of :data:`WEIGHTS` with the lowest validation MAE. For the spread the trees count as
one more ensemble member of weight ``w`` (the spread of the weighted members, by the law of
total variance), which calibration (:mod:`mofsieve.calibrate`) turns into σ.

Features (:func:`crystal_features`: arrays in, arrays out): the model's global features as the
shard holds them, then the atom fraction of each element of ``elements``, the number of atoms
in the cell, five statistics of the partial charges and the mean neighbour distance of the
graph. Missing charges (NaN) stay NaN: the trees route them as missing values.

The trees are LightGBM's, in its own text format, gzip-compressed (``booster-K.txt.gz``, one per
seed); this module writes and reads them, :mod:`mofsieve.modeldir` records them in
``model.json`` (``booster``). The number of rounds is chosen by 5-fold cross-validation on the
training split, so validation chooses only the weight and test chooses nothing.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import logging
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mofsieve.modeldir import BoosterSpec, ModelSpec

log = logging.getLogger(__name__)

# Atom fractions of these elements are features: the organic elements and halogens, then the
# metals of CoRE MOF 2019 (alkali to zinc, rubidium to tin, caesium to bismuth).
ELEMENTS: tuple[int, ...] = (
    (1, 6, 7, 8, 9, 15, 16, 17, 35, 53)
    + tuple(range(11, 14))
    + tuple(range(19, 31))
    + tuple(range(37, 51))
    + tuple(range(55, 84))
)
_NON_METALS = frozenset({1, 5, 6, 7, 8, 9, 14, 15, 16, 17, 34, 35, 53})
STATISTICS = (
    "n_atoms",
    "charge_mean_abs",
    "charge_std",
    "charge_max",
    "charge_min",
    "charge_mean_metal",
    "charge_fraction_above_half",
    "neighbour_distance_mean",
)
WEIGHTS = tuple(round(0.05 * k, 2) for k in range(21))  # the blend weights validation tries
DEFAULT_PARAMS: Mapping[str, Any] = {
    "objective": "l2",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "feature_fraction": 0.5,
    "min_data_in_leaf": 10,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
}
MAX_ROUNDS = 4000
EARLY_STOPPING = 200
CV_FOLDS = 5
MIN_TRAIN = 50  # fewer training MOFs cannot fill five folds of trees


def feature_names(global_names: Sequence[str], elements: Sequence[int]) -> list[str]:
    return [*global_names, *(f"fraction_Z{z}" for z in elements), *STATISTICS]


def crystal_features(
    atomic_number: np.ndarray,
    charge: np.ndarray,
    edge_dist: np.ndarray,
    global_features: np.ndarray,
    elements: Sequence[int],
) -> np.ndarray:
    """One crystal's feature row: its global features, element fractions and statistics."""
    z = np.asarray(atomic_number)
    q = np.asarray(charge, dtype=np.float64)
    n = len(z)
    if n == 0:
        raise ValueError("a crystal without atoms has no features")
    fractions = np.array([np.count_nonzero(z == e) for e in elements], dtype=np.float64) / n
    metal = ~np.isin(z, list(_NON_METALS))
    dist = np.asarray(edge_dist, dtype=np.float64)
    stats = [
        float(n),
        float(np.abs(q).mean()),
        float(q.std()),
        float(q.max()),
        float(q.min()),
        float(q[metal].mean()) if metal.any() else 0.0,
        float((np.abs(q) > 0.5).mean()) if np.isfinite(q).all() else float("nan"),
        float(dist.mean()) if len(dist) else float("nan"),
    ]
    return np.concatenate([np.asarray(global_features, dtype=np.float64), fractions, stats])


def graph_features(
    graphs: Iterable[Any], global_index: Sequence[int], elements: Sequence[int]
) -> np.ndarray:
    """Feature rows of crystal graphs (:class:`mofsieve.store.CrystalGraph`), their global
    features taken in the model's order (``global_index`` into the shard's)."""
    rows = []
    for g in graphs:
        globals_ = (
            np.empty(0)
            if g.global_features is None
            else np.asarray(g.global_features)[global_index]
        )
        rows.append(crystal_features(g.atomic_number, g.charge, g.edge_dist, globals_, elements))
    return np.vstack(rows) if rows else np.empty((0, 0))


def features_of_ids(
    spec: ModelSpec, graphs: Sequence[str | Path], wanted: set[str]
) -> dict[str, np.ndarray]:
    """mof_id → feature row for the graphs of ``graphs`` whose id is in ``wanted`` (the first
    graph of an id), each shard checked against the model's featurization."""
    from mofsieve.store import ShardReader, shard_paths

    elements = _elements(spec)
    found: dict[str, np.ndarray] = {}
    for path in shard_paths(graphs):
        reader = ShardReader(path)
        spec.check_graphs(reader.params, what=f"graphs in {path}")
        rows = [i for i, m in enumerate(reader.ids) if m in wanted and m not in found]
        if not rows:
            continue
        index = _global_index(spec, reader.params.global_feature_names)
        features = graph_features((reader.graph(i) for i in rows), index, elements)
        found.update((reader.ids[i], features[j]) for j, i in enumerate(rows))
        reader.release()
    return found


def _elements(spec: ModelSpec) -> tuple[int, ...]:
    return spec.booster.elements if spec.booster is not None else ELEMENTS


def _global_index(spec: ModelSpec, shard_names: Sequence[str]) -> list[int]:
    return [list(shard_names).index(n) for n in spec.featurization.global_feature_names]


def blend(
    graph_mean: np.ndarray,
    graph_spread: np.ndarray,
    tree_mean: np.ndarray,
    weight: float,
    clip_min: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The blended mean and the spread of the weighted members: the graph network's members
    (population std ``graph_spread`` about ``graph_mean``) with weight ``1 − weight``, the
    trees with ``weight``."""
    graph_mean = np.asarray(graph_mean, dtype=np.float64)
    tree_mean = np.asarray(tree_mean, dtype=np.float64)
    mean = (1.0 - weight) * graph_mean + weight * tree_mean
    variance = (1.0 - weight) * (np.asarray(graph_spread, dtype=np.float64) ** 2
                                 + (graph_mean - mean) ** 2) + weight * (tree_mean - mean) ** 2  # fmt: skip
    if clip_min is not None:
        mean = np.maximum(mean, clip_min)
    return mean, np.sqrt(variance)


@dataclass
class Trees:
    """A model directory's boosted trees, loaded once, and how to blend them."""

    spec: BoosterSpec
    boosters: list[Any]

    @classmethod
    def load(cls, model: ModelSpec) -> Trees | None:
        """The trees of ``model``, or None when it has none."""
        if model.booster is None:
            return None
        from mofsieve.modeldir import ModelDirError

        grown_on = model.booster.details.get("feature_names")
        made = feature_names(model.featurization.global_feature_names, model.booster.elements)
        if grown_on is not None and list(grown_on) != made:
            raise ModelDirError(
                f"{model.directory}: its trees were grown on {len(grown_on)} features that this "
                f"mofsieve no longer makes in that order ({len(made)} now); run `mofsieve boost` "
                "again"
            )
        boosters = []
        for path, digest in zip(model.booster_paths(), model.booster.sha256, strict=True):
            if not path.is_file():
                raise ModelDirError(f"{model.directory}: booster file {path.name} is missing")
            data = path.read_bytes()
            # LightGBM aborts the whole process on a malformed model: check before it parses
            if hashlib.sha256(data).hexdigest() != digest:
                raise ModelDirError(f"{path} is not the file model.json records (sha256 differs): damaged or replaced")  # fmt: skip
            boosters.append(_booster_from_text(gzip.decompress(data).decode()))
        return cls(model.booster, boosters)

    def predict(self, features: np.ndarray) -> np.ndarray:
        return mean_of_trees(self.boosters, features)

    def predict_graphs(self, graphs: Sequence[Any], global_index: Sequence[int]) -> np.ndarray:
        return self.predict(graph_features(graphs, global_index, self.spec.elements))


def mean_of_trees(boosters: Sequence[Any], features: np.ndarray) -> np.ndarray:
    """The boosters' mean prediction for each row of ``features``."""
    if len(features) == 0:
        return np.empty(0)
    return np.mean([b.predict(features, num_threads=1) for b in boosters], axis=0)


def _matrix(features: Mapping[str, np.ndarray], ids: Sequence[str]) -> np.ndarray:
    """The feature rows of ``ids``, stacked (an empty matrix for none)."""
    return np.vstack([features[m] for m in ids]) if ids else np.empty((0, 0))


def _blend_metrics(
    graph_metrics: Mapping[str, Any],
    y: Mapping[str, np.ndarray],
    blended: Mapping[str, np.ndarray],
    trees: Mapping[str, np.ndarray],
) -> dict[str, Any]:
    """``model.json``'s metrics of a blend: ``test`` and ``val`` of the blend, the graph
    network's members and its other metrics under ``graph_network``, the trees' alone."""
    from mofsieve.metrics import regression_metrics

    graph = dict(graph_metrics)
    return {
        **{p: regression_metrics(y[p], blended[p]) for p in ("test", "val") if len(y[p])},
        "test_members": graph.pop("test_members", []),
        "graph_network": {k: v for k, v in graph.items() if v is not None},
        "trees": {p: regression_metrics(y[p], trees[p]) for p in ("val", "test") if len(y[p])},
    }


def _booster_from_text(text: str) -> Any:
    import lightgbm

    return lightgbm.Booster(model_str=text)


def fit_trees(
    features: np.ndarray,
    y: np.ndarray,
    params: Mapping[str, Any],
    seeds: int,
    rounds: int | None = None,
    threads: int = 1,
) -> tuple[list[Any], int, float | None]:
    """Grow ``seeds`` boosters on ``features``/``y`` (one per bagging seed), each ``rounds``
    rounds; None: the number with the lowest 5-fold cross-validated MAE (early stopping after
    200 rounds without gain, at most 4000). Returns the boosters, the rounds and that MAE."""
    import lightgbm

    if len(y) < MIN_TRAIN:
        raise ValueError(
            f"{len(y)} training MOFs with features and labels: trees need at least {MIN_TRAIN}"
        )
    if seeds < 1:
        raise ValueError(f"--seeds must be at least 1, not {seeds}")
    full = {**params, "verbose": -1, "num_threads": threads, "metric": "l1", "seed": 0}
    data = lightgbm.Dataset(features, y, free_raw_data=False)
    cv_mae = None
    if rounds is None:
        cv = lightgbm.cv(full, data, MAX_ROUNDS, nfold=CV_FOLDS, stratified=False, seed=0,
                         callbacks=[lightgbm.early_stopping(EARLY_STOPPING, verbose=False)])  # fmt: skip
        key = next(k for k in cv if k.endswith("l1-mean"))
        rounds, cv_mae = len(cv[key]), float(cv[key][-1])
        log.info("trees: %d rounds by %d-fold cross-validation on training (MAE %.4f)",
                 rounds, CV_FOLDS, cv_mae)  # fmt: skip
    boosters = [lightgbm.train({**full, "seed": seed}, data, rounds) for seed in range(seeds)]
    return boosters, rounds, cv_mae


def choose_weight(y: np.ndarray, graph_mean: np.ndarray, tree_mean: np.ndarray) -> float:
    """The weight of :data:`WEIGHTS` whose blend has the lowest MAE on ``y`` (validation)."""
    maes = [float(np.mean(np.abs((1 - w) * graph_mean + w * tree_mean - y))) for w in WEIGHTS]
    return WEIGHTS[int(np.argmin(maes))]


def write_trees(
    model_dir: Path, boosters: Sequence[Any]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Write each booster as ``booster-K.txt.gz`` into ``model_dir`` (atomically); their names
    and sha256 digests."""
    from mofsieve.atomic import atomic_output

    names, digests = [], []
    for k, booster in enumerate(boosters):
        name = f"booster-{k}.txt.gz"
        # mtime 0: the same trees give the same bytes
        data = gzip.compress(booster.model_to_string().encode(), mtime=0)
        with atomic_output(model_dir / name) as tmp:
            tmp.write_bytes(data)
        names.append(name)
        digests.append(hashlib.sha256(data).hexdigest())
    return tuple(names), tuple(digests)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, type=Path, help="a trained single-target model directory (its split.csv decides which MOFs train the trees)")  # fmt: skip
    parser.add_argument("--labels", required=True, type=Path, help="label CSV (mof_id + the model's target column)")  # fmt: skip
    parser.add_argument("--graphs", required=True, nargs="+", help="graph shards or folders of shard-*.h5 holding the split's MOFs")  # fmt: skip
    parser.add_argument("--out", required=True, type=Path, help="new model directory: the model's files, the trees and the blend's calibration and card")  # fmt: skip
    parser.add_argument("--seeds", type=int, default=3, help="boosters grown with different bagging seeds and averaged (default 3)")  # fmt: skip
    parser.add_argument("--rounds", type=int, help="boosting rounds (default: 5-fold cross-validation on the training split)")  # fmt: skip
    parser.add_argument("--weight", type=float, help="blend weight of the trees in [0, 1] (default: lowest validation MAE)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=1, help="LightGBM threads (default 1)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--batch-atoms", type=int, default=8000)


def run(args: argparse.Namespace) -> int:
    from mofsieve.modeldir import ModelDirError

    try:
        boost(args.model, args.labels, args.graphs, args.out, seeds=args.seeds,
              rounds=args.rounds, weight=args.weight, threads=args.threads,
              device=args.device, batch_atoms=args.batch_atoms)  # fmt: skip
    except (ModelDirError, ValueError, FileNotFoundError) as err:
        log.error("%s", err)
        return 2
    return 0


def boost(
    model_dir: Path,
    labels_path: Path,
    graphs: Sequence[str],
    out: Path,
    seeds: int = 3,
    rounds: int | None = None,
    weight: float | None = None,
    threads: int = 1,
    device: str = "auto",
    batch_atoms: int = 8000,
    params: Mapping[str, Any] = DEFAULT_PARAMS,
) -> ModelSpec:
    """Grow trees on the training split of ``model_dir``, blend them with its graph network
    (weight chosen on validation), calibrate the blend on validation, and write the whole into
    ``out``: the model's own files, ``booster-K.txt.gz``, ``model.json``, the card, plots and
    ``test_predictions.csv``. A booster ``model_dir`` already has is replaced."""
    from mofsieve.calibrate import MIN_VALIDATION, HeldOut, fit_calibration
    from mofsieve.metrics import format_metrics, regression_metrics
    from mofsieve.modeldir import ModelDirError, read_model
    from mofsieve.predict import Predictor, predict_ids
    from mofsieve.training_data import read_labels, read_split

    if weight is not None and not 0.0 <= weight <= 1.0:
        raise ValueError(f"--weight must be within [0, 1], not {weight}")
    if rounds is not None and rounds < 1:
        raise ValueError(f"--rounds must be positive, not {rounds}")
    spec = read_model(model_dir)
    if spec.is_multi_target:
        raise ModelDirError(f"{model_dir} predicts several targets: `mofsieve boost` blends trees with a single-target model")  # fmt: skip
    if Path(out).resolve() == Path(model_dir).resolve():
        raise ValueError("--out must be a new directory, not the model's own")
    split_path = Path(model_dir) / "split.csv"
    if not split_path.is_file():
        raise ModelDirError(f"{model_dir} has no split.csv: the trees must learn from its training split only")  # fmt: skip
    target = spec.target.name
    labels = read_labels(labels_path, target)
    split = read_split(split_path)
    ids = {part: sorted(m for m, s in split.items() if s == part and m in labels)
           for part in ("train", "val", "test")}  # fmt: skip
    features = features_of_ids(spec, graphs, set().union(*ids.values()))
    ids = {part: [m for m in wanted if m in features] for part, wanted in ids.items()}
    if len(ids["val"]) < 2:
        raise ValueError(f"{len(ids['val'])} validation MOFs of {split_path} have a label and a graph: the blend weight needs more")  # fmt: skip
    log.info("%d train, %d validation, %d test MOFs with labels and graphs",
             len(ids["train"]), len(ids["val"]), len(ids["test"]))  # fmt: skip

    def y(part: str) -> np.ndarray:
        return np.array([labels[m] for m in ids[part]])

    elements = _elements(spec)
    boosters, rounds, cv_mae = fit_trees(
        _matrix(features, ids["train"]), y("train"), params, seeds, rounds, threads
    )
    predictor = Predictor(model_dir, device, use_booster=False)
    graph = predict_ids(predictor, graphs, set(ids["val"]) | set(ids["test"]), batch_atoms)
    parts = ("val", "test")
    graph_mean = {p: np.array([graph[m][0] for m in ids[p]]) for p in parts}
    graph_spread = {p: np.array([graph[m][1] for m in ids[p]]) for p in parts}
    tree_mean = {p: mean_of_trees(boosters, _matrix(features, ids[p])) for p in parts}
    weight_from = "given (--weight)"
    if weight is None:
        weight = choose_weight(y("val"), graph_mean["val"], tree_mean["val"])
        weight_from = "lowest validation MAE of weights 0, 0.05, …, 1"
    clip_min = spec.target.clip_min
    blended = {
        p: blend(graph_mean[p], graph_spread[p], tree_mean[p], weight, clip_min) for p in parts
    }
    labelled = {p: y(p) for p in parts}
    graph_metrics = {p: regression_metrics(labelled[p], graph_mean[p]) for p in parts if ids[p]}
    metrics = _blend_metrics(
        dict(spec.metadata.get("metrics") or {}) | graph_metrics,
        labelled,
        {p: blended[p][0] for p in parts},
        tree_mean,
    )
    for name, m in (("blend", metrics), ("graph", graph_metrics), ("trees", metrics["trees"])):
        log.info("%s: %s", name, "; ".join(f"{p} {format_metrics(m[p])}" for p in parts if p in m))
    log.info("blend weight of the trees %.2f (validation MAE, graph network alone %.4f, blend %.4f)",
             weight, graph_metrics["val"]["mae"], metrics["val"]["mae"])  # fmt: skip
    calibration = None
    if len(ids["val"]) >= MIN_VALIDATION:
        calibration = fit_calibration(
            HeldOut(y("val"), *blended["val"]),
            HeldOut(y("test"), *blended["test"]) if ids["test"] else None,
        )
    else:
        log.warning("%d validation MOFs (< %d): the blend stays uncalibrated", len(ids["val"]), MIN_VALIDATION)  # fmt: skip
    _copy_model(spec, out)
    names, digests = write_trees(out, boosters)
    details = {
        "library": f"lightgbm {_lightgbm_version()}",
        "seeds": seeds,
        "cv_mae_train": cv_mae,
        "n_train": len(ids["train"]),
        "feature_names": feature_names(spec.featurization.global_feature_names, elements),
        "weight_from": weight_from,
    }
    final = BoosterSpec(names, digests, weight, elements, rounds, dict(params), details)
    return _record(out, spec, final, calibration, metrics, ids["test"], y("test"), blended["test"])


def _lightgbm_version() -> str:
    import lightgbm

    return str(lightgbm.__version__)


def _copy_model(spec: ModelSpec, out: Path) -> None:
    """The graph network's files into ``out`` (its weights, split.csv…), without an earlier
    booster's trees, the files that will describe the blend, or ``model.json``: that comes
    last, so that a killed run leaves no folder that looks like a model."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.json").unlink(missing_ok=True)  # an earlier run's, into the same folder
    old_trees = {p.name for p in spec.booster_paths()}
    redone = {
        "model.json",
        "MODEL_CARD.md",
        "test_predictions.csv",
        "parity.png",
        "reliability.png",
    }
    for path in spec.directory.iterdir():
        if path.is_file() and path.name not in old_trees | redone and not path.name.startswith("."):
            shutil.copy2(path, out / path.name)


def _record(
    out: Path,
    source: ModelSpec,
    booster: BoosterSpec,
    calibration: Any,
    metrics: dict[str, Any],
    test_ids: Sequence[str],
    y_test: np.ndarray,
    test: tuple[np.ndarray, np.ndarray],
) -> ModelSpec:
    """model.json (booster, calibration, metrics), then the plots, test predictions and card."""
    from mofsieve.atomic import write_csv_atomic
    from mofsieve.modelcard import parity_plot, reliability_plot, write_model_card
    from mofsieve.modeldir import write_boosted_model_json

    spec = write_boosted_model_json(out, source, booster, calibration, metrics)
    mean, spread = test
    sigma = spread if calibration is None else calibration.sigma(spread, mean)
    write_csv_atomic(
        out / "test_predictions.csv",
        ["mof_id", "label", "prediction", "uncertainty"],
        ([m, f"{t:.6g}", f"{p:.6g}", f"{u:.6g}"] for m, t, p, u in zip(test_ids, y_test, mean, sigma, strict=True)),
    )  # fmt: skip
    if len(test_ids):
        parity_plot(out / "parity.png", y_test, mean, spec.target.name, metrics["test"])
    if calibration is not None:
        reliability_plot(out / "reliability.png", calibration)
    write_model_card(out / "MODEL_CARD.md", spec)
    log.info("wrote %s", out)
    return spec


def finetune_trees(
    source: ModelSpec,
    graphs: Sequence[str],
    data: Any,
    evaluation: Any,
    out: Path,
    threads: int = 1,
) -> tuple[Any, dict[str, Any]]:
    """Fine-tuning a model with trees (``mofsieve train --init-from``): the trees are grown
    again on the new training labels with the source's parameters, rounds, seeds and blend
    weight, and blended with the fine-tuned graph network. Returns ``evaluation``
    (:class:`mofsieve.evaluation.Evaluation` of the graph network) blended, its old metrics
    under ``graph_network``, and the ``booster`` entry of the new ``model.json``; the trees are
    written into ``out``."""
    from dataclasses import replace

    booster = source.booster
    if booster is None:
        raise ValueError(f"{source.directory} has no trees to grow again")
    parts = {"train": list(data.train_ids), "val": list(data.ids["val"]), "test": list(data.ids["test"])}  # fmt: skip
    features = features_of_ids(source, graphs, set().union(*parts.values()))
    lacking = [m for ids in parts.values() for m in ids if m not in features]
    if lacking:  # the graph network was given these graphs: the same shards hold them
        raise ValueError(f"{len(lacking)} MOFs of the split have no graph in {list(graphs)}, e.g. {lacking[:3]}")  # fmt: skip

    seeds = len(booster.files)
    train = _matrix(features, parts["train"])
    boosters, _, _ = fit_trees(train, data.y("train"), booster.params, seeds, booster.rounds, threads)  # fmt: skip
    tree_mean = {p: mean_of_trees(boosters, _matrix(features, parts[p])) for p in ("val", "test")}
    clip_min = source.target.clip_min
    val = blend(evaluation.val_mean, evaluation.val_spread, tree_mean["val"], booster.weight, clip_min)  # fmt: skip
    test = blend(evaluation.test_mean, evaluation.test_spread, tree_mean["test"], booster.weight, clip_min)  # fmt: skip
    old = evaluation.metrics
    y = {"val": data.y("val"), "test": data.y("test")}
    metrics = _blend_metrics(old, y, {"val": val[0], "test": test[0]}, tree_mean)
    metrics.setdefault("test", None)  # as the graph network's evaluation has it, without test MOFs
    log.info("trees grown again on %d training MOFs (%d rounds, %d seeds, weight %.2f): "
             "validation MAE %.4f (graph network alone %.4f)", len(parts["train"]), booster.rounds,
             seeds, booster.weight, metrics["val"]["mae"], old["val"]["mae"])  # fmt: skip
    names, digests = write_trees(out, boosters)
    details = {
        **{k: v for k, v in booster.details.items() if k not in ("cv_mae_train", "n_train")},
        "library": f"lightgbm {_lightgbm_version()}",
        "cv_mae_train": None,
        "n_train": len(parts["train"]),
        "grown_again_from": str(source.directory),
    }
    entry = BoosterSpec(names, digests, booster.weight, booster.elements, booster.rounds,
                        dict(booster.params), details).to_json()  # fmt: skip
    blended = replace(evaluation, metrics=metrics, val_mean=val[0], val_spread=val[1],
                      test_mean=test[0], test_spread=test[1])  # fmt: skip
    return blended, entry
