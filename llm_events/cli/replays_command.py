"""``llm-events replays``: the replay runs, newest first (ids for ``--resume`` and the page)."""

from __future__ import annotations

from pathlib import Path

import click

from .common import db_option, friendly_errors
from .format import Column, echo_json, echo_lines, fmt_int, local_time, render_table, short_id
from .listing import open_read
from .options import SINCE_HELP, full_option, parse_since


@click.command(name="replays", short_help="List replay runs: when, against, verdicts, status.")
@db_option
@click.option(
    "-n",
    "--limit",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="How many to show (0: all).",
)
@click.option(
    "--since", callback=parse_since, metavar="WHEN", help=SINCE_HELP.replace("calls", "runs")
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one object per run).")
@full_option
@friendly_errors
def replays_command(
    db: Path | None, limit: int, since: str | None, as_json: bool, full: bool
) -> None:
    """List replay runs, newest first: id, when, what they ran against, how many answers
    stayed the same, changed or failed, and the status (running, completed, interrupted).

    An interrupted run continues with `llm-events replay --resume ID`; `llm-events browse`
    shows each run at /-/replays/ID.

    \b
    Examples:
      llm-events replays
      llm-events replays --since 1w --json
    """
    from ..log.queries import list_replays

    conn = open_read(db)
    try:
        rows = list_replays(conn, since=since, limit=limit or None)
    finally:
        conn.close()
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no replay runs" + (" match" if since else " yet"), err=True)
        return
    columns = [
        Column("REPLAY", lambda r: short_id(r["replay_id"], full)),
        Column("STARTED", lambda r: local_time(r.get("started_at"))),
        Column("STATUS", lambda r: r.get("status") or "-"),
        Column("AGAINST", lambda r: r.get("against") or "-", flex=True),
        Column("COMPARE", lambda r: r.get("compare") or "-", max_width=24, drop=2),
        Column("TOTAL", lambda r: fmt_int(r.get("total")), right=True),
        Column("SAME", lambda r: fmt_int(r["same"]), right=True),
        Column("CHANGED", lambda r: fmt_int(r["changed"]), right=True),
        Column("ERROR", lambda r: fmt_int(r["error"]), right=True),
        Column("SKIPPED", lambda r: fmt_int(r["skipped"]), right=True, drop=1),
    ]
    echo_lines(render_table(rows, columns, full=full))
