"""``llm-events prompt``: send one prompt through a client, recorded, retrying what is retryable."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from .common import db_option, friendly_errors
from .options import finite_number

#: Exit status after Ctrl-C (128 + SIGINT), as ``llm-events replay`` uses.
EXIT_INTERRUPTED = 130

#: Errors worth another attempt when they come from clients that are not ours.
RETRYABLE_BUILTINS: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError)


def parse_value(text: str) -> Any:
    """``-o`` values: JSON when they parse (``0.2``, ``true``, ``["a"]``), else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


class _StderrLog:
    """What ``with_retry`` needs of a logger: retry notices go to stderr, not the answer."""

    def warning(self, message: str, *args: Any) -> None:
        click.echo(f"retrying: {message % args}", err=True)


#: ``-o`` names that configure the client itself; every other ``-o`` is a model parameter
#: (temperature, max_tokens, ...), sent with each request and recorded with each attempt.
CLIENT_OPTIONS = frozenset({"base_url", "api_key", "timeout", "connect_timeout", "log_prompts"})


def _client(spec: str | None, options: dict[str, Any]) -> Any:
    import os

    from ..interface.settings import client_from_settings
    from ..interface.specs import client_from_spec

    if not spec and not options:
        return client_from_settings()
    spec = spec or os.environ.get("LLM_BACKEND") or "openai"
    client_options = {k: v for k, v in options.items() if k in CLIENT_OPTIONS}
    params = {k: v for k, v in options.items() if k not in CLIENT_OPTIONS}
    if params:
        client_options["params"] = params
    try:
        return client_from_spec(spec, **client_options)
    except ValueError as e:
        if not str(e).startswith("unknown client spec"):
            raise
        from .options import BadOption

        raise BadOption(str(e)) from None  # exit 2, as `replay --against` says it
    except TypeError as e:
        if "unexpected keyword argument" not in str(e):
            raise
        name = str(e).rsplit(" ", 1)[-1].strip("'")
        raise click.ClickException(
            f"the {spec} client takes no option {name!r} (client options: "
            f"{', '.join(sorted(CLIENT_OPTIONS))}; any other -o is a model parameter)"
        ) from None


def _call_row(call_id: str | None) -> dict[str, Any]:
    """The recorded call's summary (backend, model, attempts, tokens, cost)."""
    if not call_id:
        return {}
    from ..recording.config import open_store

    store = open_store()
    store.catch_up()  # ``calls`` follows the log: read the call just made
    cur = store.conn().execute(
        "SELECT backend, model, status, attempts, retries, fallbacks, input_tokens, "
        "output_tokens, tokens_estimated, cost, latency_ms FROM calls WHERE call_id = ?",
        (call_id,),
    )
    row = cur.fetchone()
    if row is None:
        return {}
    out = dict(zip([d[0] for d in cur.description], row, strict=True))
    if out.get("tokens_estimated") is not None:  # a flag, as `calls --json` prints it
        out["tokens_estimated"] = bool(out["tokens_estimated"])
    return out


@click.command(
    name="prompt", short_help="Send one prompt to a model (any client spec) and record the call."
)
@click.argument("text")
@click.option(
    "-m",
    "--model",
    "spec",
    metavar="SPEC",
    help="Client spec: openai:gpt-4o-mini, anthropic:MODEL, ollama:MODEL, vllm:MODEL, "
    "llm:MODEL, echo, package.module:attr. Default: the configured backend "
    "(LLM_BACKEND, default openai).",
)
@click.option("-s", "--system", default="", help="System prompt.")
@click.option(
    "-o",
    "--option",
    "options",
    nargs=2,
    multiple=True,
    metavar="KEY VALUE",
    help="A model parameter (temperature, max_tokens, top_p, stop, seed, json ...) or a "
    "client option (base_url, timeout ...); repeatable. Values are read as JSON when they can be.",
)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="Retries of retryable errors (429, 5xx, timeouts, connection errors).",
)
@click.option(
    "--retry-delay",
    type=click.FloatRange(min=0),
    callback=finite_number,
    default=1.0,
    show_default=True,
    help="Seconds before the first retry, doubling after; a server's Retry-After wins if longer.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the answer and its call as JSON.")
