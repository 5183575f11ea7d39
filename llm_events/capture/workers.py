"""``llm-events proxy [--workers N]``: N worker processes (default 1) serving one socket.

One Python process tops out at about one core (the GIL), and a recorded request costs the
proxy a millisecond or two of CPU, so one process carries a few hundred requests a second.
And keeping projections up to date costs the process that does it CPU and the GIL per
request (a catch-up after nearly every request when they come one by one).  So this
process binds the socket and starts N workers (:mod:`.worker`, fresh
interpreters, not forks of one with threads running), each serving the inherited socket
(the kernel hands each new connection to one of them) and recording into the same store,
which takes many writer processes.  This process:

* prints the start-up line once every worker serves;
* follows the log for them (projections catch up here, so the workers spend nothing on
  them): deferred while requests are coming in, at the latest every
  :data:`CATCH_UP_MAX_S`, and at exit;
* stops them on SIGTERM or SIGINT with SIGTERM each (graceful: in-flight answers finish);
* replaces a worker that dies, first closing the calls it left open as ``Interrupted``.

Killed itself (SIGKILL), it takes its workers with it (Linux ``PR_SET_PDEATHSIG``), as a
single-process proxy killed mid-request would: the next start closes what they left open.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import IO, Any

from ..log.store import EventStore, StoreError
from .server import ProxyConfigError, ProxySettings, startup_line_printer

#: Projections catch up once no event has come for this long...
CATCH_UP_IDLE_S = 0.3
#: ...or at the latest this long after the last catch-up.
CATCH_UP_MAX_S = 2.0
#: Events per catch-up transaction (the workers' commits wait for the lock meanwhile), and
#: the pause between two, in which they take it: back to back, the chunks of a catch-up
#: kept a worker's write-ahead waiting for all of them (a p99 of 85 ms at 200 requests/s).
CATCH_UP_CHUNK = 100
CATCH_UP_PAUSE_S = 0.005
#: A worker that ends within this long of its start, more than this many times in a row,
#: is not started again (a proxy that cannot serve stops with an error).
QUICK_DEATH_S = 5.0
QUICK_DEATHS = 3
TICK_S = 0.1


def default_workers() -> int:
    """``--workers 0``: one per CPU this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class Worker:
    def __init__(self, proc: subprocess.Popen, started: float) -> None:
        self.proc, self.started = proc, started


