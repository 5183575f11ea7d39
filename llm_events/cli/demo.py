"""``llm-events demo``: record a small offline session and say what was recorded where."""

from __future__ import annotations

from pathlib import Path

import click

from .common import db_hint, db_option, db_path, friendly_errors, open_cli_store


@click.command(name="demo")
@db_option
@friendly_errors
def demo_command(db: Path | None) -> None:
    """Record a realistic offline session: retries, a fallback and a failed call.

    Prompts are built by a ContextBuilder over product notes and sent through a router over
    a simulated remote model (which fails with 503 now and then) and a local one. Nothing
    leaves this machine.
    """
    from .demo_session import run_demo

    path = db_path(db)
    store = open_cli_store(db, must_exist=False)
    try:
        report = run_demo(store)
    finally:
        store.close()
    click.echo(
        f"Recorded {len(report.call_ids)} calls ({report.ok} ok, {report.errors} failed) "
        f"as {report.events} events in {path}"
    )
    click.echo(
        f"  attempts: {report.attempts}   retries: {report.retries}   fallbacks: {report.fallbacks}"
    )
    db_arg = db_hint(db)
    click.echo("")
    click.echo("Look at it:")
    click.echo(f"  llm-events calls{db_arg}")
    if report.fallback_call_id:
        click.echo(f"  llm-events show {report.fallback_call_id[:18]}{db_arg}    # a fallback")
    if report.failed_call_id:
        click.echo(f"  llm-events show {report.failed_call_id[:18]}{db_arg}    # a failed call")
    click.echo(f"  llm-events browse{db_arg}")
