"""One self-contained ``report.html`` of a screening run (no network needed to view it).

Sections: a summary (how many MOFs came in, were ranked, flagged, failed), the distribution of
predictions with the flag threshold, the top candidates as a table, one picture per top
candidate of its atoms coloured by the model's attention-pooling weight (the AE-CGCNN paper's
Fig. 3 idea: which atoms the readout listened to), the attention by element over the flagged
MOFs and the GCMC validation of the top picks (:mod:`mofsieve.report_validation`), the
structure checks by count (from ``ranked.csv``'s ``checks`` column: how many ranked MOFs
raised each, how many of those are flagged, how many the flagging passed over), and the
failures grouped by reason. Pictures are PNGs embedded as base64 ``data:`` URIs
(:mod:`mofsieve.report_html`); styles are inline.

Attention files (``--attention DIR``: ``attention-KKKKK.h5`` per shard) are read with
:func:`mofsieve.attention.read_attention`; a file it does not recognise stops the report with
a message naming it. Pictures are coloured by element only when no attention folder is given
or the model's readout has no learned weights (mean or sum pooling), and each caption says
so. Every structure picture's ``<img>`` carries ``data-colour="attention"`` or
``data-colour="element"``.
"""

from __future__ import annotations

import argparse
import csv
import html
import logging
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mofsieve.atomic import write_text_atomic
from mofsieve.attention import AttentionFormatError, has_learned_weights, read_attention
from mofsieve.failures import FailureFileError, read_failures
from mofsieve.manifest import InputError, read_manifest
from mofsieve.modeldir import Calibration, ModelDirError, read_model
from mofsieve.report_html import STYLE as _STYLE
from mofsieve.report_html import html_table as _table
from mofsieve.report_html import png_uri as _png
from mofsieve.report_validation import (
    ELEMENT_STATISTICS_TOP,
    element_attention_section,
    validation_section,
)
from mofsieve.validate import ValidateError
from mofsieve.warning_records import CHECKS

log = logging.getLogger(__name__)


@dataclass
class RankedTable:
    header: list[str]
    rows: list[dict[str, str]]

    @property
    def prediction_column(self) -> str:
        return next(c for c in self.header if c.startswith("prediction"))

    @property
    def uncertainty_column(self) -> str:
        return next(c for c in self.header if c.startswith("uncertainty"))

    @property
    def unit(self) -> str:
        return self.prediction_column.removeprefix("prediction_").replace("_per_", "/")


def read_csv(path: str | os.PathLike[str]) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        return list(reader.fieldnames or ()), rows


def read_ranked(path: str | os.PathLike[str]) -> RankedTable:
    header, rows = read_csv(path)
    if not any(c.startswith("prediction") for c in header) or "mof_id" not in header:
        raise ValueError(f"{path} is not a ranked.csv (columns {header})")
    return RankedTable(header, rows)


