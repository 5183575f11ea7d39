"""``llm-events tail``: the newest events, one line each; ``-f`` follows what other processes
append (polling the log by ``seq``, as a reader that never blocks a writer)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from .common import db_option, friendly_errors
from .format import local_time, short_id, terminal_width, truncate
from .listing import open_read
from .options import (
    BadOption,
    build_filter,
    call_filter_options,
    full_option,
    include_replays_option,
)


def _tail_line(e: dict[str, Any], full: bool, width: int) -> str:
    import json

    from .timeline import describe

    try:
        body = json.loads(e["payload"])
    except (TypeError, ValueError):
        body = {"type": e["type"]}
    body.setdefault("type", e["type"])
    label, detail = describe(body)
    ts = local_time(e["ts"], millis=True)[11:]
    key = short_id(e.get("call_id"), full) if e.get("call_id") else "-"
    line = f"{e['seq']:>8}  {ts}  {key:<18}  {label:<21} {detail}"
    return line if full else truncate(line, width)


def _check_types(types: tuple[str, ...]) -> None:
    """An unknown ``--type`` is an error naming the valid ones (else ``-f`` waits forever)."""
    import difflib

    from ..log.events import EVENT_CLASSES

    for name in types:
        if name not in EVENT_CLASSES:
            close = difflib.get_close_matches(name, EVENT_CLASSES, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise BadOption(
                f"bad --type: unknown event type {name!r}: {hint}"
                f"the types are {', '.join(EVENT_CLASSES)}"
            )


#: The longest poll interval ``-f`` takes (an hour): longer is surely a typo, and
#: ``time.sleep`` overflows on values past the platform's ``time_t``.
MAX_INTERVAL_S = 3600.0

#: ``-n 0`` prints every event, read this many seqs at a time.
ALL_WINDOW = 5000


def _parse_interval(ctx: click.Context, param: click.Parameter, value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise BadOption(f"bad --interval: {value!r} is not a number of seconds") from None
    if not 0 < seconds <= MAX_INTERVAL_S:  # also refuses nan
        raise BadOption(
            f"bad --interval: {value} is out of range (more than 0, at most {MAX_INTERVAL_S:g} s)"
        )
    return seconds


@click.command(name="tail")
@db_option
@call_filter_options(
    limit=20,
    json_help="Print one JSON object per event (JSON Lines).",
    limit_help="How many of the newest events to show (0: all; with -f, 0 shows only new ones).",
)
@full_option
@include_replays_option
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events as they are appended.")
@click.option(
    "--type",
    "types",
    multiple=True,
    help="Only events of this type (repeatable), e.g. attempt_failed.",
)
@click.option(
    "--interval",
    type=click.STRING,  # parsed by the callback: one line, exit 2, for any value
    callback=_parse_interval,
    metavar="SECONDS",
    default="0.5",
    show_default=True,
    help=f"Seconds between polls with -f (more than 0, at most {MAX_INTERVAL_S:g}).",
)
@friendly_errors
def tail_command(
    db: Path | None,
    limit: int,
    as_json: bool,
    full: bool,
    follow: bool,
    types: tuple[str, ...],
    interval: float,
    **filters: Any,
) -> None:
    """Print the newest events; with -f, follow events other processes append.

    \b
    Examples:
      llm-events tail -n 50
      llm-events tail -f --type attempt_failed
    """
    import json

    from ..log.queries import recent_events

    _check_types(types)
    flt = build_filter(**filters)
    conn = open_read(db)
    width = terminal_width()

    def emit(rows: list[dict[str, Any]]) -> None:
        for e in rows:
            if as_json:
                body = json.loads(e["payload"])
                click.echo(json.dumps({"seq": e["seq"], **body}, ensure_ascii=False))
            else:
                click.echo(_tail_line(e, full, width))

    def head(conn: Any) -> int:
        return conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]

    try:
        type_list = list(types) or None
        # read up to a known seq, then poll strictly after it: nothing is missed or repeated
        last = head(conn)
        shown = 0
        if limit:
            rows = recent_events(conn, until_seq=last, limit=limit, flt=flt, types=type_list)
            emit(rows)
            shown = len(rows)
        elif not follow:  # -n 0: all, read in windows of seq (memory stays bounded)
            for start in range(0, last, ALL_WINDOW):
                window = recent_events(
                    conn,
                    after_seq=start,
                    until_seq=min(start + ALL_WINDOW, last),
                    flt=flt,
                    types=type_list,
                )
                emit(window)
                shown += len(window)
        # with -f, -n 0 shows only what is appended from now on
        if not follow:
            if not shown and not as_json:
                click.echo("no events match", err=True)
            return
        try:
            while True:
                time.sleep(interval)
                now = head(conn)
                if now > last:
                    emit(
                        recent_events(conn, after_seq=last, until_seq=now, flt=flt, types=type_list)
                    )
                    last = now
        except KeyboardInterrupt:
            return
    finally:
        conn.close()
