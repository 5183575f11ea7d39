"""Options shared by the listing commands (``calls``, ``search``, ``stats``, ``tail``, ``export``).

One decorator so ``-n``, ``--since``, ``--model``, ``--backend``, ``--status``, ``--tag``,
``--json`` and ``--full`` are spelled and parsed the same way everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import click


class BadOption(click.ClickException):
    """A bad option value: one line (no usage block, unlike click's UsageError), exit 2."""

    exit_code = 2


#: Largest ``-n``: SQLite's LIMIT takes a signed 64-bit integer.
LIMIT_MAX = 2**63 - 1


def parse_since(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """The ``--since`` / ``--until`` callback; ``replay`` shares it, so the two read times
    and refuse them alike (one line, exit 2)."""
    if value is None:
        return None
    from ..log.queries import QueryError, parse_time

    try:
        return parse_time(value)
    except QueryError as e:
        raise BadOption(f"bad --{param.name}: {e}") from None


def finite_number(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """A callback after click's FloatRange, which lets ``nan`` through (it compares false
    with every bound) and ``inf`` past an open upper end (``time.sleep(inf)`` overflows)."""
    if value is not None and not math.isfinite(value):
        raise BadOption(f"bad --{param.name.replace('_', '-')}: {value} is not a finite number")
    return value


#: The ``--since`` / ``--until`` help every command shares.
SINCE_HELP = "Only calls started since WHEN: 30m, 2h, 3d, 1w ago or an ISO date/time (local)."
UNTIL_HELP = "Only calls started before WHEN (same forms as --since)."


def include_replays_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--include-replays``: calls that replays made are left out unless asked for."""
    return click.option(
        "--include-replays",
        is_flag=True,
        help="Also the calls that replays made (left out by default: they are not your traffic).",
    )(fn)


def _parse_limit(ctx: click.Context, param: click.Parameter, value: str | int | None) -> int | None:
    if value is None:
        return None
    try:
        n = int(value)
    except ValueError:
        raise BadOption(f"bad -n/--limit: {value!r} is not a whole number") from None
    if not 0 <= n <= LIMIT_MAX:
        raise BadOption(f"bad -n/--limit: {value} is out of range (0 to {LIMIT_MAX}; 0: all)")
    return n


def call_filter_options(
    *,
    limit: int | None = 50,
    json_help: str | None = "Print JSON (call objects carry call_id).",
    limit_help: str = "How many to show (0: all).",
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add the filter options; the command receives them as keyword arguments."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        opts = [
            click.option(
                "-n",
                "--limit",
                "limit",
                type=click.STRING,  # parsed by the callback: one line, exit 2, for any value
                callback=_parse_limit,
                metavar="N",
                default=limit,
                show_default=limit is not None,
                help=limit_help,
            ),
            click.option(
                "--since",
                callback=parse_since,
                metavar="WHEN",
                help=SINCE_HELP,
            ),
            click.option(
                "--until",
                callback=parse_since,
                metavar="WHEN",
                help=UNTIL_HELP,
            ),
            click.option("--model", "-m", help="Only this model (globs like 'gpt-*' work)."),
            click.option("--backend", "-b", help="Only this backend (globs work)."),
            click.option(
                "--status",
                "-s",
                type=click.Choice(["ok", "error", "running"]),
                help="Only calls with this status.",
            ),
            click.option(
                "--tag", "-t", "tags", multiple=True, help="Only calls with this tag (repeatable)."
            ),
        ]
        if json_help is not None:  # None: the command's output is JSON already (export)
            opts.append(click.option("--json", "as_json", is_flag=True, help=json_help))
        for opt in reversed(opts):
            fn = opt(fn)
        return fn

    return decorate


def build_filter(
    since: str | None = None,
    until: str | None = None,
    model: str | None = None,
    backend: str | None = None,
    status: str | None = None,
    tags: tuple[str, ...] = (),
    include_replays: bool = True,
) -> Any:
    from ..log.queries import CallFilter

    return CallFilter(
        since=since,
        until=until,
        model=model,
        backend=backend,
        status=status,
        tags=list(tags),
        include_replays=include_replays,
    )


def full_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--full", is_flag=True, help="Show everything: full ids and untruncated text."
    )(fn)
