"""The report's building blocks: its style sheet, HTML tables, and figures as embedded PNGs
(``data:`` URIs, so that ``report.html`` needs nothing beside it)."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from typing import Any

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em;
color:#222;max-width:1100px}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ddd;padding:.25em .6em}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:flex;flex-wrap:wrap;gap:1em}.card{border:1px solid #ddd;padding:.5em}
.card p{margin:.2em 0;font-size:.85em}.muted{color:#777}
"""


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png_uri(fig: Any) -> str:
    """A matplotlib Figure as a ``data:image/png`` URI; the figure is closed."""
    plt = pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def html_table(header: Sequence[str] | None, rows: Sequence[Sequence[object]]) -> str:
    """A table; cells that read as numbers are right-aligned."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header or ())
    body = []
    for row in rows:
        cells = []
        for value in row:
            text = html.escape(str(value))
            numeric = text.replace(".", "", 1).replace("-", "", 1).replace("e", "", 1).isdigit()
            cells.append(f'<td class="num">{text}</td>' if numeric else f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    thead = f"<thead><tr>{head}</tr></thead>" if head else ""
    return f"<table>{thead}<tbody>{''.join(body)}</tbody></table>"