@click.option(
    "--stream",
    is_flag=True,
    help="Print the answer as it arrives. Retries happen only before the first text.",
)
@db_option
@friendly_errors
def prompt_command(
    text: str,
    spec: str | None,
    system: str,
    options: tuple[tuple[str, str], ...],
    retries: int,
    retry_delay: float,
    as_json: bool,
    stream: bool,
    db: Path | None,
) -> None:
    """Send TEXT to a model, record the call, print the answer ('-' reads TEXT from stdin).

    Every attempt is recorded: a 429 followed by a success shows as a failed attempt, a
    scheduled retry and the answer, all under one call id.

    \b
    Examples:
      llm-events prompt "Name three primes" -m openai:gpt-4o-mini -o temperature 0
      llm-events prompt "hi" -m ollama:llama3.2 -s "Be brief." --json
      echo "a b c a b" | llm-events prompt - -m llm:markov
      llm-events prompt "Tell me a story" -m ollama:llama3.2 --stream
    """
    from ..backends.errors import RetryableBackendError
    from ..interface.context_builder import ContextBuilder
    from ..recording.config import configure

    if stream and as_json:
        raise click.UsageError("--stream prints text as it arrives and --json at the end: use one")
    if text == "-":
        text = sys.stdin.read()
    if db is not None:
        configure(db=db)
    client = _client(spec, {key: parse_value(value) for key, value in options})
    builder = ContextBuilder(system=system)
    prompt = builder.build_prompt(text)
    call = _Call(
        client,
        prompt,
        builder,
        retries + 1,
        retry_delay,
        (RetryableBackendError, *RETRYABLE_BUILTINS),
    )
    try:
        if stream:
            _stream_answer(call)
        else:
            _print_answer(call, as_json)
    except KeyboardInterrupt as exc:
        call_id = getattr(exc, "llm_events_call_id", None)
        where = f" (recorded as call {call_id})" if call_id else ""
        click.echo(f"interrupted{where}", err=True)
        sys.exit(EXIT_INTERRUPTED)


@dataclass
class _Call:
    """The call ``prompt`` makes: the client, the built prompt, and how it retries."""

    client: Any
    prompt: Any
    builder: Any
    attempts: int
    delay: float
    retryable: tuple[type[BaseException], ...]


def _print_answer(call: _Call, as_json: bool) -> None:
    """The answer once it is complete (as text, or as JSON with its call's summary)."""
    from ..interface.retry import with_retry

    try:
        result = with_retry(
            lambda: call.client.generate(call.prompt, context_builder=call.builder),
            attempts=call.attempts,
            delay=call.delay,
            exc=call.retryable,
            logger=_StderrLog(),  # type: ignore[arg-type]
        )
    except (ValueError, click.ClickException):
        raise
    except Exception as exc:
        _fail(exc, as_json)
        return
    if as_json:
        summary = _call_row(result.call_id)
        click.echo(
            json.dumps(
                {"call_id": result.call_id, "text": result.text, **summary},
                ensure_ascii=False,
                indent=2,
            )
        )
    else:
        click.echo(result.text)


def _stream_answer(call: _Call) -> None:
    """Print the answer as it arrives (one recorded call).  A retry after text was printed
    would print the answer twice, so only errors before the first text are retried."""
    import asyncio

    from ..interface.retry import with_retry_async

    shown = False

    async def once() -> None:
        nonlocal shown
        async for piece in call.client.async_generate(call.prompt, context_builder=call.builder):
            if piece:
                shown = True
                click.echo(piece, nl=False)  # flushed: the reader sees it now

    async def run() -> None:
        await with_retry_async(
            once,
            attempts=call.attempts,
            delay=call.delay,
            exc=call.retryable,
            logger=_StderrLog(),  # type: ignore[arg-type]
            retry_if=lambda _error: not shown,
        )

    try:
        asyncio.run(run())
    except (ValueError, click.ClickException):
        raise
    except KeyboardInterrupt:
        if shown:
            click.echo()
        raise
    except Exception as exc:
        if shown:
            click.echo()
        _fail(exc, False)
        return
    click.echo()


def _fail(exc: BaseException, as_json: bool) -> None:
    call_id = getattr(exc, "llm_events_call_id", None)
    message = " ".join(str(exc).split()) or type(exc).__name__
    if as_json:
        click.echo(
            json.dumps(
                {
                    "call_id": call_id,
                    "error": message,
                    "error_type": type(exc).__name__,
                    "status_code": getattr(exc, "status_code", None),
                    "retryable": getattr(exc, "retryable", None),
                },
                indent=2,
            )
        )
    where = f" (recorded as call {call_id})" if call_id else ""
    raise click.ClickException(f"{message}{where}")