def distribution_figure(values: np.ndarray, threshold: float | None, quantity: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    bins = max(10, min(100, int(np.sqrt(max(len(values), 1)))))
    ax.hist(values, bins=bins, color="#4c72b0", alpha=0.85)
    if threshold is not None:
        ax.axvline(
            threshold, color="#c44e52", lw=2, ls="--", label=f"flag threshold {threshold:.3g}"
        )
        ax.legend(loc="upper right")
    ax.set_xlabel(quantity)
    ax.set_ylabel("number of MOFs")
    ax.set_yscale("log" if len(values) > 1000 else "linear")
    return _png(fig)


def structure_figure(
    mof_id: str,
    atomic_number: np.ndarray,
    cart: np.ndarray,
    lattice: np.ndarray,
    weights: np.ndarray | None,
) -> str:
    """Atoms projected on the plane of the two longest cell vectors, coloured by weight."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ase.data import covalent_radii

    a, b, c = np.asarray(lattice, dtype=np.float64)
    order = np.argsort([-np.linalg.norm(v) for v in (a, b, c)])
    u = (a, b, c)[order[0]]
    u = u / np.linalg.norm(u)
    v = (a, b, c)[order[1]]
    v = v - np.dot(v, u) * u
    v = v / np.linalg.norm(v)
    depth = np.cross(u, v)
    x, y, d = cart @ u, cart @ v, cart @ depth
    back_to_front = np.argsort(d)
    crowding = min(1.0, 150.0 / max(len(atomic_number), 1))  # big cells: smaller atoms
    sizes = 40.0 * crowding * (covalent_radii[atomic_number.astype(int)] / 0.76) ** 2
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    corners = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]], float)
    for shift in (np.zeros(3), np.array([0.0, 0.0, 1.0])):
        frame = (corners + shift) @ lattice
        ax.plot(frame @ u, frame @ v, color="0.6", lw=0.7)
    if weights is not None:
        if len(weights) != len(atomic_number):
            raise ValueError(f"{mof_id}: {len(weights)} weights for {len(atomic_number)} atoms")
        relative = np.asarray(weights, dtype=np.float64) * len(weights)  # 1 = uniform attention
        sc = ax.scatter(
            x[back_to_front],
            y[back_to_front],
            s=sizes[back_to_front],
            c=relative[back_to_front],
            cmap="viridis",
            edgecolors="k",
            linewidths=0.2,
        )
        fig.colorbar(sc, ax=ax, shrink=0.8, label="attention × n_atoms (1 = uniform)")
    else:
        from ase.data.colors import jmol_colors

        ax.scatter(
            x[back_to_front],
            y[back_to_front],
            s=sizes[back_to_front],
            c=jmol_colors[atomic_number.astype(int)][back_to_front],
            edgecolors="k",
            linewidths=0.2,
        )
    ax.set_aspect("equal")
    ax.set_title(mof_id, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return _png(fig)


# ---------------------------------------------------------------------------------------------
# finding a MOF's atoms and attention weights


def shard_of(manifest: Path) -> dict[str, int]:
    return {row.mof_id: row.shard for row in read_manifest(manifest)}


def in_folders(folders: Path | Sequence[Path], name: str) -> Path:
    """``name`` in the first of ``folders`` that holds it (the workflow's graphs and attention
    files are in one folder per job), else in the first folder: a path that does not exist."""
    folders = [folders] if isinstance(folders, Path) else list(folders)
    return next((f / name for f in folders if (f / name).is_file()), folders[0] / name)


def load_atoms(graph_dir: Path | Sequence[Path], shard: int, mof_ids: set[str]) -> dict[str, tuple]:
    from mofsieve.store import ShardReader

    path = in_folders(graph_dir, f"shard-{shard:05d}.h5")
    if not path.is_file():
        return {}
    reader = ShardReader(path)
    out = {}
    for i, mof_id in enumerate(reader.ids):
        if mof_id in mof_ids:
            g = reader.graph(i)
            lattice = np.asarray(g.lattice, dtype=np.float64)
            out[mof_id] = (
                np.asarray(g.atomic_number),
                np.asarray(g.frac_coords) @ lattice,
                lattice,
            )
    return out


def load_attention(path: Path, atoms: dict[str, tuple]) -> tuple[str, dict[str, np.ndarray]]:
    """``(readout, weights)`` of the MOFs in ``atoms`` from one attention file, checked against
    their graphs: a MOF without weights, or whose weights are not one per atom of its graph,
    is an :class:`AttentionFormatError` naming the file."""
    readout, weights = read_attention(path, set(atoms))
    absent = sorted(set(atoms) - set(weights))
    if absent:
        raise AttentionFormatError(f"{path} has no weights for {', '.join(absent[:5])}")
    for mof_id, (atomic_number, _, _) in atoms.items():
        if len(weights[mof_id]) != len(atomic_number):
            raise AttentionFormatError(
                f"{path}: {mof_id} has {len(weights[mof_id])} weights but its graph has "
                f"{len(atomic_number)} atoms"
            )
    return readout, weights


# ---------------------------------------------------------------------------------------------
# HTML


def _blend_notes(model_dirs: Sequence[Path]) -> list[str]:
    """A note per model that blends boosted trees into its predictions: the attention pictured
    is its graph network's only."""
    notes = []
    for directory in dict.fromkeys(model_dirs):
        booster = read_model(directory).booster
        if booster is not None:
            notes.append(
                f"<p class='muted'>{html.escape(str(directory))} blends its graph network "
                f"(weight {1 - booster.weight:.2f}) with gradient-boosted trees on descriptors "
                f"and composition (weight {booster.weight:.2f}): the colours show the graph "
                "network's attention, not the whole prediction.</p>"
            )
    return notes


def build_report(
    ranked_csv: Path,
    failures_csv: Path,
    out_html: Path,
    manifest: Path | None = None,
    graph_dir: Path | Sequence[Path] | None = None,
    attention_dir: Path | Sequence[Path] | None = None,
    n_table: int = 50,
    n_pictures: int = 12,
    title: str = "mofsieve screening report",
    quantity: str = "",
    validation_csv: Path | None = None,
    validation_json: Path | None = None,
    model_dirs: Sequence[Path] = (),
) -> Path:
    ranked = read_ranked(ranked_csv)
    failures = read_failures(failures_csv)
    pred_col, unc_col = ranked.prediction_column, ranked.uncertainty_column
    values = np.array([float(r[pred_col]) for r in ranked.rows], dtype=np.float64)
    flagged = [r for r in ranked.rows if r.get("flagged") == "yes"]
    threshold = float(flagged[-1][pred_col]) if flagged else None
    quantity_label = f"{quantity or 'prediction'} ({ranked.unit})"

    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    n_in = len(ranked.rows) + len({f.mof_id for f in failures})
    summary = [
        ("MOFs in", n_in),
        ("ranked", len(ranked.rows)),
        ("flagged", len(flagged)),
        ("failed", len({f.mof_id for f in failures})),
        ("ranked by", quantity_label),
        ("flag threshold", "—" if threshold is None else f"{threshold:.6g} {ranked.unit}"),
    ]
    # every target's (a multi-target folder may serve both pressures: counted once)
    calibrations = [c for d in dict.fromkeys(model_dirs) for c in read_model(d).calibrations]
    calibrated = bool(calibrations) and all(c is not None for c in calibrations)
    if model_dirs:
        summary.append(("uncertainty", uncertainty_words(calibrations)))
    parts.append("<h2>Summary</h2>" + _table(None, summary))

    parts.append("<h2>Distribution of predictions</h2>")
    if len(values):
        uri = distribution_figure(values, threshold, quantity_label)
        parts.append(f"<img alt='distribution of predictions' src='{uri}'>")
    else:
        parts.append("<p class='muted'>No MOF was ranked.</p>")

    top = ranked.rows[:n_table]
    columns = ["rank", "mof_id", pred_col, unc_col, "flagged", "n_atoms"]
    columns += [c for c in ("duplicate_of",) if c in ranked.header]
    cells = [[r.get(c, "") for c in columns] for r in top]
    if calibrated:
        # a calibrated σ: ±1.645 σ is the central 90 % interval
        columns.insert(4, "90 % interval")
        for row, r in zip(cells, top, strict=True):
            low = float(r[pred_col]) - 1.645 * float(r[unc_col])
            row.insert(4, f"{low:.3g} – {float(r[pred_col]) + 1.645 * float(r[unc_col]):.3g}")
    parts.append(f"<h2>Top {len(top)} candidates</h2>")
    parts.append(_table(columns, cells))

    # the pictured MOFs and the flagged ones (the attention statistics) are read in one go
    element_ids = [r["mof_id"] for r in flagged[:ELEMENT_STATISTICS_TOP]]
    top_structures = None
    if manifest is not None and graph_dir is not None:
        wanted = [r["mof_id"] for r in ranked.rows[:n_pictures]] + element_ids
        top_structures = load_top_structures(wanted, manifest, graph_dir, attention_dir)
    parts.append("<h2>Per-atom attention of the top candidates</h2>")
    parts.extend(_blend_notes(model_dirs))
    parts.append(_pictures(ranked.rows[:n_pictures], pred_col, ranked.unit, top_structures))
    parts.append("<h2>Attention by element</h2>")
    parts.append(element_attention_section(element_ids, top_structures))

    parts.append("<h2>Validation: GCMC of the top picks</h2>")
    parts.append(validation_section(validation_csv, validation_json, quantity_label))

    parts.append("<h2>Structure checks</h2>" + _checks_section(ranked))

    parts.append("<h2>Failures by reason</h2>")
    if failures:
        by_reason = Counter((f.stage, _reason_kind(f.reason)) for f in failures)
        rows = [
            [
                stage,
                reason,
                n,
                ", ".join(
                    sorted(
                        f.mof_id
                        for f in failures
                        if f.stage == stage and _reason_kind(f.reason) == reason
                    )[:5]
                ),
            ]
            for (stage, reason), n in sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0]))
        ]
        parts.append(_table(["stage", "reason", "MOFs", "examples"], rows))
    else:
        parts.append("<p>No failures.</p>")
    parts.append("</body></html>\n")

    write_text_atomic(out_html, "\n".join(parts))
    log.info(
        "report with %d ranked, %d flagged, %d failures: %s",
        len(ranked.rows),
        len(flagged),
        len(failures),
        out_html,
    )
    return out_html


