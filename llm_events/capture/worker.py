"""One worker process of ``llm-events proxy --workers N`` (started by :mod:`.workers`).

Its supervisor starts it as ``python -m llm_events.capture.worker`` with the listening
socket inherited and one JSON line on stdin (the settings, keys to inject included: a pipe,
never the command line or the environment, which other users can read).  It prints
``ready`` on stdout once it serves, and ``lost N`` as it ends.  It stops gracefully on
SIGTERM, or when its stdin closes (its supervisor is gone); on Linux the kernel kills it
with its supervisor (``PR_SET_PDEATHSIG``), as if the whole proxy had been killed.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import socket
import sys
import threading
from typing import Any

PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Linux: be killed when the supervisor dies, then check it had not died already."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:
        os._exit(1)


def main() -> None:
    spec = json.loads(sys.stdin.readline())
    die_with_parent(spec["parent"])
    from ..log.store import EventStore
    from .server import ProxySettings, configure_access_log, serve

    settings = ProxySettings(**spec["settings"])
    sock = socket.socket(fileno=spec["fd"])
    configure_access_log()
    if spec.get("quiet"):
        logging.getLogger("llm_events.proxy.access").disabled = True
    store = None
    if settings.record and spec.get("db"):
        store = EventStore(spec["db"])
        store.follow_in_background = False  # the supervisor follows the log for us
    servers: list[Any] = []

    def stop_when_orphaned() -> None:
        sys.stdin.read()  # returns at EOF: the supervisor closed the pipe or is gone
        for server in servers:
            server.should_exit = True

    threading.Thread(target=stop_when_orphaned, daemon=True).start()
    try:
        app = serve(
            settings,
            store,
            sock,
            lambda: print("ready", flush=True),
            supervised=True,
            server_ready=servers.append,
        )
        lost = app.recorder.lost
    finally:
        if store is not None:
            store.close()
    print(f"lost {lost}", flush=True)


def run() -> None:
    """``main`` with the CLI's manners: an expected failure is one line and status 1."""
    try:
        main()
    except (OSError, ValueError, ImportError) as e:
        print(f"Error: proxy worker {os.getpid()}: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    except Exception as e:
        from ..log.store import StoreError

        if not isinstance(e, StoreError):
            raise
        print(f"Error: proxy worker {os.getpid()}: {e}", file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    run()
