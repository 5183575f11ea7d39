"""Moving events between stores: ``export`` (JSON Lines) and ``import`` (idempotent merge).

An exported line is exactly the stored event JSON (``type``, global ``id``, ``ts`` and the
fields), so an import re-creates the same events with the same ids.  Import skips ids the
store already has, so importing a file twice, or files that overlap, adds nothing twice.
Several files are merged by timestamp (each file is in its source's commit order), so
stores from several hosts combine into one log ordered as the calls happened.
"""

from __future__ import annotations

import heapq
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import click

from .common import db_option, friendly_errors, open_cli_store
from .options import build_filter, call_filter_options

#: Events appended per transaction during import.
IMPORT_CHUNK = 5000


@click.command(name="export")
@db_option
@call_filter_options(limit=None, json_help=None)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of stdout.",
)
@friendly_errors
def export_command(db: Path | None, limit: int | None, output: Path | None, **filters: Any) -> None:
    """Write events as JSON Lines (one event per line, in commit order).

    Without filters every event is written.  With filters (or -n), the selected calls are
    written whole: all their events plus the prompts they sent.

    \b
    Examples:
      llm-events export -o all.jsonl
      llm-events export --since 1d --status error > failures.jsonl
    """
    from ..log.queries import export_payloads
    from .listing import open_read

    flt = build_filter(**filters)
    conn = open_read(db)
    count = 0
    try:
        out: IO[str]
        out = sys.stdout if output is None else open(output, "w", encoding="utf-8")  # noqa: SIM115
        try:
            for payload in export_payloads(conn, flt, limit=limit or None):
                out.write(payload)
                out.write("\n")
                count += 1
        finally:
            if output is not None:
                out.close()
            else:
                out.flush()
    finally:
        conn.close()
    if output is not None:
        click.echo(f"exported {count} events to {output}", err=True)


class _BadLine(Exception):
    pass


def _read_events(path: str, index: int) -> Iterator[tuple[str, int, int, Any]]:
    """``(ts, file index, line number, event)`` for each line of one JSONL file."""
    import msgspec

    from ..log import events as ev

    handle = sys.stdin if path == "-" else open(path, encoding="utf-8")  # noqa: SIM115
    name = "<stdin>" if path == "-" else path
    try:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                event = ev.decode(line)
            except (msgspec.DecodeError, msgspec.ValidationError) as e:
                raise _BadLine(f"{name} line {lineno} is not an llm-events event: {e}") from None
            if isinstance(event, ev.UnknownEvent):
                raise _BadLine(
                    f"{name} line {lineno} has unknown event type {event.type!r} "
                    "(written by a newer llm-events? upgrade to import it)"
                )
            yield event.ts, index, lineno, event
    except UnicodeDecodeError:
        raise _BadLine(f"{name} is not a text file (expected JSON Lines from `export`)") from None
    finally:
        if handle is not sys.stdin:
            handle.close()


@click.command(name="import")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, allow_dash=True))
@db_option
@click.option(
    "--from-llm",
    "from_llm",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Import an `llm` logs.db (the llm package's log) instead of JSON Lines.",
)
@click.option("--quiet", "-q", is_flag=True, help="Print nothing on success.")
@friendly_errors
def import_command(
    db: Path | None, files: tuple[str, ...], from_llm: Path | None, quiet: bool
) -> None:
    """Import events from JSON Lines files written by `export` ('-' reads stdin).

    Idempotent: events whose id is already stored are skipped, so importing the same file
    twice adds nothing.  Several files (say, one per host) are merged by timestamp.

    \b
    Examples:
      llm-events import host-a.jsonl host-b.jsonl
      llm-events export --db other.db | llm-events import -
      llm-events import --from-llm ~/.config/io.datasette.llm/logs.db
    """
    if not files and from_llm is None:
        raise click.ClickException("give FILE(s) to import, or --from-llm PATH")
    store = open_cli_store(db, must_exist=False)
    try:
        if from_llm is not None:
            _import_llm(store, from_llm, quiet)
        if files:
            _import_jsonl(store, files, quiet)
    finally:
        store.close()


def _import_llm(store: Any, path: Path, quiet: bool) -> None:
    try:
        from ..transfer.llm_import import import_llm_logs
    except ImportError:
        raise click.ClickException(
            "importing an llm logs.db is not available in this version of llm-events"
        ) from None
    n = import_llm_logs(store, path)
    if not quiet:
        click.echo(f"imported {n} calls from llm logs {path}")


def _import_jsonl(store: Any, files: tuple[str, ...], quiet: bool) -> None:
    for f in files:
        if f != "-" and not Path(f).exists():
            raise click.ClickException(f"no such file: {f}")
    before = store.last_seq()
    read = 0
    streams = [_read_events(f, i) for i, f in enumerate(files)]
    # each file is in commit order; merging by (ts, file, line) keeps each file's order
    merged = streams[0] if len(streams) == 1 else heapq.merge(*streams, key=lambda t: t[:3])
    chunk: list[Any] = []
    try:
        for _ts, _i, _line, event in merged:
            chunk.append(event)
            read += 1
            if len(chunk) >= IMPORT_CHUNK:
                store.append(chunk, ignore_existing=True)
                chunk = []
        if chunk:
            store.append(chunk, ignore_existing=True)
    except _BadLine as e:
        if chunk:  # keep what was read before the bad line, as the message says
            store.append(chunk, ignore_existing=True)
        added = store.last_seq() - before
        raise click.ClickException(
            f"{e}; {added} events before it were imported (importing again is safe: "
            "stored events are skipped)"
        ) from None
    added = store.last_seq() - before
    if not quiet:
        names = ", ".join(files)
        click.echo(
            f"imported {added} new events from {names} ({read - added} already in {store.path})"
        )
