"""Commands about the store itself: ``path``, ``verify``, ``rebuild``."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import click

from ..log import salvage
from .common import (
    EXIT_INTERRUPTED,
    db_option,
    db_path,
    friendly_errors,
    open_cli_store,
    progress_bar,
)


@click.command(name="path")
@db_option
def path_command(db: Path | None) -> None:
    """Print the path of the event store that commands use."""
    click.echo(str(db_path(db)))


@click.command(name="verify")
@db_option
@click.option(
    "--expect-head",
    metavar="SEQ:HASH",
    help="Also check that the log still extends this head (one printed by an earlier verify "
    "and kept elsewhere): catches a log rewritten or truncated and re-chained.",
)
@click.option("--quiet", "-q", is_flag=True, help="Print nothing; only the exit status tells.")
@friendly_errors
def verify_command(db: Path | None, expect_head: str | None, quiet: bool) -> None:
    """Check the hash chain: find the first event altered, removed or reordered.

    Reads one consistent snapshot (appends made meanwhile are checked next time), checks
    the append-only triggers are in place, and prints the head (SEQ:HASH of the last event)
    to keep elsewhere: `verify --expect-head SEQ:HASH` later proves the log still extends it.
    Exit status 0 when every check passes, 1 when one does not (its seq is named).
    """
    if expect_head:
        from ..log.chain import parse_head

        try:  # a malformed head is a usage error, before any reading
            parse_head(expect_head)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--expect-head") from None
    store = open_cli_store(db, readonly=True)
    try:
        try:
            total = store.last_seq()  # for the progress bar only
        except sqlite3.DatabaseError:
            total = 0  # a damaged file: verify says what it finds
        with progress_bar(total, "verifying", quiet) as bar:
            result = store.verify(progress=bar.update, expect_head=expect_head)
    finally:
        store.close()
    if result.ok:
        if not quiet:
            click.echo(f"ok: {result.checked} events verified in {db_path(db)}")
            click.echo(f"head: {result.head}")
        return
    if not quiet:
        where = f"at seq {result.first_bad_seq}: " if result.first_bad_seq is not None else ""
        if result.first_bad_seq is not None:
            intact = f" ({result.checked} events before it are intact)"
        elif result.head:
            intact = f" ({result.checked} events intact, head {result.head})"
        else:
            intact = ""
        click.echo(f"FAILED {where}{result.reason}{intact}", err=True)
    sys.exit(1)


#: The projections ``rebuild --only`` takes (``default_projections()``' names; a test keeps
#: them equal), spelled out here so that ``--help`` needs no import of the store.
PROJECTIONS = ("calls", "prompts", "tool_calls", "replay_results", "replays")


def _parse_only(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple:
    from .options import BadOption

    for name in value:
        if name not in PROJECTIONS:
            raise BadOption(
                f"bad --only: {name!r} is not a projection; the projections are "
                f"{', '.join(PROJECTIONS)}"
            )
    return value


@click.command(name="rebuild")
@db_option
@click.option(
    "--only",
    multiple=True,
    metavar="NAME",
    callback=_parse_only,
    help=f"Rebuild only this projection ({', '.join(PROJECTIONS)}); repeatable.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary.")
@friendly_errors
def rebuild_command(db: Path | None, only: tuple[str, ...], quiet: bool) -> None:
    """Drop and re-derive every projection (calls, prompts, ...) from the events."""
    store = open_cli_store(db)
    try:
        total = store.last_seq()
        salvage.drain()
        with progress_bar(total, "rebuilding", quiet) as bar:
            applied = store.rebuild(only=only or None, progress=bar.update)
        odd = salvage.drain()
    except KeyboardInterrupt:
        # each chunk is its own transaction, with the projections' checkpoint in it
        click.echo(
            "interrupted: the rebuild stopped after its last committed chunk; the projections "
            "catch up from there (at close, or when the store is next opened); run rebuild "
            "again to rebuild from zero",
            err=True,
        )
        sys.exit(EXIT_INTERRUPTED)
    finally:
        store.close()
    for event_id, what in odd[:20]:  # events that do not match their schema: read, not fatal
        click.echo(f"warning: event {event_id or '?'}: {what}", err=True)
    if len(odd) > 20:
        click.echo(f"warning: {len(odd) - 20} more events like these", err=True)
    if not quiet:
        names = ", ".join(only) if only else "all projections"
        click.echo(f"rebuilt {names} from {applied} events")
