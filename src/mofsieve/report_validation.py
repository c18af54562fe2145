"""Two sections of ``report.html``: the GCMC validation of the top picks, and the attention
by element over the flagged MOFs.

**Validation** (from ``mofsieve validate gather``'s ``validation.csv`` and
``validation.json``): the metrics (MAE, mean error, Spearman, hit rate against the flag
threshold), a parity plot of simulated against predicted with both error bars (the
simulation's 95 % confidence half-width, the surrogate's uncertainty), and one row per
picked MOF with its charge method, or why it was not simulated. Without validation files
the section is one line saying the step is off.

**Attention by element** (the AE-CGCNN paper's analysis of what its attention pooling looks
at): for each element, over the flagged MOFs that hold it (the best
:data:`ELEMENT_STATISTICS_TOP`), the mean over its atoms of attention weight × the MOF's
atom count, averaged over those MOFs. A MOF's weights sum to 1, so 1.0 is the weight every
atom would get under uniform pooling, and an element above 1 draws more than its share.
"""

from __future__ import annotations

import html
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mofsieve.report_html import html_table, png_uri, pyplot
from mofsieve.validate import PREDICTED_UNCERTAINTY, SIMULATED_ERROR, read_validation

if TYPE_CHECKING:
    from mofsieve.report import TopStructures

ELEMENT_STATISTICS_TOP = 500  # flagged MOFs read for the statistics (all of a small screen)
PARITY_LABELS = 15  # parity points labelled with their MOF id up to this many MOFs


# ---------------------------------------------------------------------------------------------
# validation


def _number(value: object, digits: int = 3) -> str:
    if value is None or value == "":
        return "—"
    return f"{float(value):.{digits}g}"  # type: ignore[arg-type]


def _floats(rows: Sequence[dict[str, str]], column: str) -> np.ndarray:
    return np.array([float(r[column]) for r in rows], dtype=np.float64)


def parity_figure(
    rows: Sequence[dict[str, str]], threshold: float | None, quantity: str, unit: str
) -> str:
    """Predicted against simulated, both error bars, coloured by charge method."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 5.2))
    simulated, predicted = _floats(rows, "simulated"), _floats(rows, "predicted")
    for i, method in enumerate(sorted({r["charge_method"] for r in rows})):
        mine = [r for r in rows if r["charge_method"] == method]
        ax.errorbar(
            _floats(mine, "simulated"),
            _floats(mine, "predicted"),
            xerr=_floats(mine, "simulated_error"),
            yerr=_floats(mine, "uncertainty"),
            fmt="o",
            color=f"C{i}",
            ecolor=f"C{i}",
            elinewidth=1,
            capsize=3,
            label=f"charges: {method or 'unknown'}",
        )
    sim_error, uncertainty = _floats(rows, "simulated_error"), _floats(rows, "uncertainty")
    ends = np.concatenate([simulated - sim_error, simulated + sim_error,
                           predicted - uncertainty, predicted + uncertainty])  # fmt: skip
    low = float(min(ends.min(), threshold if threshold is not None else math.inf))
    high = float(ends.max())
    pad = 0.08 * max(high - low, 0.1)
    span = (low - pad, high + pad)
    ax.plot(span, span, color="0.5", lw=1, ls=":", label="simulated = predicted")
    if threshold is not None:
        ax.axvline(
            threshold,
            color="#c44e52",
            lw=1.2,
            ls="--",
            label=f"flag threshold {threshold:.3g} (hits to its right)",
        )
    if len(rows) <= PARITY_LABELS:
        for r, x, y in zip(rows, simulated, predicted, strict=True):
            ax.annotate(r["mof_id"], (x, y), fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.set_xlim(span)
    ax.set_ylim(span)
    ax.set_aspect("equal")
    ax.set_xlabel(f"simulated {quantity} ({unit})")
    ax.set_ylabel(f"predicted ({unit})")
    ax.legend(loc="best", fontsize=8, framealpha=0.8)
    return png_uri(fig)


def _metrics_table(summary: dict[str, Any]) -> str:
    unit = summary["unit"]
    n, hits, threshold = summary["n_simulated"], summary["hits"], summary["flag_threshold"]
    if summary["hit_rate"] is None:
        hit = "—"
    else:
        hit = f"{hits} of {n} ({100 * summary['hit_rate']:.0f} %) at or above {_number(threshold, 4)} {unit}"
    protocols = "; ".join(
        f"{p['init_cycles']} + {p['cycles']} cycles, seed {p['seed']}, {p['temperature_K']} K"
        for p in summary["protocols"]
    )
    methods = ", ".join(f"{m or 'unknown'} {k}" for m, k in summary["charge_methods"].items())
    rows = [
        ("compared", summary["quantity"]),
        ("MOFs picked", summary["n_picked"]),
        ("simulated", n),
        ("not simulated", summary["n_failed"]),
        (f"MAE ({unit})", _number(summary["mae"])),
        (f"mean error, predicted − simulated ({unit})", _number(summary["mean_error"])),
        ("Spearman (predicted vs simulated)", _number(summary["spearman"])),
        ("hit rate (simulated ≥ flag threshold)", hit),
        ("GCMC protocol (initialization + production)", protocols or "—"),
        ("charge methods", methods or "—"),
    ]
    return html_table(None, rows)


def _mof_table(rows: Sequence[dict[str, str]]) -> str:
    def plus_minus(value: str, error: str) -> str:
        return "—" if not value else f"{float(value):.3f} ± {float(error):.3f}"

    header = ["rank", "mof_id", "predicted ± uncertainty", "simulated ± error",
              "predicted rank", "simulated rank", "hit", "charge method", "status"]  # fmt: skip
    body = [
        [
            r["rank"],
            r["mof_id"],
            plus_minus(r["predicted"], r["uncertainty"]),
            plus_minus(r["simulated"], r["simulated_error"]),
            r["predicted_rank"] or "—",
            r["simulated_rank"] or "—",
            r["hit"] or "—",
            r["charge_method"] or "—",
            r["status"] if not r["reason"] else f"{r['status']}: {r['reason']}",
        ]  # fmt: skip
        for r in rows
    ]
    return html_table(header, body)


def validation_section(
    validation_csv: Path | None, validation_json: Path | None, quantity: str
) -> str:
    """The section's HTML; a one-line note when the step is off (no files given)."""
    if validation_csv is None or validation_json is None:
        return (
            "<p class='muted'>GCMC validation is off (<code>gcmc.simulate.top: 0</code>): "
            "no MOF was simulated.</p>"
        )
    rows, summary = read_validation(validation_csv, validation_json)
    simulated = [r for r in rows if r["status"] == "ok"]
    parts = [
        f"<p>The {summary['n_picked']} best flagged MOFs, simulated by GCMC "
        "(<code>mofsieve simulate</code>: RASPA3, UFF + TraPPE CO2) and compared with the "
        f"predictions of {html.escape(quantity)}. Error bars: simulated, "
        f"{html.escape(SIMULATED_ERROR)}; predicted, {html.escape(PREDICTED_UNCERTAINTY)}. "
        "Details: <code>validation.csv</code>, <code>validation.json</code>.</p>",
        _metrics_table(summary),
    ]
    if simulated:
        uri = parity_figure(
            simulated, summary["flag_threshold"], summary["quantity"], summary["unit"]
        )
        parts.append(f"<p><img alt='simulated vs predicted' src='{uri}'></p>")
    else:
        parts.append("<p class='muted'>No picked MOF was simulated: no parity plot.</p>")
    parts.append(_mof_table(rows))
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------
# attention by element


