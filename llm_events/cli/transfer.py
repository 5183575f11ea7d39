"""Moving events between stores: ``export`` (JSON Lines) and ``import`` (idempotent merge).

An exported line is exactly the stored event JSON (``type``, global ``id``, ``ts`` and the
fields), so an import re-creates the same events with the same ids; the bytes of images and
files the events refer to come once each, on a ``{"blob": ...}`` line before the first event
that needs them (:mod:`llm_events.transfer.blob_lines`).  Import skips ids the
store already has, so importing a file twice, or files that overlap, adds nothing twice.
Several files are merged by timestamp (each file is in its source's commit order), so
stores from several hosts combine into one log ordered as the calls happened.
"""

from __future__ import annotations

import heapq
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import click

from .common import EXIT_INTERRUPTED, db_option, friendly_errors, open_cli_store
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
@click.option(
    "--no-blobs",
    "no_blobs",
    is_flag=True,
    help="Leave out the bytes of images and files (the events keep their sha256).",
)
@friendly_errors
def export_command(
    db: Path | None, limit: int | None, output: Path | None, no_blobs: bool, **filters: Any
) -> None:
    """Write events as JSON Lines (one event per line, in commit order).

    Without filters every event is written.  With filters (or -n), the selected calls are
    written whole: all their events plus the prompts they sent.  The bytes of images and
    files in conversations come once each, as a {"blob": ...} line before the first event
    that refers to them (--no-blobs: events only).

    \b
    Examples:
      llm-events export -o all.jsonl
      llm-events export --since 1d --status error > failures.jsonl
    """
    from ..log.queries import export_payloads
    from ..transfer.blob_lines import with_blob_lines
    from .listing import open_read

    flt = build_filter(**filters)
    conn = open_read(db)
    count = blob_count = 0
    try:
        out: IO[str]
        out = sys.stdout if output is None else open(output, "w", encoding="utf-8")  # noqa: SIM115
        try:
            lines = export_payloads(conn, flt, limit=limit or None)
            for payload in lines if no_blobs else with_blob_lines(conn, lines):
                out.write(payload)
                out.write("\n")
                count += 1
                if payload.startswith('{"blob"'):
                    blob_count += 1
        finally:
            if output is not None:
                out.close()
            else:
                out.flush()
    finally:
        conn.close()
    if output is not None:
        files = ""
        if blob_count:
            files = f" and {blob_count} blob{'s' if blob_count != 1 else ''} (image or file bytes)"
        click.echo(f"exported {count - blob_count} events{files} to {output}", err=True)


class _BadLine(Exception):
    pass


