"""Datasette plugin (loaded by ``llm-events browse`` through ``--plugins-dir``): cells.

Why: the fastest way from "a failed call" to "what happened" is one click.  Every cell
holding a call id links to that call's page (``/-/calls/{id}``), every replay id to its run's
page; times do not wrap, JSON is one capped line that unfolds, tags are chips, search matches
are marked.  All of it is :mod:`llm_events.browse.cells`; values are always escaped.
"""

from __future__ import annotations

from typing import Any

from datasette import hookimpl

from llm_events.browse.cells import needs_replay_lookup, render


@hookimpl
def render_cell(
    row: Any, value: Any, column: str, table: str | None, database: str, datasette: Any
) -> Any:
    base = datasette.setting("base_url") or "/"
    if isinstance(value, str) and needs_replay_lookup(row, column, table):
        call_id = row["call_id"]

        async def marked() -> Any:  # one primary-key lookup: is this a replay's call?
            result = await datasette.get_database(database).execute(
                "SELECT parent_call_id FROM calls WHERE call_id = ?", [call_id]
            )
            first = result.first()
            return render(value, column, table, {"parent_call_id": first and first[0]}, base)

        return marked
    return render(value, column, table, row, base)
