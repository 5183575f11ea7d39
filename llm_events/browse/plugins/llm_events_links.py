"""Datasette plugin (loaded by ``llm-events browse`` through ``--plugins-dir``).

Why: the fastest way from "a failed call" to "what happened" is one click.  Cells holding a
call id link to the ``call_timeline`` canned query, cells holding a replay id to
``replay_regressions``.  Values are escaped: a cell never renders as raw HTML.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from datasette import hookimpl
from markupsafe import Markup, escape

CALL_COLUMNS = {"call_id", "source_call_id", "replay_call_id", "parent_call_id"}
REPLAY_COLUMNS = {"replay_id"}


@hookimpl
def render_cell(value: Any, column: str, database: str, datasette: Any) -> Any:
    if not isinstance(value, str) or not value:
        return None
    if column in CALL_COLUMNS:
        query, param = "call_timeline", "call_id"
    elif column in REPLAY_COLUMNS:
        query, param = "replay_regressions", "replay_id"
    else:
        return None
    href = f"{datasette.urls.database(database)}/{query}?{urlencode({param: value})}"
    return Markup(f'<a href="{escape(href)}" title="{query}">{escape(value)}</a>')
