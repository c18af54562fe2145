"""The model card (``MODEL_CARD.md``) and parity plot of a trained model directory.

Both are written from what ``model.json`` records (:class:`mofsieve.modeldir.ModelSpec`), so
a card can be rewritten from any model directory without retraining.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from mofsieve.atomic import atomic_output
from mofsieve.modeldir import ModelSpec


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


_DISPLAY_NAME = {"AECGCNN": "AE-CGCNN"}


def _ocrystalnet_sentence(init: dict[str, Any], variant: str) -> str:
    return (
        f"Variant `{variant}` (OCrystalNet): atom input {init['atom_input']}; "
        f"{init['num_layers']} communicative atom–bond message-passing layers of width "
        f"{init['hidden']}; {init['readout']} readout; MLP with {init['mlp_hidden']} hidden "
        f"units. Partial charges: {'used when the CIF has them' if init['use_charge'] else 'not used'}"
        f". Cell descriptors: {'yes' if init['use_cell'] else 'no'}. Shard global descriptors: "
        f"{', '.join(init['global_features']) or 'none'}."
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


def write_model_card(path: Path, spec: ModelSpec) -> None:
    """Write ``MODEL_CARD.md`` (atomically) from the model directory's ``model.json``."""
    meta = spec.metadata
    t = meta["target"]
    c = t["conditions"]
    tr = meta["training"]
    m = meta["metrics"]["test"]
    v = meta["metrics"]["val"]
    init = meta["init"]
    members = meta["metrics"]["test_members"]
    nq = meta["metrics"].get("test_without_charges")
    spe = tr.get("seconds_per_epoch_mean")
    lines = [
        f"# Model card: {meta['variant']} surrogate for `{t['name']}`",
        "",
        f"Predicts {c.get('gas')} uptake at {c.get('temperature_K')} K and {c.get('pressure_bar')} bar "
        f"in {t['unit']} (pure gas, rigid framework, as the GCMC labels were computed) from a MOF's "
        "crystal graph. An ensemble of "
        f"{len(meta['weights'])} {_DISPLAY_NAME.get(spec.architecture, spec.architecture)} "
        "members; `uncertainty` is their standard "
        "deviation.",
        "",
        "## Intended use",
        "Ranking large sets of MOF CIFs to pick candidates for GCMC; not a replacement for it. "
        "Outside the chemistry of CoRE MOF 2019 (e.g. hypothetical or flexible frameworks) "
        "predictions are extrapolations.",
        "",
        "## Test metrics (held-out split, never used for training or model selection)",
        "",
        "| set | n | MAE (mol/kg) | RMSE | R² | Spearman | top-10 % recall |",
        "|---|---|---|---|---|---|---|",
        f"| test, ensemble | {m['n']} | {m['mae']:.3f} | {m['rmse']:.3f} | {m['r2']:.3f} | "
        f"{m['spearman']:.3f} | {m['top10_recall']:.3f} |",
        *[
            f"| test, member {k} | {mm['n']} | {mm['mae']:.3f} | {mm['rmse']:.3f} | {mm['r2']:.3f} | "
            f"{mm['spearman']:.3f} | {mm['top10_recall']:.3f} |"
            for k, mm in enumerate(members)
        ],
        *(
            [
                f"| test, ensemble, charges hidden | {nq['n']} | {nq['mae']:.3f} | {nq['rmse']:.3f} | "
                f"{nq['r2']:.3f} | {nq['spearman']:.3f} | {nq['top10_recall']:.3f} |"
            ]
            if nq
            else []
        ),
        f"| validation, ensemble | {v['n']} | {v['mae']:.3f} | {v['rmse']:.3f} | {v['r2']:.3f} | "
        f"{v['spearman']:.3f} | {v['top10_recall']:.3f} |",
        "",
        "Parity plot of the test split: `parity.png`. Test predictions: `test_predictions.csv`. "
        "The row with charges hidden is the same test split predicted as if the CIFs had no "
        "`_atom_site_charge` (NaN charges), which is what CIFs from the `core-mof` package look like.",
        "",
        "## Architecture",
        "",
        architecture_sentence(init, meta["variant"]),
        "",
        "Implementation notes: every layer computes `W·(v_i ⊕ v_j ⊕ e)` as `W_i v_i + W_j v_j + "
        "W_e e` (node terms once per atom); attention heads share the message projection and "
        "differ in their scores, so a layer aggregates once however many heads it has; in the "
        "head-attention layer the softmax over heads is computed from each atom's features. The "
        "Gaussian expansion of distances (0–8 Å, step 0.2 Å) runs inside the model.",
        "",
        "## Training",
        "",
        f"- Labels: `{Path(tr['labels']).name}` (sha1 {tr['labels_sha1'][:12]}), column `{t['name']}`; "
        f"{tr['n_labelled_with_graph']} labelled MOFs with a graph "
        f"({tr['n_labelled_without_graph']} labelled MOFs could not be featurized).",
        f"- Split: 80/10/10 by seed {tr['split']['seed']}: {tr['split']['n_train']} train, "
        f"{tr['split']['n_val']} validation, {tr['split']['n_test']} test (`split.csv`).",
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
        f"{tr['optimizer']['weight_decay']}, MSE on the standardised target (mean {meta['normalisation']['mean']:.4f}, "
        f"std {meta['normalisation']['std']:.4f} mol/kg), batches of at most {tr['batch_atoms']} atoms.",
        f"- Epoch budget {tr['epochs']} per member"
        + (
            f" and a time budget of {tr['time_budget_min_per_member']:g} min per member (the cosine "
            "schedule follows whichever runs out first)"
            if tr.get("time_budget_min_per_member")
            else ""
        )
        + f"; epochs run {tr['epochs_run']}; best (validation MAE) epochs {tr['best_epochs']} "
        "(epochs counted from 0).",
        *(
            [
                f"- Warm restarts: training was resumed with a longer budget after the schedule had "
                f"decayed, so the learning rate rose again at epochs {tr['lr_restarts']} per member."
            ]
            if any(tr.get("lr_restarts") or [])
            else []
        ),
        f"- Measured: {spe:.0f} s per epoch (training + validation) on {tr['threads']} CPU threads ({tr['device']})."
        if spe
        else "- Seconds per epoch: not measured.",
        f"- Predictions are clipped at {t['clip_min']} mol/kg (uptake cannot be negative)."
        if t.get("clip_min") is not None
        else "",
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
