"""What every command shares: the lazy group, ``--db``, opening the store, one-line errors."""

from __future__ import annotations

import functools
import importlib
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

#: Exit status after Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130


class LazyGroup(click.Group):
    """A group whose commands are imported only when they are run or listed."""

    def __init__(self, *args: Any, commands: dict[str, str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.lazy_commands) + [
            c for c in super().list_commands(ctx) if c not in self.lazy_commands
        ]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = self.lazy_commands.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module_name, _, attr = target.partition(":")
        module = importlib.import_module(f"llm_events.cli.{module_name}")
        return getattr(module, attr)

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        """As click's, but a usage error is one line (``Error: ... (see 'CMD --help')``)
        and exit status 2, like every other error here, instead of click's usage block."""
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as e:
            where = e.ctx.command_path if e.ctx is not None else "llm-events"
            message = e.format_message().rstrip(".")
            click.echo(f"Error: {message}; see '{where} --help'", err=True)
            sys.exit(e.exit_code)
        except click.ClickException as e:
            e.show()
            sys.exit(e.exit_code)
        except click.Abort as e:
            if isinstance(e.__context__, KeyboardInterrupt):  # Ctrl-C: the shell's 128 + SIGINT
                click.echo("interrupted", err=True)
                sys.exit(EXIT_INTERRUPTED)
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(limit=80)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def db_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--db PATH`` (env ``LLM_EVENTS_DB``): the store a command works on."""
    return click.option(
        "--db",
        "db",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="LLM_EVENTS_DB",
        help="The event store (SQLite file). Default: $LLM_EVENTS_DB, else `llm-events path`.",
    )(fn)


def db_path(db: Path | None) -> Path:
    from ..recording.config import resolve_db_path

    return resolve_db_path(db)


def db_hint(db: Path | None) -> str:
    """`` --db PATH`` for a command line printed for the user to run next (quoted for the
    shell: a path with spaces stays one argument) when --db was given; empty when the store
    is the default or comes from $LLM_EVENTS_DB (which the next command sees too)."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        given = ctx.get_parameter_source("db") == click.core.ParameterSource.COMMANDLINE
        given = given or (ctx.parent is not None and ctx.parent.params.get("db") is not None)
        if not given:
            return ""
    if db is None:
        return ""
    import shlex

    return f" --db {shlex.quote(str(db_path(db)))}"


def open_cli_store(db: Path | None, *, readonly: bool = False, must_exist: bool = True) -> Any:
    """Open the store for a command; a missing file is an error unless ``must_exist=False``."""
    from ..log.store import EventStore

    path = db_path(db)
    if must_exist and not path.exists():
        raise click.ClickException(
            f"no event store at {path} (run `llm-events demo` to create one, or pass --db)"
        )
    if not must_exist:
        path.parent.mkdir(parents=True, exist_ok=True)
    return EventStore(path, readonly=readonly)


def friendly_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn expected failures into one clear line and exit status 1, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (click.ClickException, BrokenPipeError):
            raise  # a closed pipe (`| head`): click exits quietly, as other tools do
        except (sqlite3.DatabaseError, OSError, ValueError) as e:
            raise click.ClickException(str(e)) from None
        except Exception as e:
            # imported only on failure: reading commands never load the store (fast start-up)
            from ..log.redaction import UnstorableValueError
            from ..log.store import StoreError

            if isinstance(e, (StoreError, UnstorableValueError)):
                raise click.ClickException(str(e)) from None
            raise

    return wrapper


class _NoBar:
    def update(self, n: int) -> None:
        return None

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def progress_bar(total: int, label: str, quiet: bool = False):  # type: ignore[no-untyped-def]
    """A click progress bar on a terminal (stderr), nothing otherwise."""
    if quiet or total < 50_000 or not sys.stderr.isatty():
        return _NoBar()
    return click.progressbar(length=total, label=label, file=sys.stderr)
