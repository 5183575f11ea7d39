"""Commands about the store itself: ``path``, ``verify``, ``rebuild``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

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


#: The projections ``rebuild --only`` takes (``default_projections()``' names; a test keeps
#: them equal), spelled out here so that ``--help`` needs no import of the store.
PROJECTIONS = ("calls", "prompts", "replay_results", "replays")


@click.command(name="rebuild")
@db_option
@click.option(
    "--only",
    multiple=True,
    type=click.Choice(PROJECTIONS),
    help="Rebuild only this projection; repeatable.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary.")
@friendly_errors
def rebuild_command(db: Path | None, only: tuple[str, ...], quiet: bool) -> None:
    """Drop and re-derive every projection (calls, prompts, ...) from the events."""
    store = open_cli_store(db)
    try:
        total = store.last_seq()
        with progress_bar(total, "rebuilding", quiet) as bar:
            applied = store.rebuild(only=only or None, progress=bar.update)
    finally:
        store.close()
    if not quiet:
        names = ", ".join(only) if only else "all projections"
        click.echo(f"rebuilt {names} from {applied} events")
