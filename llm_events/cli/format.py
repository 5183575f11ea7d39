"""Terminal output: aligned tables that fit the width, truncation, times, numbers, JSON.

Kept apart from the commands so every listing looks the same and ``--full`` / ``--json``
mean the same thing everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import click

#: How many characters of a call id listings show (ms timestamp + per-process counter).
SHORT_ID = 18
#: The narrowest the shrinking (flex) column of a table gets before columns are dropped.
FLEX_MIN = 16


def terminal_width() -> int:
    """``$COLUMNS``, else the terminal's width, else 120 (output to a pipe or file)."""
    import os
    import sys

    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 120
    return max(60, columns)


def one_line(text: Any) -> str:
    """Collapse whitespace so a value fits one table row."""
    if text is None:
        return ""
    return " ".join(str(text).split())


def truncate(text: str, width: int) -> str:
    if width <= 0:
        return ""
    if len(text) <= width:
        return text
    return text[: max(0, width - 1)] + "…"


def short_id(call_id: str | None, full: bool = False) -> str:
    if not call_id:
        return "-"
    return call_id if full else call_id[:SHORT_ID]


def local_time(ts: str | None, *, millis: bool = False) -> str:
    """A stored UTC timestamp as local ``YYYY-MM-DD HH:MM:SS`` (``-`` when missing)."""
    if not ts:
        return "-"
    try:
        dt = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return ts
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    dt = dt.astimezone()
    return dt.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if millis else dt.strftime("%Y-%m-%d %H:%M:%S")


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 10_000:
        return f"{value / 1000:.1f}s"
    if value >= 100:
        return f"{value:.0f}ms"
    if value < 1:
        return f"{value:.2f}ms"
    return f"{value:.1f}ms"


def fmt_cost(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "0"
    if value >= 0.01:
        return f"{value:.4f}"
    return (f"{value:.6f}".rstrip("0") or "0") if value >= 0.000001 else f"{value:.1e}"


def fmt_int(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def fmt_pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def fmt_tokens(inp: int | None, out: int | None, estimated: Any = False) -> str:
    if inp is None and out is None:
        return "-"
    text = f"{'-' if inp is None else inp}/{'-' if out is None else out}"
    return text + ("~" if estimated else "")


class Column:
    """One table column: a header, a function from row to text, alignment, and whether it
    is the one that shrinks (truncates) when the table is wider than the terminal."""

    def __init__(
        self,
        header: str,
        get: Callable[[dict[str, Any]], str],
        *,
        right: bool = False,
        flex: bool = False,
        max_width: int | None = None,
        drop: int | None = None,
    ) -> None:
        self.header = header
        self.get = get
        self.right = right
        self.flex = flex
        self.max_width = max_width
        #: on a narrow terminal, columns with the highest ``drop`` go first (None: never)
        self.drop = drop


def render_table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[Column],
    *,
    full: bool = False,
    width: int | None = None,
) -> list[str]:
    """Aligned rows; the ``flex`` column absorbs what does not fit unless ``full``."""
    limit = width or terminal_width()
    if not full:
        columns = _fit_columns(rows, columns, limit)
    cells = [[one_line(c.get(r)) for c in columns] for r in rows]
    if not full:
        for j, col in enumerate(columns):
            if col.max_width:
                for row in cells:
                    row[j] = truncate(row[j], col.max_width)
    widths = [max([len(c.header)] + [len(row[j]) for row in cells]) for j, c in enumerate(columns)]
    if not full:
        total = sum(widths) + 2 * (len(widths) - 1)
        flex = [j for j, c in enumerate(columns) if c.flex]
        if total > limit and flex:
            j = flex[0]
            # shrink, but never below FLEX_MIN characters: past that, wrapping beats unreadable
            widths[j] = max(
                min(FLEX_MIN, widths[j]), len(columns[j].header), widths[j] - (total - limit)
            )
            for row in cells:
                row[j] = truncate(row[j], widths[j])
    lines = []
    header = [
        c.header.rjust(widths[j]) if c.right else c.header.ljust(widths[j])
        for j, c in enumerate(columns)
    ]
    lines.append("  ".join(header).rstrip())
    for row in cells:
        parts = [
            row[j].rjust(widths[j]) if c.right else row[j].ljust(widths[j])
            for j, c in enumerate(columns)
        ]
        lines.append("  ".join(parts).rstrip())
    return lines


def _fit_columns(
    rows: Sequence[dict[str, Any]], columns: Sequence[Column], limit: int
) -> list[Column]:
    """Drop optional columns (highest ``drop`` first) until the table fits ``limit``."""
    cols = list(columns)

    def natural(c: Column) -> int:
        values = [len(one_line(c.get(r))) for r in rows]
        w = max([len(c.header), *values])
        if c.max_width:
            w = min(w, max(c.max_width, len(c.header)))
        return min(w, FLEX_MIN) if c.flex else w

    widths = {id(c): natural(c) for c in cols}
    while sum(widths[id(c)] for c in cols) + 2 * (len(cols) - 1) > limit:
        droppable = [c for c in cols if c.drop is not None]
        if not droppable:
            break
        cols.remove(max(droppable, key=lambda c: c.drop or 0))
    return cols


def echo_lines(lines: Iterable[str]) -> None:
    click.echo("\n".join(lines))


def echo_json(value: Any) -> None:
    """Pretty JSON for one object; for a list, one compact object per line inside ``[...]``."""
    if isinstance(value, list):
        if not value:
            click.echo("[]")
            return
        body = ",\n".join(json.dumps(v, ensure_ascii=False, default=str) for v in value)
        click.echo(f"[\n{body}\n]")
    else:
        click.echo(json.dumps(value, ensure_ascii=False, indent=2, default=str))


def wrap_block(text: str, indent: str = "  ", *, max_lines: int | None = None) -> list[str]:
    """A multi-line text, indented and wrapped to the terminal; cut after ``max_lines``."""
    import textwrap

    width = max(40, terminal_width() - len(indent))
    out: list[str] = []
    for para in (text or "").splitlines() or [""]:
        out.extend(textwrap.wrap(para, width, replace_whitespace=False) or [""])
    if max_lines is not None and len(out) > max_lines:
        hidden = len(out) - max_lines
        out = out[:max_lines] + [f"… ({hidden} more lines; --full shows everything)"]
    return [indent + line for line in out]
