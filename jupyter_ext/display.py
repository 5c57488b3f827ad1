"""Tables for result objects: one HTML form (`_repr_html_` in notebooks) and one aligned
text form (`__str__` in terminals), from headers + rows or from a list of dict rows."""

from __future__ import annotations

import html
import math
from typing import Any, Sequence


def cell(value: Any) -> str:
    """How one value reads in a table: None/NaN as '-', booleans as yes/no, short floats."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value == 0 or abs(value) >= 1:  # keep cents and three decimals; drop noise
            return f"{value:,.3f}".rstrip("0").rstrip(".")
        return f"{value:.4g}"
    return str(value)


def html_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], caption: str = "") -> str:
    """A plain HTML table (escaped cells)."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell(c))}</td>" for c in row) + "</tr>" for row in rows)
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def text_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """The same table as aligned text."""
    cells = [[str(h) for h in headers]] + [[cell(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _columns(rows: Sequence[dict]) -> list[str]:
    return list(dict.fromkeys(k for r in rows for k in r))


def dict_rows_html(rows: Sequence[dict]) -> str:
    """HTML table of dict rows (columns in first-seen order)."""
    if not rows:
        return "<p>(no rows)</p>"
    cols = _columns(rows)
    return html_table(cols, [[r.get(c) for c in cols] for r in rows])


def dict_rows_text(rows: Sequence[dict]) -> str:
    """Text table of dict rows."""
    if not rows:
        return "(no rows)"
    cols = _columns(rows)
    return text_table(cols, [[r.get(c) for c in cols] for r in rows])