def _is_sqlite(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


def _read_events(path: str, index: int, redactor: Any) -> Iterator[tuple[str, int, int, Any]]:
    """``(ts, file index, line number, (event, payload, blobs))`` for each event of one JSONL
    file, checked and redacted (:mod:`llm_events.transfer.incoming`), with the blobs read
    since the event before it (blobs after the last event come with ``event`` None)."""
    from ..transfer.blob_lines import BadBlob, is_blob_line, parse_blob
    from ..transfer.incoming import Rejected, check, parse_line

    name = "<stdin>" if path == "-" else path
    if path != "-" and _is_sqlite(path):
        raise _BadLine(
            f"{name} is an SQLite file, not JSON Lines from `export` (an llm logs.db? "
            f"import it with --from-llm {shlex.quote(path)})"
        )
    handle = sys.stdin if path == "-" else open(path, encoding="utf-8")  # noqa: SIM115
    blobs: list[Any] = []
    lineno = 0
    try:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                loose = parse_line(line)
                if is_blob_line(loose):
                    blobs.append(parse_blob(loose))
                    continue
                event, payload = check(loose, redactor)
            except (Rejected, BadBlob) as e:
                raise _BadLine(f"{name} line {lineno} is not an llm-events event: {e}") from None
            yield event.ts, index, lineno, (event, payload, blobs)
            blobs = []
        if blobs:
            yield "\uffff", index, lineno, (None, b"", blobs)
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
    problems: list[str] = []
    n = import_llm_logs(store, path, problems)
    if problems:
        for line in problems[:20]:
            click.echo(f"not imported: {line}", err=True)
        raise click.ClickException(
            f"{len(problems)} rows of {path} could not be imported (listed above); "
            f"{n} calls were imported"
        )
    if not quiet:
        click.echo(f"imported {n} calls from llm logs {path}")


class _Importer:
    """Appends checked events in chunks; an id already stored (or seen earlier in the input)
    with different content is a conflict: not imported, reported."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.chunk: list[tuple[Any, bytes]] = []
        self.blobs: list[Any] = []
        self.seen: dict[str, bytes] = {}
        self.conflicts: list[str] = []
        self.same = 0

    def add(self, event: Any, payload: bytes, blobs: list[Any]) -> None:
        from ..recording.config import settings
        from ..transfer.incoming import same_content

        if blobs and settings().store_blobs:
            self.blobs.extend(blobs)
        if event is None:
            return
        earlier = self.seen.get(event.id)
        if earlier is not None:
            if same_content(earlier, payload):
                self.same += 1
            else:
                self.conflicts.append(event.id)
            return
        self.seen[event.id] = payload
        self.chunk.append((event, payload))
        if len(self.chunk) >= IMPORT_CHUNK:
            self.commit()

    def commit(self) -> None:
        from ..transfer.incoming import same_content

        if not self.chunk:
            self.store.write_blobs(self.blobs)
            self.blobs = []
            return
        chunk, self.chunk = self.chunk, []
        held, self.blobs = self.blobs, []
        conn = self.store.conn()
        stored: dict[str, str] = {}
        ids = [e.id for e, _ in chunk]
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            stored.update(
                conn.execute(
                    f"SELECT id, payload FROM events WHERE id IN ({','.join('?' * len(part))})",
                    part,
                ).fetchall()
            )
        fresh = []
        for event, payload in chunk:
            if event.id not in stored:
                fresh.append((event, payload))
            elif same_content(stored[event.id], payload):
                self.same += 1
            else:
                self.conflicts.append(event.id)
        if held and fresh:  # written in the transaction of the first new event
            self.store.attach_blobs(fresh[0][0].id, held)
        elif held:  # the events are stored already (an export made without blobs?)
            self.store.write_blobs(held)
        # ignore_existing: another writer may have stored the same ids meanwhile
        self.store.append_encoded(fresh, ignore_existing=True)


def _import_jsonl(store: Any, files: tuple[str, ...], quiet: bool) -> None:
    from ..recording.config import settings

    for f in files:
        if f != "-" and not Path(f).exists():
            raise click.ClickException(f"no such file: {f}")
    before = store.last_seq()
    redactor = settings().redactor
    streams = [_read_events(f, i, redactor) for i, f in enumerate(files)]
    # each file is in commit order; merging by (ts, file, line) keeps each file's order
    merged = streams[0] if len(streams) == 1 else heapq.merge(*streams, key=lambda t: t[:3])
    importer = _Importer(store)
    try:
        for _ts, _i, _line, (event, payload, blobs) in merged:
            importer.add(event, payload, blobs)
        importer.commit()
    except KeyboardInterrupt:
        added = store.last_seq() - before  # the chunk under way is dropped, not half-written
        click.echo(
            f"interrupted: {added} new events were imported (importing again is safe: "
            "stored events are skipped)",
            err=True,
        )
        sys.exit(EXIT_INTERRUPTED)
    except _BadLine as e:
        importer.commit()  # keep what was read before the bad line, as the message says
        added = store.last_seq() - before
        raise click.ClickException(
            f"{e}; {added} events before it were imported (importing again is safe: "
            "stored events are skipped)"
        ) from None
    added = store.last_seq() - before
    if importer.conflicts:
        shown = ", ".join(importer.conflicts[:20])
        more = len(importer.conflicts) - 20
        raise click.ClickException(
            f"{len(importer.conflicts)} events conflict with events of the same id and other "
            f"content, not imported: {shown}{f' and {more} more' if more > 0 else ''}; "
            f"{added} new events were imported"
        )
    if not quiet:
        names = ", ".join(files)
        click.echo(
            f"imported {added} new events from {names} ({importer.same} already in {store.path})"
        )