def uncertainty_words(calibrations: Sequence[Calibration | None]) -> str:
    """What the uncertainty column means, from the ranking models' calibrations."""
    if any(c is None for c in calibrations):
        return "raw spread of the ensemble members (uncalibrated: no probability meaning)"
    coverage = ", ".join(
        f"{c.coverage_90_test:.1%}" for c in calibrations if c.coverage_90_test is not None
    )
    return (
        "calibrated standard deviation σ (fitted on the models' validation splits); ±1.645 σ "
        "is a 90 % interval" + (f" (test-split coverage {coverage})" if coverage else "")
    )


def _checks_section(ranked: RankedTable) -> str:
    """Each check by count among the ranked MOFs: raised, flagged anyway, passed over."""
    if "checks" not in ranked.header:
        return "<p class='muted'>ranked.csv has no checks column (ranked before the checks).</p>"
    last_flagged = max((i for i, r in enumerate(ranked.rows) if r.get("flagged") == "yes"),
                       default=-1)  # fmt: skip
    tally: dict[str, list[list[str]]] = {}
    for i, r in enumerate(ranked.rows):
        for check in filter(None, r["checks"].split(";")):
            seen = tally.setdefault(check, [[], [], []])
            seen[0].append(r["mof_id"])
            if r.get("flagged") == "yes":
                seen[1].append(r["mof_id"])
            elif i < last_flagged:
                seen[2].append(r["mof_id"])
    if not tally:
        return "<p>No ranked MOF raised a structure check.</p>"
    order = sorted(tally, key=lambda c: (-len(tally[c][0]), c))
    rows = [
        [c, CHECKS.get(c, ""), len(tally[c][0]), len(tally[c][1]), len(tally[c][2]),
         ", ".join(sorted(tally[c][0])[:5])]
        for c in order
    ]  # fmt: skip
    n_any = sum(1 for r in ranked.rows if r["checks"])
    header = ["check", "meaning", "MOFs", "flagged", "passed over", "examples"]
    return (
        f"<p>{n_any} of {len(ranked.rows)} ranked MOFs raised a check; a MOF passed over "
        "ranked above the flag threshold but was not flagged because of its checks "
        "(<code>flag.skip_checks</code>). Details per MOF: <code>warnings.csv</code>.</p>"
        + _table(header, rows)
    )


