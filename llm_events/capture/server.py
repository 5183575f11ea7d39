"""Serving the proxy: the store, the app and uvicorn put together.

uvicorn (already installed with Datasette) serves it: a well-kept ASGI server with
graceful shutdown on SIGTERM/SIGINT (in-flight streams finish, then the app's shutdown
finishes calls waiting for a retry and flushes the store).  :class:`ProxyThread` runs the
same server on a thread of the calling process (tests, benchmarks).  ``llm-events proxy``
serves it from worker processes under a supervisor (:func:`run`, :mod:`.workers`).
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from ..log.store import EventStore
from .exchange import DEFAULT_MAX_BODY_BYTES
from .exchange_recorder import ExchangeRecorder
from .proxy import DEFAULT_BODY_TIMEOUT_S, DEFAULT_MAX_REQUEST_BYTES, ProxyApp, UpstreamCut
from .routing import Router


class ProxyConfigError(ValueError):
    """A proxy that must not start as asked (one line for the user)."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class ProxySettings:
    host: str = "127.0.0.1"
    port: int = 8787
    upstreams: dict[str, str] = field(default_factory=dict)
    token: str | None = None
    #: upstream name -> key value the proxy sends itself
    inject: dict[str, str] = field(default_factory=dict)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    record: bool = True
    #: how long to wait for the upstream's answer to begin, and between two of its pieces
    timeout_s: float = 600.0
    #: a larger request body is answered 413 and not sent (the proxy holds requests whole)
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    #: a client that sends no more of its request body for this long is answered 408
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S

    def check(self) -> None:
        if not is_loopback(self.host) and not self.token:
            raise ProxyConfigError(
                f"refusing to listen on {self.host} without --token: anyone who can reach it "
                "could use it as an open relay (clients then send X-LLM-Events-Token)"
            )


def build_app(settings: ProxySettings, store: EventStore | None) -> ProxyApp:
    """The proxy application recording into ``store`` (``None``: forward only)."""
    recorder = ExchangeRecorder(
        store if settings.record else None,
        source="proxy",
        max_body_bytes=settings.max_body_bytes,
        secrets=list(settings.inject.values()),
    )
    import httpx

    return ProxyApp(
        Router(settings.upstreams),
        recorder,
        token=settings.token,
        inject=settings.inject,
        timeout=httpx.Timeout(settings.timeout_s, connect=min(10.0, settings.timeout_s)),
        max_request_bytes=settings.max_request_bytes,
        body_timeout_s=settings.body_timeout_s,
    )


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: any free port), or ProxyConfigError saying why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as e:
        sock.close()
        raise ProxyConfigError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class _QuietCut(logging.Filter):
    """uvicorn logs an app's exception with a traceback; a stream the upstream cut off is
    expected (the client's connection is cut the same way) and gets our one access line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, UpstreamCut)


def uvicorn_server(
    app: ProxyApp, *, workers_log_level: str = "warning", supervised: bool = False
) -> Any:
    """uvicorn serving ``app``.  ``supervised`` (a worker of ``--workers N``): a first
    SIGINT is the terminal's Ctrl-C reaching the whole process group, and is left to the
    supervisor, which stops each worker with SIGTERM (uvicorn would take the SIGINT that
    follows as a second one, and cut in-flight answers off)."""
    import uvicorn

    class Server(uvicorn.Server):
        #: called once it serves (signal handlers in place): prints the start-up line
        on_started: Any = None

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            if self.on_started is not None and not self.should_exit:
                self.on_started()

        def handle_exit(self, sig: int, frame: Any) -> None:
            if supervised and sig == signal.SIGINT and not self.should_exit:
                return
            super().handle_exit(sig, frame)
            # uvicorn raises the signal again once it has shut down; a proxy stopped
            # gracefully has done its work: exit status 0
            captured = getattr(self, "_captured_signals", None)
            if isinstance(captured, list):
                captured.clear()

    config = uvicorn.Config(
        app,
        lifespan="on",
        log_level=workers_log_level,
        access_log=False,
        server_header=False,
        date_header=False,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=None,
        backlog=2048,
    )
    logging.getLogger("uvicorn.error").addFilter(_QuietCut())
    return Server(config)


def startup_line(
    settings: ProxySettings, port: int, db: str | None, upstreams: dict, workers: int = 1
) -> str:
    url = f"http://{settings.host if ':' not in settings.host else f'[{settings.host}]'}:{port}"
    where = f"recording to {db}" if db and settings.record else "not recording"
    ups = " ".join(f"{k}={v}" for k, v in upstreams.items())
    token = "; clients must send X-LLM-Events-Token" if settings.token else ""
    procs = f" ({workers} worker processes)" if workers > 1 else ""
    return (
        f"llm-events proxy listening on {url}{procs}, {where}; upstreams: {ups}{token}\n"
        f"  OPENAI_BASE_URL={url}/v1  ANTHROPIC_BASE_URL={url}  /NAME/... for --upstream NAME"
    )


def configure_access_log(stream: IO[str] = sys.stderr) -> None:
    logger = logging.getLogger("llm_events.proxy.access")
    if logger.handlers:
        return
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    errors = logging.getLogger("llm_events.capture")
    errors.addHandler(handler)
    errors.propagate = False


class ProxyThread:
    """The proxy served on a thread of this process, on a free port of 127.0.0.1."""

    def __init__(self, app: ProxyApp, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.sock = bind(host, port)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self.server = uvicorn_server(app)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> ProxyThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        import time

        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the proxy did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()


def run(
    settings: ProxySettings,
    store: EventStore | None,
    out: IO[str] = sys.stdout,
    *,
    workers: int = 1,
    quiet: bool = False,
) -> None:
    """Serve until SIGTERM or SIGINT (graceful: in-flight requests finish first).

    ``workers`` processes serve one listening socket, each recording into the same store
    (:mod:`.workers`); this process supervises them and follows the log for them, so the
    processes that serve never spend time on projections (also with one worker).
    """
    from .workers import Supervisor

    settings.check()
    sock = bind(settings.host, settings.port)
    try:
        lost = Supervisor(settings, store, sock, max(1, workers), out, quiet=quiet).run()
    finally:
        sock.close()
    lost_note = f"; {lost} events could not be recorded" if lost else ""
    print(f"llm-events proxy stopped{lost_note}", file=sys.stderr, flush=True)


def startup_line_printer(
    settings: ProxySettings,
    sock: socket.socket,
    store: EventStore | None,
    out: IO[str],
    workers: int = 1,
) -> Any:
    line = startup_line(
        settings,
        sock.getsockname()[1],
        store.path if store else None,
        Router(settings.upstreams).upstreams,
        workers,
    )
    return lambda: print(line, file=out, flush=True)


def serve(
    settings: ProxySettings,
    store: EventStore | None,
    sock: socket.socket,
    on_started: Any,
    *,
    supervised: bool = False,
    server_ready: Any = None,
) -> ProxyApp:
    """Serve ``sock`` in this process until told to stop; returns the app (its recorder
    counts what could not be recorded).  ``server_ready(server)``: called with the uvicorn
    server before it runs (a worker stops it when its supervisor goes away)."""
    app = build_app(settings, store)
    server = uvicorn_server(app, supervised=supervised)
    server.on_started = on_started
    if server_ready is not None:
        server_ready(server)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return app


def parse_pairs(specs: Sequence[str], what: str) -> list[tuple[str, str]]:
    out = []
    for spec in specs:
        name, sep, value = spec.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ProxyConfigError(f"{what} expects NAME=VALUE, got {spec!r}")
        out.append((name.strip(), value.strip()))
    return out
