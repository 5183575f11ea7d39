"""``llm-events replay``: re-run recorded calls against another client, as a CI gate.

A thin layer over :func:`replay.run`: options become a selection, the report is printed
(a table, ``--json``, ``--markdown FILE``), and the exit status says whether changed plus
error answers stayed within ``--max-changed``: 0 within, 1 over, 2 for usage or store
errors, 130 when interrupted (``replay_finished`` is recorded with status interrupted).
"""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from .common import db_hint, db_option, db_path
from .options import SINCE_HELP, UNTIL_HELP, finite_number, full_option, parse_since

EXIT_OVER = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class ReplayUsageError(click.ClickException):
    """One line on stderr, exit status 2 (usage and store errors, as the CI gate promises)."""

    exit_code = EXIT_USAGE


class _Bar:
    """A progress bar on stderr, created once the total is known (terminals only)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None
        self.shown = 0

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            self.bar = click.progressbar(length=max(total, 1), label="replaying", file=sys.stderr)
            self.bar.__enter__()
        self.bar.update(done - self.shown)
        self.shown = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops a replay the way Ctrl-C does (recorded as interrupted)."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (embedded use)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _emit(report: Any, as_json: bool, markdown: Path | None, full: bool = False) -> None:
    from .format import terminal_width

    if as_json:
        click.echo(report.to_json())
    else:
        click.echo(report.to_text(width=terminal_width(), full=full))
    if markdown is not None:
        try:
            markdown.write_text(report.to_markdown(), encoding="utf-8")
        except OSError as e:
            raise ReplayUsageError(f"cannot write {markdown}: {e.strerror or e}") from None
        if not as_json:
            click.echo(f"\nMarkdown report written to {markdown}")


@click.command(name="replay")
@db_option
@click.option(
    "--against",
    metavar="SPEC",
    help="The client to re-run the calls with: echo, openai:MODEL, llm:MODEL, "
    "recorded:PATH, package.module:attr ... (a resumed replay reuses its own).",
)
@click.option(
    "--to-url",
    metavar="URL",
    help="Instead of --against: re-send each captured call's exact recorded request body "
    "(proxy or transport) to this upstream, e.g. https://staging.example/v1.",
)
@click.option("--model", "-m", help="Only calls answered by this model; globs work ('gpt-*').")
@click.option(
    "--backend", "-b", help="Only calls answered by this backend (echo, openai ...); globs work."
)
@click.option(
    "--tag",
    "-t",
    "tags",
    multiple=True,
    help="Only calls with this tag (call or prompt tag); repeatable.",
)
@click.option(
    "--status",
    "-s",
    type=click.Choice(["ok", "error", "all"]),
    default="ok",
    show_default=True,
    help="Only calls that ended with this status. The default, ok, replays the answered calls: "
    "a call that failed when recorded has no answer to compare (all: every call).",
)
@click.option("--since", callback=parse_since, metavar="WHEN", help=SINCE_HELP)
@click.option("--until", callback=parse_since, metavar="WHEN", help=UNTIL_HELP)
@click.option("--id", "ids", multiple=True, metavar="CALL_ID", help="Only this call; repeatable.")
@click.option(
    "-n", "--limit", type=click.IntRange(min=0), help="At most this many calls (oldest first)."
)
@click.option("--sample", type=click.IntRange(min=0), help="A random sample of this many calls.")
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of --sample (same seed, same calls).",
)
@click.option(
    "--include-replays",
    is_flag=True,
    help="Also select calls that earlier replays made (left out by default).",
)
@click.option(
    "--compare",
    "compare",
    metavar="NAME",
    help="How answers are compared: exact (default), normalized (whitespace and case), "
    "json (parsed value, key order ignored), similarity (see --threshold), tools (the "
    "same functions called with JSON-equal arguments), or package.module:function "
    "returning a verdict and score.",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1),
    callback=finite_number,
    default=0.9,
    show_default=True,
    help="Similarity at or above which --compare similarity says same.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Calls in flight at once.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    callback=finite_number,
    metavar="SECONDS",
    help="Give up on a call after this long: its verdict is error and the run goes on.",
)
@click.option(
    "--max-changed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Exit 1 when more than this many answers are changed or error.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--markdown",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Also write the report as Markdown (a pull-request comment) to FILE.",
)
@click.option(
    "--resume",
    metavar="REPLAY_ID",
    help="Continue an interrupted replay: same selection and comparator; calls it already "
    "compared are skipped.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@full_option
def replay_command(
    db: Path | None,
    against: str | None,
    to_url: str | None,
    model: str | None,
    backend: str | None,
    tags: tuple[str, ...],
    status: str | None,
    since: str | None,
    until: str | None,
    ids: tuple[str, ...],
    limit: int | None,
    sample: int | None,
    seed: int,
    include_replays: bool,
    compare: str | None,
    threshold: float,
    concurrency: int,
    timeout: float | None,
    max_changed: int,
    as_json: bool,
    markdown: Path | None,
    resume: str | None,
    quiet: bool,
    full: bool,
) -> None:
    """Re-run recorded calls against another client and compare the answers.

    Each recorded call is rebuilt from its prompt_built event and sent to --against; the
    new call is recorded with the original as its parent, then compared (verdict same,
    changed or error) into replay_results.

    By default only calls that were answered when recorded are replayed (--status ok): a
    call that failed then has no answer to compare, so it would count as changed whenever
    the candidate answers it.  --status all replays those too.

    Exit status: 0 when changed + error answers are within --max-changed, 1 when over,
    2 on usage or store errors, 130 when interrupted (resume with --resume REPLAY_ID).
    The report cuts answers to the terminal's width; --full shows them whole.

    \b
    Examples:
      llm-events replay --against openai:gpt-4o-mini --model gpt-4o --sample 200
      llm-events replay --against mypkg.clients:candidate --compare json --json
      llm-events replay --resume 0190f3c2-... --max-changed 5
      llm-events replay --to-url https://staging.example/v1 --tag checkout
    """
    import replay
    from replay import ReplayInterrupted, Selection, SelectionError

    from ..log.store import StoreError

    status_given = click.get_current_context().get_parameter_source("status")
    if resume is not None and status_given is click.core.ParameterSource.DEFAULT:
        status = None  # a resumed run keeps its own
    filters = {
        "model": model,
        "backend": backend,
        "tags": tags,
        "status": None if status == "all" else status,
        "since": since,
        "until": until,
        "ids": ids,
        "limit": limit,
        "sample": sample,
    }
    given = [k for k, v in filters.items() if v not in (None, ())]
    if status == "all" and resume is not None:
        given.insert(0, "status")
    if resume is not None and (given or include_replays):
        raise ReplayUsageError(
            f"--resume reuses the replay's own selection; drop --{given[0] if given else 'include-replays'}"
        )
    if to_url is not None:
        if against:
            raise ReplayUsageError("give --against SPEC or --to-url URL, not both")
        from ..capture.resend import ResendClient

        against = ResendClient(to_url)  # type: ignore[assignment]
    if resume is None and not against:
        raise ReplayUsageError(
            "missing --against SPEC: the client to replay against (e.g. echo, openai:gpt-4o-mini)"
        )
    path = db_path(db)
    if not path.exists():
        raise ReplayUsageError(f"no event store at {path} (record some calls first, or pass --db)")
    bar = _Bar(enabled=not quiet and sys.stderr.isatty())
    try:
        from ..log.store import EventStore

        store = EventStore(path)
        click.get_current_context().call_on_close(store.close)
        select = (
            None
            if resume is not None
            else Selection(**filters, seed=seed, include_replays=include_replays)
        )
        with _sigterm_as_interrupt():
            try:
                report = replay.run(
                    store,
                    against,
                    select=select,
                    compare=compare,
                    concurrency=concurrency,
                    timeout=timeout,
                    threshold=threshold,
                    resume=resume,
                    progress=bar,
                )
            finally:
                bar.close()
    except ReplayInterrupted as stop:
        report = stop.report
        _emit(report, as_json, markdown, full)
        click.echo(
            f"interrupted: {report.compared} of {report.total} calls compared; continue with "
            f"`llm-events replay --resume {report.replay_id}{db_hint(db)}`",
            err=True,
        )
        sys.exit(EXIT_INTERRUPTED)
    except (SelectionError, StoreError, sqlite3.DatabaseError, ValueError, TypeError, OSError) as e:
        raise ReplayUsageError(str(e).splitlines()[0] if str(e) else type(e).__name__) from None
    _emit(report, as_json, markdown, full)
    if report.status == "empty":
        return
    code = report.exit_code(max_changed)
    if code:
        click.echo(
            f"over the limit: {report.counts['changed']} changed + {report.counts['error']} "
            f"error > --max-changed {max_changed}",
            err=True,
        )
    sys.exit(code)
