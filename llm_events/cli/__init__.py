"""The ``llm-events`` command line: a thin, lazily loaded layer over the Python API.

Each command lives in a module grouped by concern; :data:`COMMANDS` maps names to
``module:attr`` so that running one command imports only what it needs (fast start-up).
"""

from __future__ import annotations

import click

from .common import LazyGroup

#: command name -> "module:attr" (relative to llm_events.cli), in --help order.
COMMANDS: dict[str, str] = {
    "path": "store_commands:path_command",
    "demo": "demo:demo_command",
    "prompt": "prompt_command:prompt_command",
    "calls": "listing:calls_command",
    "show": "show_command:show_command",
    "tail": "tail_command:tail_command",
    "search": "listing:search_command",
    "stats": "listing:stats_command",
    "verify": "store_commands:verify_command",
    "rebuild": "store_commands:rebuild_command",
    "replay": "replay_command:replay_command",
    "replays": "replays_command:replays_command",
    "export": "transfer:export_command",
    "import": "transfer:import_command",
    "browse": "browse:browse_command",
    "proxy": "proxy_command:proxy_command",
}


@click.group(
    cls=LazyGroup, commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.version_option(package_name="llm-events", prog_name="llm-events")
@click.option(
    "--db",
    "db",
    metavar="FILE",
    default=None,
    help="The event store for the command that follows (same as its own --db).",
)
def main(db: str | None) -> None:
    """Record LLM traffic as an immutable event log, replay it, browse it.

    Every command takes --db PATH (or the LLM_EVENTS_DB environment variable); the default
    store is the file `llm-events path` prints. `llm-events --db FILE COMMAND` works too.
    """
    if db is not None:  # read by the command's own --db (its envvar) unless it is given
        import os

        before = os.environ.get("LLM_EVENTS_DB")
        os.environ["LLM_EVENTS_DB"] = db

        def restore() -> None:  # for callers that run commands in-process
            if before is None:
                os.environ.pop("LLM_EVENTS_DB", None)
            else:
                os.environ["LLM_EVENTS_DB"] = before

        click.get_current_context().call_on_close(restore)