class Supervisor:
    """Starts, watches and stops the workers (see the module docstring)."""

    def __init__(
        self,
        settings: ProxySettings,
        store: EventStore | None,
        sock: socket.socket,
        workers: int,
        out: IO[str] = sys.stdout,
        quiet: bool = False,
    ) -> None:
        self.settings, self.store, self.sock, self.n = settings, store, sock, workers
        self.out, self.quiet = out, quiet
        self.workers: list[Worker] = []
        self.stopping = False
        self.wake = threading.Event()
        self.lost = 0
        self.quick_deaths = 0
        self.last_seq = 0
        self.last_change = self.last_catch_up = time.monotonic()

    # --- workers ---------------------------------------------------------------------------

    def spec(self) -> str:
        return json.dumps(
            {
                "parent": os.getpid(),
                "fd": self.sock.fileno(),
                "db": self.store.path if self.store is not None else None,
                "quiet": self.quiet,
                "settings": dataclasses.asdict(self.settings),
            }
        )

    def start_one(self) -> Worker:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llm_events.capture.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            pass_fds=(self.sock.fileno(),),
            text=True,
        )
        assert proc.stdin is not None
        proc.stdin.write(self.spec() + "\n")
        proc.stdin.flush()  # the pipe stays open: its end tells the worker we are gone
        return Worker(proc, time.monotonic())

    @staticmethod
    def wait_ready(worker: Worker) -> bool:
        assert worker.proc.stdout is not None
        return worker.proc.stdout.readline().strip() == "ready"

    def start(self) -> None:
        fresh = [self.start_one() for _ in range(self.n)]
        self.workers = fresh
        if not all([self.wait_ready(w) for w in fresh]) and not self.stopping:
            self.stop_all()
            raise ProxyConfigError("a proxy worker process failed to start (see above)")

    def stop_all(self) -> None:
        for w in self.workers:
            if w.proc.poll() is None:
                w.proc.send_signal(signal.SIGTERM)
        for w in self.workers:
            w.proc.wait()
            self._collect(w)

    def _collect(self, worker: Worker) -> None:
        """The ``lost N`` line of a worker that ended, and its pipes closed."""
        proc = worker.proc
        for pipe in (proc.stdin, proc.stdout):
            if pipe is None:
                continue
            try:
                text = pipe.read() if pipe is proc.stdout else ""
            except (OSError, ValueError):
                text = ""
            for line in text.splitlines():
                if line.startswith("lost "):
                    self.lost += int(line.split()[1])
            with contextlib.suppress(OSError):
                pipe.close()

    def replace_dead(self) -> None:
        """A worker that ended while we were not stopping: close its calls, start another."""
        for i, w in enumerate(self.workers):
            code = w.proc.poll()
            if code is None or self.stopping:
                continue
            self._collect(w)
            self._say(f"llm-events proxy: worker {w.proc.pid} ended (status {code}); restarting it")
            self._close_interrupted()
            quick = time.monotonic() - w.started < QUICK_DEATH_S
            self.quick_deaths = self.quick_deaths + 1 if quick else 0
            if self.quick_deaths > QUICK_DEATHS:
                raise ProxyConfigError("proxy workers keep ending at start; stopping")
            fresh = self.start_one()
            self.workers[i] = fresh
            if not self.wait_ready(fresh) and not self.stopping:
                fresh.proc.wait()
                self._collect(fresh)
                raise ProxyConfigError("a proxy worker process failed to start (see above)")

    def _close_interrupted(self) -> None:
        if self.store is None:
            return
        from ..log.interrupted import record_interrupted

        try:
            closed = record_interrupted(self.store)
        except StoreError as e:
            self._say(f"llm-events proxy: could not close the calls it left: {e}")
            return
        if closed:
            self._say(
                f"closed {len(closed)} call(s) left running by an ended process as Interrupted"
            )

    @staticmethod
    def _say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    # --- following the log -----------------------------------------------------------------

    def follow(self, *, now: bool = False) -> None:
        """Catch projections up when the log is quiet, or has waited long enough."""
        store = self.store
        if store is None:
            return
        t = time.monotonic()
        try:
            seq = store.last_seq()
            if seq != self.last_seq:
                self.last_seq, self.last_change = seq, t
            quiet = t - self.last_change >= CATCH_UP_IDLE_S
            due = t - self.last_catch_up >= CATCH_UP_MAX_S
            if now or quiet or due:
                self.last_catch_up = t
                if store.lag():
                    # pauses only while requests come: idle or at exit, nobody waits
                    pause = 0.0 if now or quiet else CATCH_UP_PAUSE_S
                    store.catch_up(wait_ms=1000, chunk=CATCH_UP_CHUNK, pause_s=pause)
        except StoreError:
            pass  # busy or failing: the next round, a reader or the next open catches up

    # --- the whole -------------------------------------------------------------------------

    def _on_signal(self, sig: int, frame: Any) -> None:
        if not self.stopping:
            self.stopping = True
            for w in self.workers:
                if w.proc.poll() is None:
                    w.proc.send_signal(signal.SIGTERM)
        self.wake.set()

    def run(self) -> int:
        """Serve until SIGTERM or SIGINT; returns the events the workers could not record."""
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            self.start()
            if not self.stopping:
                startup_line_printer(self.settings, self.sock, self.store, self.out, self.n)()
            while not self.stopping:
                self.wake.wait(TICK_S)
                if self.stopping:
                    break
                self.replace_dead()
                self.follow()
        finally:
            self.stopping = True
            self.stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.follow(now=True)
        return self.lost
