"""Reading commands: ``calls``, ``search``, ``stats`` (``show`` and ``tail``: their own modules).

Each opens the store read-only with :func:`llm_events.log.queries.open_readonly` (``sqlite3``
alone: nothing else to import, a fast start), asks :mod:`llm_events.queries` and prints
through :mod:`.format`; no SQL and no business rules live here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .common import db_option, db_path, friendly_errors
from .format import (
    Column,
    echo_json,
    echo_lines,
    fmt_cost,
    fmt_int,
    fmt_ms,
    fmt_pct,
    fmt_tokens,
    local_time,
    one_line,
    render_table,
    short_id,
    terminal_width,
)
from .options import (
    build_filter,
    call_filter_options,
    full_option,
    include_replays_option,
)


def open_read(db: Path | None) -> Any:
    """A read-only connection to the store (one clear error if it is missing or foreign)."""
    from ..log.queries import QueryError, open_readonly

    path = db_path(db)
    if not path.exists():
        raise click.ClickException(
            f"no event store at {path} (run `llm-events demo` to create one, or pass --db)"
        )
    try:
        conn = open_readonly(path)
    except QueryError as e:
        raise click.ClickException(str(e)) from None
    from ..log.lag import bring_up_to_date, lag_note, stale, upgrade_note

    old = stale(conn)
    if old:
        click.echo(upgrade_note(path, old), err=True)
    behind = bring_up_to_date(path, conn)  # projections follow the log (llm_events.log.lag)
    if behind:
        click.echo(lag_note(behind), err=True)
    return conn


def _limit(n: int | None) -> int | None:
    return n if n else None


def _when(ts: str | None, full: bool) -> str:
    """Local time; the year only with --full (listings are about recent traffic)."""
    text = local_time(ts)
    return text if full or text == "-" else text[5:]


# --- calls -----------------------------------------------------------------------------------


def _calls_columns(full: bool) -> list[Column]:
    def prompt_or_error(r: dict[str, Any]) -> str:
        if r.get("status") == "error":
            return f"{r.get('error_type') or 'error'}: {one_line(r.get('error_message'))}"
        return one_line(r.get("prompt_preview"))

    return [
        Column("CALL", lambda r: short_id(r["call_id"], full)),
        Column("STARTED", lambda r: _when(r.get("started_at"), full)),
        Column("STATUS", lambda r: r.get("status") or "-"),
        Column("MODEL", lambda r: r.get("model") or "-", max_width=24),
        Column("BACKEND", lambda r: r.get("backend") or "-", max_width=20, drop=2),
        Column("ATT", lambda r: str(r.get("attempts") or 0), right=True, drop=4),
        Column("RTY", lambda r: str(r.get("retries") or 0), right=True),
        Column("FB", lambda r: str(r.get("fallbacks") or 0), right=True),
        Column(
            "TOKENS",
            lambda r: fmt_tokens(r.get("input_tokens"), r.get("output_tokens")),
            right=True,
            drop=6,
        ),
        Column("COST", lambda r: fmt_cost(r.get("cost")), right=True, drop=5),
        Column("LATENCY", lambda r: fmt_ms(r.get("latency_ms")), right=True, drop=3),
        Column("PROMPT / ERROR", prompt_or_error, flex=True),
    ]


@click.command(name="calls")
@db_option
@call_filter_options(limit=20)
@full_option
@include_replays_option
@friendly_errors
def calls_command(db: Path | None, limit: int, as_json: bool, full: bool, **filters: Any) -> None:
    """List recorded calls, newest first.

    \b
    Examples:
      llm-events calls -n 50
      llm-events calls --status error --since 2h
      llm-events calls --model 'gpt-*' --tag nightly --json
    """
    from ..log.queries import list_calls

    conn = open_read(db)
    try:
        rows = list_calls(conn, build_filter(**filters), limit=_limit(limit))
    finally:
        conn.close()
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no calls match", err=True)
        return
    echo_lines(render_table(rows, _calls_columns(full), full=full))


# --- show ------------------------------------------------------------------------------------


# --- search ----------------------------------------------------------------------------------


@click.command(name="search")
@click.argument("text", nargs=-1, required=True)
@db_option
@call_filter_options(limit=20)
@full_option
@include_replays_option
@click.option(
    "--rank-all",
    is_flag=True,
    help="Rank every match (default: the newest 5,000 matches; slower on big stores).",
)
@friendly_errors
def search_command(
    db: Path | None,
    text: tuple[str, ...],
    limit: int,
    as_json: bool,
    full: bool,
    rank_all: bool,
    **filters: Any,
) -> None:
    """Full-text search over prompts and answers, best match first.

    Every word must occur (in the prompt or the answer); matches show in [brackets].
    When more than 5,000 answered calls match, the newest 5,000 are ranked (--rank-all: all).

    \b
    Examples:
      llm-events search refund annual
      llm-events search invoice --model large-2025 --json
    """
    from ..log.fts import catch_up, unindexed
    from ..log.search import RANK_WINDOW, search

    conn = open_read(db)
    try:
        # the index runs a little behind the answers (llm_events.log.fts): bring it up to date
        behind = 0 if catch_up(db_path(db), busy_timeout_ms=1000) is not None else unindexed(conn)
        rows = search(
            conn,
            " ".join(text),
            build_filter(**filters),
            limit=limit or 1000,
            rank_window=None if rank_all else RANK_WINDOW,
        )
    finally:
        conn.close()
    if behind:
        click.echo(
            f"note: the {behind} newest answered calls are not in the search index yet "
            "(the store could not be written to index them; the next write to it does)",
            err=True,
        )
    if as_json:
        for r in rows:
            r["score"] = round(-r["score"], 4)
        echo_json(rows)
        return
    if not rows:
        click.echo("no matches", err=True)
        return
    columns = [
        Column("CALL", lambda r: short_id(r["call_id"], full)),
        Column("TIME", lambda r: _when(r.get("timestamp"), full)),
        Column("MODEL", lambda r: r.get("model") or "-", max_width=24),
        Column("PROMPT", lambda r: r.get("prompt_snippet") or "", flex=True),
        Column("ANSWER", lambda r: r.get("answer_snippet") or ""),
    ]
    if full:
        columns[3].get = lambda r: r.get("prompt") or ""
        columns[4].get = lambda r: r.get("answer") or r.get("tool_calls") or ""
    else:
        # split the room the fixed columns leave between the two texts
        model_w = max([5, *(min(24, len(r.get("model") or "-")) for r in rows)])
        room = max(40, terminal_width() - (18 + 14 + model_w + 4 * 2))
        columns[4].max_width = room // 2
        columns[3].max_width = room - room // 2
    echo_lines(render_table(rows, columns, full=full))


# --- stats -----------------------------------------------------------------------------------


@click.command(
    name="stats", short_help="Failure rate, retries, fallbacks, tokens, cost, latency per model."
)
@db_option
@call_filter_options(limit=None, json_help="Print the figures as JSON.")
@include_replays_option
@friendly_errors
def stats_command(db: Path | None, limit: int | None, as_json: bool, **filters: Any) -> None:
    """Calls, failure rate, retries, fallbacks, tokens, cost and latency per model and backend.

    \b
    Examples:
      llm-events stats --since 1d
      llm-events stats --backend openai --json
    """
    from ..log.stats import stats

    flt = build_filter(**filters)
    conn = open_read(db)
    try:
        result = stats(conn, flt)
    finally:
        conn.close()
    groups = result["groups"]
    if limit:
        groups = groups[:limit]
    if as_json:
        echo_json(
            {"since": flt.since, "until": flt.until, "groups": groups, "total": result["total"]}
        )
        return
    if not groups:
        click.echo("no calls match", err=True)
        return
    span = f" since {local_time(flt.since)}" if flt.since else ""
    total = result["total"]
    click.echo(
        f"{fmt_int(total['calls'])} calls{span}: {fmt_int(total['failed'])} failed "
        f"({fmt_pct(total['failure_rate'])}), {fmt_int(total['retries'])} retries, "
        f"{fmt_int(total['fell_back'])} fell back, cost {fmt_cost(total['cost'])}, "
        f"latency p50 {fmt_ms(total['p50_ms'])} p95 {fmt_ms(total['p95_ms'])}"
    )
    click.echo("")
    columns = [
        Column("MODEL", lambda r: r.get("model") or "-", flex=True),
        Column("BACKEND", lambda r: r.get("backend") or "-"),
        Column("CALLS", lambda r: fmt_int(r["calls"]), right=True),
        Column("FAILED", lambda r: fmt_int(r["failed"]), right=True),
        Column("FAIL%", lambda r: fmt_pct(r["failure_rate"]), right=True),
        Column("RETRIES", lambda r: fmt_int(r["retries"]), right=True),
        Column("FALLBACKS", lambda r: fmt_int(r["fallbacks"]), right=True),
        Column("TOKENS IN", lambda r: fmt_int(r["input_tokens"]), right=True),
        Column("TOKENS OUT", lambda r: fmt_int(r["output_tokens"]), right=True),
        Column("COST", lambda r: fmt_cost(r["cost"]), right=True),
        Column("P50", lambda r: fmt_ms(r["p50_ms"]), right=True),
        Column("P95", lambda r: fmt_ms(r["p95_ms"]), right=True),
    ]
    rows = [*groups, {**total, "model": "(all)", "backend": ""}]
    echo_lines(render_table(rows, columns))
