"""``llm-events browse``: Datasette on the store, read-only, on 127.0.0.1."""

from __future__ import annotations

import os
import shlex
import socket
import sys
from pathlib import Path

import click

from .common import db_option, db_path, friendly_errors, open_cli_store


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


@click.command(name="browse")
@db_option
@click.option(
    "--port",
    "-p",
    type=click.IntRange(0, 65535),
    default=8001,
    show_default=True,
    help="Port on 127.0.0.1 (0: any free port).",
)
@click.option("--open", "-o", "open_browser", is_flag=True, help="Open a web browser on it.")
@click.option(
    "--print-command", is_flag=True, help="Print the datasette command instead of running it."
)
@friendly_errors
def browse_command(db: Path | None, port: int, open_browser: bool, print_command: bool) -> None:
    """Browse the store in Datasette (read-only, on 127.0.0.1).

    Tables: calls (one row per call), events (the log; views events_<type> show each
    type's fields as columns), prompts (searchable), replay_results.  Canned queries:
    failed calls, calls that retried or fell back, a call's timeline, the slowest calls,
    cost per model per day, replay regressions.

    \b
    Examples:
      llm-events browse --open
      llm-events browse --port 8080
    """
    from ..browse.datasette import (
        database_name,
        datasette_command,
        ensure_views,
        metadata_fd,
        private_dir,
        write_metadata,
    )
    from ..log.fts import catch_up
    from ..log.lag import upgrade_note

    path = db_path(db).resolve()
    store = open_cli_store(db, readonly=True)  # one clear error for a missing or foreign file
    store.close()
    catch_up(path)  # the search index runs a little behind the answers (llm_events.log.fts)
    added = ensure_views(path)
    if added:
        click.echo(f"brought views {', '.join(added)} up to date in {path}", err=True)
    old = _stale(path)
    if old and not print_command:
        click.echo(
            f"{upgrade_note(path, old)}: in the background, while Datasette serves "
            "(those tables fill in as it runs)",
            err=True,
        )
    if port == 0:
        port = _free_port()
    elif not print_command and _port_in_use(port):
        raise click.ClickException(f"port {port} on 127.0.0.1 is in use: pass --port N (or 0)")
    fd = None if print_command else metadata_fd(path)
    # in memory when Datasette starts here; a private new directory for a printed command
    metadata = Path(f"/dev/fd/{fd}") if fd is not None else write_metadata(path, private_dir())
    cmd = datasette_command(path, metadata, port=port, open_browser=open_browser)
    if print_command:
        click.echo(shlex.join(cmd))
        return
    click.echo(
        f"Browsing {path} read-only at http://127.0.0.1:{port}/{database_name(path)} "
        "(Ctrl-C to stop)",
        err=True,
    )
    sys.stderr.flush()
    sys.stdout.flush()
    from ..log.lag import follow

    # projections and the search index follow the log while Datasette serves (a child that
    # exits with this process): rows of writers killed before catching up appear
    follow(path, os.getpid())
    # become Datasette: one process, so Ctrl-C and kill reach the server directly
    os.execv(cmd[0], cmd)


def _stale(path: Path) -> list[str]:
    import sqlite3

    from ..log.lag import stale

    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return stale(conn)
    finally:
        conn.close()