def _reason_kind(reason: str) -> str:
    """Group reasons that differ only in the details after a colon, or in their numbers:
    "overlapping atoms 3 and 7 only 0.36 Å apart" → "overlapping atoms # and # only # Å apart"."""
    head = reason.split(":", 1)[0].strip()
    return re.sub(r"[-+]?\d+(\.\d+)?([eE][-+]?\d+)?", "#", head)


@dataclass
class TopStructures:
    """The atoms of some top MOFs (from the graph shards) and their per-atom weights (from
    the attention files) where the model's readout learned them; ``captions`` says why a MOF
    has none (no attention file given, or mean/sum pooling)."""

    atoms: dict[str, tuple]
    weights: dict[str, np.ndarray]
    captions: dict[str, str]


def load_top_structures(
    mof_ids: Sequence[str],
    manifest: Path,
    graph_dir: Path | Sequence[Path],
    attention_dir: Path | Sequence[Path] | None,
) -> TopStructures:
    shards = shard_of(manifest)
    wanted: dict[int, set[str]] = {}
    for mof_id in mof_ids:
        if mof_id in shards:
            wanted.setdefault(shards[mof_id], set()).add(mof_id)
    found = TopStructures({}, {}, {})
    for shard, ids in sorted(wanted.items()):
        shard_atoms = load_atoms(graph_dir, shard, ids)
        found.atoms.update(shard_atoms)
        if attention_dir is None:
            found.captions.update(dict.fromkeys(shard_atoms, "no attention file given"))
            continue
        if not shard_atoms:
            continue
        path = in_folders(attention_dir, f"attention-{shard:05d}.h5")
        readout, shard_weights = load_attention(path, shard_atoms)
        if has_learned_weights(readout):
            found.weights.update(shard_weights)
        else:
            found.captions.update(
                dict.fromkeys(shard_atoms, f"{readout} pooling: every atom weighs the same")
            )
    return found


