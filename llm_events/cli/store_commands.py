"""Commands about the store itself: ``path``, ``verify``, ``rebuild``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..log import salvage
from .common import db_option, db_path, friendly_errors, open_cli_store, progress_bar


@click.command(name="path")
@db_option
def path_command(db: Path | None) -> None:
    """Print the path of the event store that commands use."""
    click.echo(str(db_path(db)))


@click.command(name="verify")
@db_option
@click.option("--quiet", "-q", is_flag=True, help="Print nothing; only the exit status tells.")
@friendly_errors
def verify_command(db: Path | None, quiet: bool) -> None:
    """Check the hash chain: find the first event altered, removed or reordered.

    Exit status 0 when every event is intact, 1 when one is not (its seq is named).
    """
    store = open_cli_store(db, readonly=True)
    try:
        total = store.last_seq()
        with progress_bar(total, "verifying", quiet) as bar:
            result = store.verify(progress=bar.update)
    finally:
        store.close()
    if result.ok:
        if not quiet:
            click.echo(f"ok: {result.checked} events verified in {db_path(db)}")
        return
    if not quiet:
        click.echo(
            f"FAILED at seq {result.first_bad_seq}: {result.reason} "
            f"({result.checked} events before it are intact)",
            err=True,
        )
    sys.exit(1)


@click.command(name="rebuild")
@db_option
@click.option(
    "--only", multiple=True, help="Rebuild only this projection (calls, prompts, replay_results)."
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary.")
@friendly_errors
def rebuild_command(db: Path | None, only: tuple[str, ...], quiet: bool) -> None:
    """Drop and re-derive every projection (calls, prompts, ...) from the events."""
    store = open_cli_store(db)
    try:
        known = {p.name for p in store.projections}
        unknown = set(only) - known
        if unknown:
            raise click.ClickException(
                f"unknown projection {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}"
            )
        total = store.last_seq()
        salvage.drain()
        with progress_bar(total, "rebuilding", quiet) as bar:
            applied = store.rebuild(only=only or None, progress=bar.update)
        odd = salvage.drain()
    finally:
        store.close()
    for event_id, what in odd[:20]:  # events that do not match their schema: read, not fatal
        click.echo(f"warning: event {event_id or '?'}: {what}", err=True)
    if len(odd) > 20:
        click.echo(f"warning: {len(odd) - 20} more events like these", err=True)
    if not quiet:
        names = ", ".join(only) if only else "all projections"
        click.echo(f"rebuilt {names} from {applied} events")
