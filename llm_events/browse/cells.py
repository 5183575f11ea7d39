"""How table cells read in Datasette: ids as short links to our pages, times without wrapping,
JSON compact (one line, capped, a click unfolds it indented), tags as chips, search matches
marked.  Used by the ``render_cell`` plugin hook for every table, view and query.

Every value is escaped (``markupsafe.escape``) before it is put in HTML: a prompt, a tool
argument, a model name or a tag holding ``<script>`` shows as text.
"""

from __future__ import annotations

import json
from typing import Any

from markupsafe import Markup, escape

from .render import SHORT_ID, fmt_cost, fmt_ms, pretty_json, utc_time

CALL_COLUMNS = frozenset({"call_id", "source_call_id", "replay_call_id", "parent_call_id"})
REPLAY_COLUMNS = frozenset({"replay_id"})
TIME_COLUMNS = frozenset({"started_at", "finished_at", "ts", "timestamp"})
BADGE_COLUMNS = frozenset({"status", "verdict"})
LIST_COLUMNS = frozenset({"tags", "outcome_tags", "candidates"})
#: JSON shown in a cell is cut to this many characters; the rest is one click away.
JSON_CAP = 60
#: The unfolded JSON is cut here (a raw response can be megabytes; the row page has it all).
JSON_FULL_CAP = 20_000
#: Text longer than this is one clipped line in tables (the whole text on hover and on the
#: row page, where the CSS lets it wrap).
CLIP = 60
#: Search snippets mark matches with these two control characters (the canned query
#: ``search_answers``); they never occur in text, unlike brackets.
MARK_START, MARK_END = "\x02", "\x03"


def call_href(base: str, call_id: str) -> str:
    return f"{base}-/calls/{call_id}"


def replay_href(base: str, replay_id: str) -> str:
    return f"{base}-/replays/{replay_id}"


def _link(href: str, value: str, cls: str) -> Markup:
    short = value[:SHORT_ID]
    return Markup(
        f'<a class="le-id {cls}" href="{escape(href)}" title="{escape(value)}">{escape(short)}</a>'
    )


def _badge(value: str, extra: str = "") -> Markup:
    cls = "".join(ch if ch.isalnum() else "-" for ch in value.lower())[:20]
    return Markup(f'<span class="le-badge le-{cls}">{escape(value)}</span>{extra}')


def _json_cell(value: Any, text: str) -> Markup:
    one_line = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    if len(one_line) <= JSON_CAP:
        return Markup(f'<code class="le-json">{escape(one_line)}</code>')
    full = pretty_json(value)
    if len(full) > JSON_FULL_CAP:
        full = full[:JSON_FULL_CAP] + "\n… (cut: the row page has it all)"
    return Markup(
        f'<details class="le-json"><summary><code>{escape(one_line[:JSON_CAP])}…</code>'
        f"</summary><pre>{escape(full)}</pre></details>"
    )


def _chips(items: list[Any]) -> Markup:
    shown = "".join(f'<span class="le-chip">{escape(str(t))}</span>' for t in items[:4])
    more = f'<span class="le-more">+{len(items) - 4}</span>' if len(items) > 4 else ""
    return Markup(f'<span class="le-chips">{shown}{more}</span>')


def _marked(text: str) -> Markup:
    html = str(escape(text))
    return Markup(html.replace(MARK_START, "<mark>").replace(MARK_END, "</mark>"))


def _is_replay(row: Any) -> bool:
    try:
        return bool(row["parent_call_id"])
    except (KeyError, IndexError, TypeError):
        return False


def _is_replay_event(row: Any) -> bool:
    """An ``events`` row of a replay run (``replay_started`` ...): its ``call_id`` column
    holds the run's id, whose page is the replay page, not a call page."""
    try:
        kind = row["type"]
    except (KeyError, IndexError, TypeError):
        return False
    return isinstance(kind, str) and kind.startswith("replay_")


def needs_replay_lookup(row: Any, column: str, table: str | None) -> bool:
    """A ``calls`` status cell whose row lacks ``parent_call_id`` (the default columns):
    the plugin looks it up by primary key to mark a replay's call."""
    if column != "status" or table != "calls":
        return False
    try:
        keys = row.keys()
    except AttributeError:
        return False
    return "parent_call_id" not in keys and "call_id" in keys


def render(value: Any, column: str, table: str | None, row: Any, base: str) -> Markup | None:
    """The HTML for one cell, or ``None`` to let Datasette render it (escaped) as usual."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if column in ("latency_ms", "latency_delta_ms", "ttft_ms"):
            return Markup(f'<span class="le-num" title="{value}">{escape(fmt_ms(value))}</span>')
        if column in ("cost", "cost_delta"):
            return Markup(f'<span class="le-num" title="{value}">{escape(fmt_cost(value))}</span>')
        if column == "score" and isinstance(value, float):  # a replay's similarity
            return Markup(f'<span class="le-num" title="{value}">{value:.2f}</span>')
        return None
    if not isinstance(value, str) or not value:
        return None
    if column == "call_id" and _is_replay_event(row):  # a replay run's own events
        return _link(replay_href(base, value), value, "le-run")
    if column in CALL_COLUMNS:
        link = _link(call_href(base, value), value, "le-call")
        if column == "parent_call_id" and table in (None, "calls"):
            return Markup(f'<span class="le-badge le-replay">replay</span> of {link}')
        return link
    if column in REPLAY_COLUMNS:
        return _link(replay_href(base, value), value, "le-run")
    if MARK_START in value:
        return _marked(value)
    if column in TIME_COLUMNS and len(value) >= 19 and value[4:5] == "-":
        return Markup(
            f'<span class="le-time" title="{escape(value)} (UTC)">{escape(utc_time(value))}</span>'
        )
    if column in BADGE_COLUMNS and len(value) <= 20:
        extra = ""
        if column == "status" and _is_replay(row):
            extra = (
                ' <span class="le-badge le-replay" title="a call made by a replay">replay</span>'
            )
        return _badge(value, extra)
    if value[0] in "[{":
        try:
            parsed = json.loads(value)
        except ValueError:
            return None
        if (
            column in LIST_COLUMNS
            and isinstance(parsed, list)
            and all(isinstance(t, (str, int, float)) for t in parsed)
        ):
            return _chips(parsed) if parsed else Markup("")
        return _json_cell(parsed, value)
    if len(value) > CLIP:
        return Markup(
            f'<span class="le-clip" title="{escape(value[:2000])}">{escape(value)}</span>'
        )
    return None