def _pictures(
    rows: list[dict[str, str]], pred_col: str, unit: str, top: TopStructures | None
) -> str:
    if not rows:
        return "<p class='muted'>No candidates.</p>"
    if top is None:
        return "<p class='muted'>No graph shards given: pictures left out.</p>"
    cards = []
    for r in rows:
        mof_id = r["mof_id"]
        if mof_id not in top.atoms:
            continue
        z, cart, lattice = top.atoms[mof_id]
        uri = structure_figure(mof_id, z, cart, lattice, top.weights.get(mof_id))
        if mof_id in top.weights:
            colour, note = "attention", ""
        else:
            colour = "element"
            caption = html.escape(top.captions[mof_id])
            note = f"<p class='muted'>{caption}; coloured by element</p>"
        cards.append(
            f"<div class='card'><img data-colour=\"{colour}\" alt='{html.escape(mof_id)}' "
            f"src='{uri}'><p>#{html.escape(r['rank'])} {html.escape(mof_id)}: "
            f"{html.escape(r[pred_col])} {html.escape(unit)}</p>{note}</div>"
        )
    if not cards:
        return "<p class='muted'>The graph shards of the top candidates were not found.</p>"
    return "<div class='cards'>" + "".join(cards) + "</div>"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ranked", required=True, type=Path, help="ranked.csv")
    parser.add_argument("--failures", required=True, type=Path, help="failures.csv")
    parser.add_argument("--out", required=True, type=Path, help="report.html to write")
    parser.add_argument("--manifest", type=Path, help="manifest.csv (which shard holds a MOF)")
    parser.add_argument(
        "--graphs", type=Path, nargs="+", help="folders of graph shards shard-KKKKK.h5"
    )
    parser.add_argument(
        "--attention", type=Path, nargs="+", help="folders of attention-KKKKK.h5 files"
    )
    parser.add_argument("--top", type=int, default=50, help="rows in the top-candidates table")
    parser.add_argument("--pictures", type=int, default=12, help="candidates to draw")
    parser.add_argument("--title", default="mofsieve screening report")
    parser.add_argument("--quantity", default="", help="what was predicted, in words")
    parser.add_argument(
        "--validation-csv", type=Path, help="validation.csv of mofsieve validate gather"
    )
    parser.add_argument(
        "--validation-json", type=Path, help="validation.json of mofsieve validate gather"
    )
    parser.add_argument(
        "--models", type=Path, nargs="+", default=[], help="model folders the ranking used"
    )


def run(args: argparse.Namespace) -> int:
    try:
        build_report(
            ranked_csv=args.ranked,
            failures_csv=args.failures,
            out_html=args.out,
            manifest=args.manifest,
            graph_dir=args.graphs,
            attention_dir=args.attention,
            n_table=args.top,
            n_pictures=args.pictures,
            title=args.title,
            quantity=args.quantity,
            validation_csv=args.validation_csv,
            validation_json=args.validation_json,
            model_dirs=args.models,
        )
    except (
        AttentionFormatError,
        FailureFileError,
        InputError,
        ModelDirError,
        ValidateError,
    ) as err:
        log.error("%s", err)
        return 1
    return 0