@dataclass(frozen=True)
class ElementAttention:
    """One element's attention over the MOFs that hold it."""

    symbol: str
    n_mofs: int
    n_atoms: int
    mean: float  # over the MOFs, of the mean over the element's atoms of weight × n_atoms
    std: float  # over the MOFs


def element_attention(
    mof_ids: Sequence[str], atoms: dict[str, tuple], weights: dict[str, np.ndarray]
) -> list[ElementAttention]:
    """Statistics per element over those of ``mof_ids`` with weights, most attended first."""
    from ase.data import chemical_symbols

    per_mof: dict[int, list[float]] = {}
    n_atoms: Counter[int] = Counter()
    for mof_id in mof_ids:
        if mof_id not in weights:
            continue
        z = np.asarray(atoms[mof_id][0], dtype=np.int64)
        relative = np.asarray(weights[mof_id], dtype=np.float64) * len(z)  # 1 = uniform
        for element in np.unique(z):
            mask = z == element
            per_mof.setdefault(int(element), []).append(float(relative[mask].mean()))
            n_atoms[int(element)] += int(mask.sum())
    stats = [
        ElementAttention(
            chemical_symbols[z],
            len(values),
            n_atoms[z],
            float(np.mean(values)),
            float(np.std(values)),
        )
        for z, values in per_mof.items()
    ]
    return sorted(stats, key=lambda s: (-s.mean, s.symbol))


def element_figure(stats: Sequence[ElementAttention]) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(min(11.0, max(4.0, 0.3 * len(stats) + 1.5)), 3.4))
    x = np.arange(len(stats))
    ax.bar(x, [s.mean for s in stats], yerr=[s.std for s in stats], color="#4c72b0", capsize=2)
    ax.axhline(1.0, color="0.4", lw=1, ls="--", label="uniform weight")
    ax.set_xticks(x, [s.symbol for s in stats])
    ax.set_ylabel("attention × n_atoms")
    ax.legend(loc="upper right", fontsize=8)
    return png_uri(fig)


def element_attention_section(mof_ids: Sequence[str], top: TopStructures | None) -> str:
    if not mof_ids:
        return "<p class='muted'>No MOF was flagged: no attention statistics.</p>"
    if top is None:
        return "<p class='muted'>No graph shards given: no attention statistics.</p>"
    used = [m for m in mof_ids if m in top.weights]
    if not used:
        reasons = sorted({top.captions[m] for m in mof_ids if m in top.captions})
        why = "; ".join(reasons) or "the graph shards of the flagged MOFs were not found"
        return f"<p class='muted'>No learned attention weights ({html.escape(why)}): no statistics by element.</p>"
    stats = element_attention(used, top.atoms, top.weights)
    rows = [[s.symbol, s.n_mofs, s.n_atoms, f"{s.mean:.3f}", f"{s.std:.3f}"] for s in stats]
    header = ["element", "MOFs with it", "atoms", "mean attention × n_atoms", "spread over MOFs"]
    return (
        f"<p>Over the {len(used)} best flagged MOFs: for each element, the mean over its atoms of "
        "the attention weight × the MOF's atom count, averaged over the MOFs that hold it "
        "(1.0 = the weight of every atom under uniform pooling; spread = standard deviation "
        "over those MOFs).</p>"
        f"<p><img alt='attention by element' src='{element_figure(stats)}'></p>"
        + html_table(header, rows)
    )
