"""The model card (``MODEL_CARD.md``), parity plot and reliability plot of a model directory.

All are written from what ``model.json`` records (:class:`mofsieve.modeldir.ModelSpec`), so
a card can be rewritten from any model directory without retraining. A multi-target model's
card gives each target its own test metrics and uncertainty section (its plots are
``parity-<target>.png`` and ``reliability-<target>.png``, :func:`target_file_stem`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from mofsieve.atomic import atomic_output
from mofsieve.modeldir import Calibration, ModelSpec

# Every card's section on use, then the heading of its test metrics.
_INTENDED_USE = (
    "## Intended use",
    "Ranking large sets of MOF CIFs to pick candidates for GCMC; not a replacement for it. "
    "Outside the chemistry of CoRE MOF 2019 (e.g. hypothetical or flexible frameworks) "
    "predictions are extrapolations.",
    "",
    "## Test metrics (held-out split, never used for training or model selection)",
)


def target_file_stem(name: str) -> str:
    """A target's name as it appears in the file names of its plots (``parity-<stem>.png``)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def citation_text(labels: Path, data_citation: Path | None = None) -> str | None:
    """The "Origin, licence, citation" section of the data's SOURCE.md (or all of it), given
    explicitly or found beside the labels file."""
    source = data_citation or (labels.parent / "SOURCE.md")
    if not source.is_file():
        return None
    text = source.read_text()
    match = re.search(r"^## Origin, licence, citation\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    return (match.group(1) if match else text).strip()


def parity_plot(
    path: Path, y_true: np.ndarray, y_pred: np.ndarray, target: str, metrics: dict[str, float]
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=120)
    hi = float(max(np.max(y_true), np.max(y_pred))) * 1.05
    ax.plot([0, hi], [0, hi], color="0.6", lw=1)
    ax.scatter(y_true, y_pred, s=5, alpha=0.5, edgecolors="none")
    ax.set_xlim(0, hi)
    ax.set_ylim(0, hi)
    ax.set_xlabel("GCMC uptake (mol/kg)")
    ax.set_ylabel("predicted uptake (mol/kg)")
    ax.set_title(target, fontsize=8)
    ax.text(
        0.04,
        0.96,
        f"test n={metrics['n']}\nMAE {metrics['mae']:.3f}\nSpearman {metrics['spearman']:.3f}"
        f"\nR² {metrics['r2']:.3f}",
        transform=ax.transAxes,
        va="top",
        fontsize=8,
    )
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def reliability_plot(path: Path, calibration: Calibration) -> None:
    """Observed against nominal coverage of the central intervals prediction ± z·σ (10–90 %),
    on the validation split (where σ was fitted) and the test split."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = calibration.details["reliability"]
    nominal = np.array(curves["nominal"]) * 100
    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=120)
    ax.plot([0, 100], [0, 100], color="0.6", lw=1, label="ideal")
    ax.axhspan(88, 92, xmin=0.85, xmax=0.95, color="0.85", zorder=0, label="88–92 % at 90 %")
    ax.plot(nominal, np.array(curves["validation"]) * 100, "o-", ms=4,
            label=f"validation (fitted, n={calibration.n_validation})")  # fmt: skip
    if curves.get("test") is not None:
        ax.plot(nominal, np.array(curves["test"]) * 100, "s-", ms=4,
                label=f"test (n={calibration.n_test})")  # fmt: skip
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.set_xlabel("nominal coverage of prediction ± z·σ (%)")
    ax.set_ylabel("observed coverage (%)")
    ax.set_title(f"calibration: {calibration.method}", fontsize=8)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 360 else f"{seconds / 60:.0f} min"


def _seconds(value: float) -> str:
    """Whole seconds, or two significant digits under 10 s (a head epoch takes hundredths)."""
    return f"{value:.0f}" if value >= 10 else f"{value:.2g}"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def uncertainty_section(spec: ModelSpec, of: str = "", plot: str = "reliability.png") -> list[str]:
    """The card's lines on what ``uncertainty`` is: the calibration, or that there is none
    (``of``: words after the heading, e.g. a multi-target model's target; ``plot``: the
    reliability plot's file)."""
    members = len(spec.weights)
    whose = f"{members} members'"
    if spec.booster is not None:
        whose = f"{members} graph-network members' and the trees' (weighted as blended)"
    cal = spec.calibration
    if cal is None:
        return [
            f"## Uncertainty{of} (not calibrated)",
            "",
            f"`uncertainty` is the standard deviation of the {whose} predictions. It "
            "says where they disagree but is not a standard deviation of the error (it has no "
            "coverage). `mofsieve calibrate MODEL_DIR --graphs SHARDS --labels CSV` fits one on "
            "the validation split.",
            "",
        ]
    rel = cal.details.get("reliability", {})
    cv = cal.details.get("selection", {}).get("cross_validation", {})
    nominal = rel.get("nominal", [])
    lines = [
        f"## Uncertainty{of} (calibrated on the validation split)",
        "",
        "`uncertainty` in `mofsieve predict`'s output is σ, a standard deviation of the error in "
        f"{spec.target.unit}: **σ = {cal.formula()}**, where spread is the standard deviation of "
        f"the {whose} predictions. Form `{cal.method}`, fitted on the "
        f"{cal.n_validation} validation MOFs: maximum Gaussian likelihood, then one factor so that "
        "prediction ± 1.645 σ holds 90 % of them. "
        + (
            "The form was chosen among those below by the lowest Gaussian negative log-likelihood "
            "(NLL) in a 5-fold cross-validation within the validation split; the test split took "
            "no part in any choice."
            if cal.details.get("selection", {}).get("by", "").startswith("lowest")
            else "The form was given (`--method`)."
        ),
        "",
    ]
    if cv:
        lines += [
            "| form | cross-validated NLL | cross-validated 90 % coverage |",
            "|---|---|---|",
            *[
                f"| `{name}`{' (chosen)' if name == cal.method else ''} | {s['nll']:.3f} | "
                f"{_percent(s['coverage_90'])} |"
                for name, s in cv.items()
            ],
            "",
        ]
    lines += [
        f"90 % interval (±1.645 σ) coverage: validation {_percent(cal.coverage_90_validation)} "
        f"(n={cal.n_validation}, fitted there), **test {_percent(cal.coverage_90_test)}** "
        f"(n={cal.n_test}). Coverage of central intervals at other levels (`{plot}`):",
        "",
    ]
    if nominal:
        lines += [
            "| nominal | " + " | ".join(f"{100 * q:.0f} %" for q in nominal) + " |",
            "|---" * (len(nominal) + 1) + "|",
            "| validation | " + " | ".join(f"{100 * c:.1f}" for c in rel["validation"]) + " |",
        ]
        if rel.get("test") is not None:
            lines.append("| test | " + " | ".join(f"{100 * c:.1f}" for c in rel["test"]) + " |")
        lines.append("")
        middle = nominal.index(0.5) if 0.5 in nominal else None
        if middle is not None and rel["validation"][middle] - 0.5 > 0.05:
            lines += [
                "Narrower intervals hold more than their nominal share: the errors have heavier "
                "tails than a Gaussian, so a σ that is right for the 90 % interval is too wide "
                "for the 50 % one. Use σ for 90 % intervals (±1.645 σ), which it was fitted for.",
                "",
            ]
    dominates = cal.details.get("spread_dominates_validation")
    rho = cal.details.get("spearman_abs_error_spread_validation")
    tr = spec.metadata.get("training", {})
    spe, runs = tr.get("seconds_per_epoch_mean"), tr.get("epochs_run") or []
    member_s = spe * sum(runs) / len(runs) if spe and runs else None
    cost = (
        f" Each member's training took {_duration(member_s)} on {tr.get('threads')} CPU "
        "thread(s)" + (" (this fine-tuning only)" if tr.get("init_from") else "") + "."
        if member_s
        else ""
    )
    if cal.method != "scale" and dominates is not None:
        lines += [
            (
                f"Why a calibrated spread of {members} members and the trees: {members + 1} values "
                if spec.booster is not None
                else f"Why a calibrated spread of {members} members: {members} values "
            )
            + "give a very uncertain spread (members can agree by chance where the error is large), so σ has a floor"
            + (" and a term that grows with the prediction" if cal.relative else "")
            + f" for what the spread misses. The spread term is the larger one for "
            f"{_percent(dominates)} of validation MOFs"
            + (
                f"; the rank correlation of |error| with the spread there is {rho:.2f}"
                if rho is not None
                else ""
            )
            + f".{cost} More members would make the spread itself more informative; the "
            "calibration is refitted by `mofsieve calibrate` whenever the model changes.",
            "",
        ]
    lines += [
        "`test_predictions.csv` keeps the raw spread as written at training (`uncertainty` "
        "column there); σ follows from it with the formula above.",
        "",
    ]
    return lines


def _source_training_text(before: dict[str, Any] | None) -> str:
    """A source model's training (``init_from.source_training``) in a few words, or ""."""
    if not before or not before.get("epochs_run"):
        return ""
    cap = before.get("max_atoms_train")
    return (
        f"epochs run {before['epochs_run']} (best {before['best_epochs']}), "
        f"{before.get('seconds_per_epoch_mean') or 0:.3g} s per epoch on "
        f"{before.get('threads')} {before.get('device')} thread(s)"
        + (
            f", crystals of more than {cap} atoms left out of its training "
            f"({before.get('n_train_over_atom_cap')})"
            if cap
            else ""
        )
    )


def _finetune_lines(tr: dict[str, Any]) -> list[str]:
    """The card's lines on a warm start (``mofsieve train --init-from``), if this was one."""
    src = tr.get("init_from")
    if not src:
        return []
    lines = [
        f"- Fine-tuned (warm start) from `{src['path']}` (its model.json sha1 "
        f"{src['model_json_sha1'][:12]}): every member starts from that model's member of the "
        "same index; architecture, featurization and target normalisation are that model's"
        + (" (for its targets)" if src.get("added_targets") else "")
        + ". "
        f"{src.get('n_new_train', 0)} labelled MOFs outside its split were added to training; "
        "its validation and test splits are kept, so the test rows compare with it.",
    ]
    if src.get("added_global_features"):
        lines.append(
            "- New descriptors: the MLP head also reads "
            + ", ".join(f"`{n}`" for n in src["added_global_features"])
            + " (their input weights started at zero, so training started from the source's "
            "predictions)"
            + (
                "; only the head was trained, the graph layers are the source's, frozen."
                if tr.get("train_only") == "head"
                else "."
            )
        )
    if src.get("added_targets"):
        lines.append(
            "- New targets: "
            + ", ".join(f"`{n}`" for n in src["added_targets"])
            + " (the source predicts "
            + ", ".join(f"`{n}`" for n in src.get("targets") or [src.get("target")])
            + "). The MLP head started anew (seeded) on the source's graph trunk, and each new "
            "target is standardised on this run's training labels"
            + (
                "; only the head was trained, the graph layers are the source's, frozen."
                if tr.get("train_only") == "head"
                else "."
            )
        )
    own = _source_training_text(src.get("source_training"))
    if own:
        lines.append(f"- The source's own training: {own}.")
    chain = src.get("source_init_from")
    while chain:  # the source was fine-tuned itself: say from what, back to the first
        added = chain.get("added_global_features")
        before = _source_training_text(chain.get("source_training"))
        lines.append(
            f"- `{src['path']}` was itself fine-tuned from `{chain['path']}` (model.json sha1 "
            f"{chain['model_json_sha1'][:12]})"
            + (f", its head given {len(added)} new descriptors" if added else "")
            + (f"; that model's training: {before}" if before else "")
            + "."
        )
        src, chain = chain, chain.get("source_init_from")
    sources = tr.get("label_sources")
    if sources and sources.get("simulated"):
        sim = sources["simulated"]
        lines.append(
            f"- Labels merged from `{Path(sources['original']['path']).name}` (sha1 "
            f"{sources['original']['sha1'][:12]}) and the simulated uptakes of "
            f"`{Path(sim['path']).name}` (sha1 {sim['sha1'][:12]}, column `{sim['column']}`): "
            f"{sim['n_used']} simulated values, {sim['n_replacing']} of them replacing a label "
            "(those in training are always trained on; those in the validation or test split "
            "stay there, with the simulated value)."
        )
    return lines


_DISPLAY_NAME = {"AECGCNN": "AE-CGCNN"}


def _charges_hidden_note(spec: ModelSpec) -> str:
    """What the card's "charges hidden" row stands for, by where featurization takes charges."""
    if spec.featurization.charges == "cif_or_model":
        return (
            "The row with charges hidden is the same test split predicted with no partial "
            "charges at all (NaN charges, and NaN for the descriptors made from them): the "
            "fallback for a CIF without `_atom_site_charge` that the charge model cannot charge "
            "either (an element it never saw). Other CIFs without charges, e.g. those of the "
            "`core-mof` package, get the charge model's at featurization."
        )
    return (
        "The row with charges hidden is the same test split predicted as if the CIFs had no "
        "`_atom_site_charge` (NaN charges), which is what CIFs from the `core-mof` package look "
        "like."
    )


def _ocrystalnet_sentence(init: dict[str, Any], variant: str) -> str:
    return (
        f"Variant `{variant}` (OCrystalNet): atom input {init['atom_input']}; "
        f"{init['num_layers']} communicative atom–bond message-passing layers of width "
        f"{init['hidden']}; {init['readout']} readout; MLP with {init['mlp_hidden']} hidden "
        f"units. Partial charges: {'used when the CIF has them' if init['use_charge'] else 'not used'}"
        f". Cell descriptors: {'yes' if init['use_cell'] else 'no'}. Shard global descriptors: "
        f"{', '.join(init['global_features']) or 'none'}."
    )


def implementation_notes(init: dict[str, Any]) -> str:
    """How the architecture is computed, in a sentence or two for the card."""
    stop, step = init.get("rbf_stop", 8.0), init.get("rbf_step", 0.2)
    rbf = f"The Gaussian expansion of distances (0–{stop:g} Å, step {step:g} Å) runs inside the model."
    if "atom_input" in init:
        return (
            "Implementation notes: the shard stores each atom's 32 Voronoi-weighted neighbour "
            "orbital sums s(c); the orbital field matrix o(c) ⊗ s(c) is formed on the device. "
            "Every directed edge reads its reverse through the shard's `edge_reverse` (the "
            "12-nearest-neighbour graph made symmetric by union). " + rbf
        )
    return (
        "Implementation notes: every layer computes `W·(v_i ⊕ v_j ⊕ e)` as `W_i v_i + W_j v_j + "
        "W_e e` (node terms once per atom); attention heads share the message projection and "
        "differ in their scores, so a layer aggregates once however many heads it has; in the "
        "head-attention layer the softmax over heads is computed from each atom's features. " + rbf
    )


def architecture_sentence(init: dict[str, Any], variant: str) -> str:
    if "atom_input" in init:
        return _ocrystalnet_sentence(init, variant)
    conv = "CGCNN convolution" if init["conv"] == "cgcnn" else "softmax neighbour attention"
    if init["heads"] > 1:
        how = "attention" if init["head_combine"] == "attention" else "averaging"
        conv += f" with {init['heads']} heads combined by {how}"
    if init["edge_update"]:
        conv += ", with edge convolution"
    if init["use_charge"]:
        charges = (
            "used when the CIF has them (hidden from "
            f"{init['charge_dropout']:.0%} of training crystals so that CIFs without charges work)"
        )
    else:
        charges = "not used"
    return (
        f"Variant `{variant}`: {init['num_layers']} layers of {conv}; atom features "
        f"{init['atom_dim']}; {init['readout']} readout; MLP with {init['mlp_hidden']} hidden units. "
        f"Partial charges: {charges}. Cell descriptors (lattice lengths/angles, volume per atom, "
        f"density): {'yes' if init['use_cell'] else 'no'}. Shard global descriptors: "
        f"{', '.join(init['global_features']) or 'none'}."
    )


def _metrics_rows(metrics: dict[str, Any]) -> list[str]:
    """The test-metrics table of one target (``metrics``: ``model.json``'s metrics of it).
    A model with boosted trees: its ensemble is the blend, and the graph network's and the
    trees' own figures follow (``graph_network``, ``trees``)."""

    def row(label: str, r: dict[str, Any]) -> str:
        return (
            f"| {label} | {r['n']} | {r['mae']:.3f} | {r['rmse']:.3f} | {r['r2']:.3f} | "
            f"{r['spearman']:.3f} | {r['top10_recall']:.3f} |"
        )

    graph = metrics.get("graph_network")
    trees = metrics.get("trees") or {}
    own = graph if graph is not None else metrics
    nq = own.get("test_without_charges")
    before = own.get("test_before_finetune")
    ensemble, member = (
        ("blend", "graph-network member") if graph is not None else ("ensemble", "member")
    )
    return [
        "| set | n | MAE (mol/kg) | RMSE | R² | Spearman | top-10 % recall |",
        "|---|---|---|---|---|---|---|",
        row(f"test, {ensemble}", metrics["test"]),
        *[row(f"test, {member} {k}", mm) for k, mm in enumerate(metrics["test_members"])],
        *([row("test, graph network alone", graph["test"])] if graph and "test" in graph else []),
        *([row("test, trees alone", trees["test"])] if "test" in trees else []),
        *(
            [row(f"test, {'graph network' if graph else 'ensemble'}, charges hidden", nq)]
            if nq
            else []
        ),
        *([row("test, the model it was fine-tuned from", before)] if before else []),
        row(f"validation, {ensemble}", metrics["val"]),
        *(
            [row("validation, graph network alone", graph["val"])]
            if graph and "val" in graph
            else []
        ),
        *([row("validation, trees alone", trees["val"])] if "val" in trees else []),
    ]


def _booster_lines(spec: ModelSpec) -> list[str]:
    """The card's section on the boosted trees blended into the model (none without)."""
    b = spec.booster
    if b is None:
        return []
    d = b.details
    n_globals = len(spec.featurization.global_feature_names)
    return [
        "## Boosted trees (blended)",
        "",
        f"The prediction is {1 - b.weight:.2f} × the graph ensemble + {b.weight:.2f} × the mean of "
        f"{len(b.files)} gradient-boosted tree models ({d.get('library', 'lightgbm')}, "
        f"`mofsieve boost`; weight: {d.get('weight_from', 'recorded')}). Their features: the "
        f"{n_globals} global features above, the atom fractions of {len(b.elements)} elements, "
        "the number of atoms, five partial-charge statistics and the mean neighbour distance. "
        f"{b.rounds} rounds "
        + (
            f"(5-fold cross-validation on the training split, MAE {d['cv_mae_train']:.4f}), "
            if d.get("cv_mae_train") is not None
            else "(given), "
        )
        + f"grown on {d.get('n_train', '?')} training MOFs with bagging seeds "
        f"0–{len(b.files) - 1}; parameters {dict(b.params)}. For the spread the trees count as "
        "one more member of that weight. Files: "
        + ", ".join(f"`{f}`" for f in b.files)
        + " (sha256 in `model.json`).",
        "",
    ]


def _multi_target_lines(spec: ModelSpec) -> list[str]:
    """A multi-target card's intro, metrics and uncertainty sections (one per target)."""
    meta = spec.metadata
    names = ", ".join(f"`{n}`" for n in spec.target_names)
    lines = [
        f"# Model card: {meta['variant']} multi-target surrogate for {names}",
        "",
        "Predicts, from one pass over a MOF's crystal graph, "
        + "; ".join(
            f"{t.gas} uptake at {t.temperature_K} K and {t.pressure_bar} bar (`{t.name}`)"
            for t in spec.targets
        )
        + f", in {spec.targets[0].unit} (pure gas, rigid framework, as the GCMC labels were "
        "computed). One output per target on a shared graph trunk and hidden layer; an ensemble "
        f"of {len(meta['weights'])} "
        f"{_DISPLAY_NAME.get(spec.architecture, spec.architecture)} members. `mofsieve predict "
        "--target NAME` writes one target's predictions; `uncertainty` is each target's "
        "calibrated standard deviation where its section below says so.",
        "",
        *_INTENDED_USE,
        "",
        "Each target on the MOFs of the split that have its label.",
        "",
    ]
    for name in spec.target_names:
        lines += [
            f"### `{name}`",
            "",
            *_metrics_rows(meta["metrics"][name]),
            "",
            f"Parity plot: `parity-{target_file_stem(name)}.png`.",
            "",
        ]
    lines += [
        "Test predictions: `test_predictions.csv` (one row per MOF and target). "
        + _charges_hidden_note(spec),
        "",
    ]
    for name in spec.target_names:
        lines += uncertainty_section(
            spec.select(name), of=f" of `{name}`", plot=f"reliability-{target_file_stem(name)}.png"
        )
    return lines


def _energy_revision_lines(spec: ModelSpec) -> list[str]:
    """The force-field descriptors' revision the model reads and, when its ``model.json`` was
    moved to a newer one without retraining (``revised``), what that move was checked on."""
    f = spec.featurization
    if not f.reads_energy_descriptors():
        return []

    def by_split(metrics: dict[str, dict[str, float]]) -> str:
        return "; ".join(
            f"{split} {m['mae']:.4f} / {m['spearman']:.4f} / {m['top10_recall']:.3f}"
            for split, m in metrics.items()
        )

    lines = ["", f"Force-field descriptors of revision {f.energy_revision}."]
    for r in spec.metadata.get("revised", []):
        checked, before = by_split(r["metrics"]), by_split(r["metrics_before"])
        lines.append(
            f"Trained on graphs of revision {r['energy_revision_from']}; moved to revision "
            f"{r['energy_revision_to']} without retraining ({r['why']}). The weights are "
            f"unchanged; on the same split's graphs of revision {r['energy_revision_to']} "
            f"(MAE / Spearman / top-10 % recall): {checked} (revision "
            f"{r['energy_revision_from']}: {before}). The metrics above are revision "
            f"{r['energy_revision_from']}'s."
        )
    return lines


def write_model_card(path: Path, spec: ModelSpec) -> None:
    """Write ``MODEL_CARD.md`` (atomically) from the model directory's ``model.json``."""
    meta = spec.metadata
    tr = meta["training"]
    init = meta["init"]
    spe = tr.get("seconds_per_epoch_mean")
    best_by = "validation MAE/std, mean over targets" if spec.is_multi_target else "validation MAE"
    # training.loss is worded by train.loss_description: "absolute" / "MAE" for --loss l1
    error = "MAE" if re.search(r"MAE|absolute", str(tr.get("loss", ""))) else "MSE"
    if spec.is_multi_target:
        head = _multi_target_lines(spec)
        columns = ", ".join(f"`{n}`" for n in spec.target_names)
        normalisation = "; ".join(
            f"`{t.name}` mean {m:.4f}, std {s:.4f} {t.unit}"
            for t, (m, s) in zip(spec.targets, spec.normalisations, strict=True)
        )
        loss = (
            f"{error} on each standardised target over the labelled entries only (a MOF with one "
            f"label trains that output and the shared layers) ({normalisation})"
        )
        clips = [f"`{t.name}` at {t.clip_min}" for t in spec.targets if t.clip_min is not None]
        clip_line = (
            f"- Predictions are clipped ({', '.join(clips)} mol/kg: uptake cannot be negative)."
            if clips
            else ""
        )
        per_target = tr.get("n_labelled_per_target") or {}
        labelled_line = (
            "- Labelled MOFs per target (train/validation/test): "
            + "; ".join(f"`{n}` {c['train']}/{c['val']}/{c['test']}" for n, c in per_target.items())
            + "; the split is one 80/10/10 permutation of every MOF with any label."
            if per_target
            else ""
        )
    else:
        t = meta["target"]
        c = t["conditions"]
        head = [
            f"# Model card: {meta['variant']} surrogate for `{t['name']}`",
            "",
            f"Predicts {c.get('gas')} uptake at {c.get('temperature_K')} K and "
            f"{c.get('pressure_bar')} bar "
            f"in {t['unit']} (pure gas, rigid framework, as the GCMC labels were computed) from a MOF's "
            "crystal graph. An ensemble of "
            f"{len(meta['weights'])} {_DISPLAY_NAME.get(spec.architecture, spec.architecture)} "
            + (
                "members blended with gradient-boosted trees (see Boosted trees)"
                if spec.booster
                else "members"
            )
            + "; `uncertainty` is "
            + (
                "a calibrated standard deviation (see Uncertainty)."
                if spec.calibration
                else "their standard deviation (not calibrated)."
            ),
            "",
            *_INTENDED_USE,
            "",
            *_metrics_rows(meta["metrics"]),
            "",
            "Parity plot of the test split: `parity.png`. Test predictions: `test_predictions.csv`. "
            + _charges_hidden_note(spec),
            "",
            *uncertainty_section(spec),
            *_booster_lines(spec),
        ]
        columns = f"`{t['name']}`"
        loss = (
            f"{error} on the standardised target (mean {meta['normalisation']['mean']:.4f}, "
            f"std {meta['normalisation']['std']:.4f} mol/kg)"
        )
        clip_line = (
            f"- Predictions are clipped at {t['clip_min']} mol/kg (uptake cannot be negative)."
            if t.get("clip_min") is not None
            else ""
        )
        labelled_line = ""
    lines = [
        *head,
        "## Architecture",
        "",
        architecture_sentence(init, meta["variant"]),
        "",
        implementation_notes(init),
        "",
        "## Training",
        "",
        f"- Labels: `{Path(tr['labels']).name}` (sha1 {tr['labels_sha1'][:12]}), "
        f"column{'s' if spec.is_multi_target else ''} {columns}; "
        f"{tr['n_labelled_with_graph']} labelled MOFs with a graph "
        f"({tr['n_labelled_without_graph']} labelled MOFs could not be featurized).",
        *([labelled_line] if labelled_line else []),
        *_finetune_lines(tr),
        (
            f"- Split: inherited from `{tr['split']['inherited_from']}` (its 80/10/10 split by "
            f"seed {tr['split']['seed']}), plus {tr['split']['n_new_train']} new MOFs in training: "
            if tr["split"].get("inherited_from")
            else f"- Split: 80/10/10 by seed {tr['split']['seed']}: "
        )
        + f"{tr['split']['n_train']} train, {tr['split']['n_val']} validation, "
        f"{tr['split']['n_test']} test (`split.csv`).",
        "- Cell-size cap for training only: "
        + (
            f"crystals with more than {tr['max_atoms_train']} atoms in the unit cell were left out of "
            f"training ({tr['n_train_over_atom_cap']} of the training split); validation and test keep every size."
            if tr.get("max_atoms_train")
            else "none."
        ),
        f"- Training crystals used: {tr['split']['n_train_used']}"
        + (
            f" (a {tr['train_fraction_used']:.0%} subsample)"
            if tr.get("train_fraction_used", 1) < 1
            else ""
        )
        + ".",
        f"- Adam, lr {tr['optimizer']['lr']} ({tr['optimizer']['schedule']} schedule), weight decay "
        f"{tr['optimizer']['weight_decay']}, {loss}, batches of at most {tr['batch_atoms']} atoms.",
        f"- Epoch budget {tr['epochs']} per member"
        + (
            f" and a time budget of {tr['time_budget_min_per_member']:g} min per member (the cosine "
            "schedule follows whichever runs out first)"
            if tr.get("time_budget_min_per_member")
            else ""
        )
        + f"; epochs run {tr['epochs_run']}; best ({best_by}) epochs {tr['best_epochs']} "
        "(epochs counted from 0).",
        *(
            [
                f"- Warm restarts: training was resumed with a longer budget after the schedule had "
                f"decayed, so the learning rate rose again at epochs {tr['lr_restarts']} per member."
            ]
            if any(tr.get("lr_restarts") or [])
            else []
        ),
        f"- Measured: {_seconds(spe)} s per epoch (training + validation) on {tr['threads']} CPU threads ({tr['device']})."
        if spe
        else "- Seconds per epoch: not measured.",
        clip_line,
        "",
        "## Featurization (graphs must match; `mofsieve predict` refuses others)",
        "",
        f"cutoff {meta['featurization']['cutoff']} Å, {meta['featurization']['max_neighbors']} nearest neighbours, "
        f"atom features `{meta['featurization']['atom_features']}`, global features "
        f"{meta['featurization']['global_feature_names'] or 'none'}"
        + (
            f", graph columns {meta['featurization']['columns']}."
            if meta["featurization"].get("columns")
            else "."
        ),
        *_energy_revision_lines(spec),
        "",
        "## Data and citations",
        "",
        meta.get("data_citation") or "(no data citation given)",
        "",
        "Model: Cong, G. et al., AE-CGCNN (attention-enhanced crystal graph CNN); "
        "Xie, T. & Grossman, J. C., Phys. Rev. Lett. 120, 145301 (2018) (CGCNN)."
        if spec.architecture == "AECGCNN"
        else "Model: Yang et al., OCrystalNet (orbital field matrix and JARVIS CFID atoms, "
        "communicative message passing); Pham, T. L. et al., Sci. Technol. Adv. Mater. 18, 756 "
        "(2017) (OFM); Song, Y. et al., IJCAI 2020 (CMPNN); Choudhary, K. et al., Phys. Rev. "
        "Mater. 2, 083801 (2018) (CFID, jarvis-tools, MIT licence).",
        "",
    ]
    with atomic_output(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
