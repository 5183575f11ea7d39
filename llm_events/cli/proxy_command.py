"""``llm-events proxy``: record any application's LLM traffic with no code change."""

from __future__ import annotations

import os
from pathlib import Path

import click

from .common import db_option, friendly_errors, open_cli_store
from .options import BadOption


@click.command(name="proxy")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    "-p",
    type=click.IntRange(0, 65535),
    default=8787,
    show_default=True,
    help="Port (0: any free port).",
)
@click.option(
    "--upstream",
    "-u",
    "upstreams",
    multiple=True,
    metavar="NAME=URL",
    help="Add or override an upstream (built in: openai, anthropic, ollama); /NAME/... "
    "reaches it. Repeatable.",
)
@db_option
@click.option(
    "--token",
    envvar="LLM_EVENTS_PROXY_TOKEN",
    help="Require this value in clients' X-LLM-Events-Token header (needed to listen on "
    "anything but loopback). Env: LLM_EVENTS_PROXY_TOKEN.",
)
@click.option(
    "--inject-key",
    "inject",
    multiple=True,
    metavar="NAME=ENV",
    help="Send the key in environment variable ENV to upstream NAME (applications then "
    "hold no key). Repeatable.",
)
@click.option(
    "--max-body-bytes",
    type=click.IntRange(min=1024),
    default=4 * 1024 * 1024,
    show_default=True,
    help="Bodies larger than this are forwarded whole and recorded truncated (marked).",
)
@click.option(
    "--max-request-bytes",
    type=click.IntRange(min=1024),
    default=64 * 1024 * 1024,
    show_default=True,
    help="Requests with a larger body are answered 413 (in the provider's error format) and "
    "not sent: the proxy holds each request whole before sending it on.",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=0, min_open=True),
    default=600.0,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for an upstream's answer to begin, and between two pieces of "
    "it; past it the client gets a 504 in the provider's error format.",
)
@click.option(
    "--body-timeout",
    "body_timeout_s",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for the next piece of a client's request body; past it the "
    "client gets a 408 and nothing is sent upstream.",
)
@click.option(
    "--workers",
    "-w",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Worker processes serving the port, all recording into the same store (one "
    "process carries a few hundred recorded requests a second); 0: one per CPU.",
)
@click.option("--no-record", is_flag=True, help="Forward only, record nothing (to measure).")
@click.option("--quiet", "-q", is_flag=True, help="No access log lines.")
@friendly_errors
def proxy_command(
    host: str,
    port: int,
    upstreams: tuple[str, ...],
    db: Path | None,
    token: str | None,
    inject: tuple[str, ...],
    max_body_bytes: int,
    max_request_bytes: int,
    timeout_s: float,
    body_timeout_s: float,
    workers: int,
    no_record: bool,
    quiet: bool,
) -> None:
    """Run a recording reverse proxy for the OpenAI, Anthropic and Ollama APIs.

    Point an unchanged application at it and every call is recorded, streamed or not:
    OpenAI paths (/v1/chat/completions, /v1/responses, /v1/embeddings, ...) go to openai,
    /v1/messages to anthropic, /api/... to ollama, /NAME/... to an --upstream NAME. Other
    paths are forwarded and recorded as plain exchanges. Keys go upstream, never into the
    store. Stop it with Ctrl-C or SIGTERM: in-flight answers finish first.

    \b
    Examples:
      llm-events proxy
      OPENAI_BASE_URL=http://127.0.0.1:8787/v1 python app.py
      ANTHROPIC_BASE_URL=http://127.0.0.1:8787 python app.py
      llm-events proxy --upstream vllm=http://gpu-box:8000/v1
      OPENAI_BASE_URL=http://127.0.0.1:8787/vllm/v1 python app.py
      llm-events proxy --inject-key openai=OPENAI_API_KEY
      llm-events proxy --workers 2
    """
    from ..capture.routing import UpstreamError, parse_upstream
    from ..capture.server import ProxyConfigError, ProxySettings, parse_pairs, run

    try:
        named = dict(parse_upstream(u) for u in upstreams)
        settings = ProxySettings(
            host=host,
            port=port,
            upstreams=named,
            token=token or None,
            max_body_bytes=max_body_bytes,
            max_request_bytes=max_request_bytes,
            record=not no_record,
            timeout_s=timeout_s,
            body_timeout_s=body_timeout_s,
        )
        from ..capture.routing import BUILTIN_UPSTREAMS

        known = {**BUILTIN_UPSTREAMS, **named}
        for name, env in parse_pairs(inject, "--inject-key"):
            if name not in known:
                raise ProxyConfigError(f"--inject-key {name}={env}: no upstream named {name}")
            value = os.environ.get(env)
            if not value:
                raise ProxyConfigError(f"--inject-key {name}={env}: ${env} is not set")
            settings.inject[name] = value
        settings.check()
    except (UpstreamError, ProxyConfigError) as e:
        raise BadOption(str(e)) from None  # a value the options cannot work with: exit 2
    if quiet:
        import logging

        logging.getLogger("llm_events.proxy.access").disabled = True
    store = None
    if settings.record:
        from ..log.interrupted import record_interrupted

        store = open_cli_store(db, must_exist=False)
        closed = record_interrupted(store)
        if closed:
            click.echo(
                f"closed {len(closed)} call(s) left running by an ended process as Interrupted",
                err=True,
            )
    if workers == 0:
        from ..capture.workers import default_workers

        workers = default_workers()
    try:
        run(settings, store, workers=workers, quiet=quiet)
    except ProxyConfigError as e:
        raise click.ClickException(str(e)) from None
    finally:
        if store is not None:
            store.close()
