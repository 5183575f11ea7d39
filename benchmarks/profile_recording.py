"""Where a recorded call's time goes: the recording benchmark's loop, instrumented.

    python benchmarks/profile_recording.py [--calls N] [--reps R]

Runs ``bench_core``'s recorded call (the builder's ``build_prompt`` and an instant client's
``generate``, default durability, one thread, calls back to back) with timers wrapped
around the parts of the write path, and prints, as JSON, microseconds per call of each:
the caller's own work (the same call unrecorded), building the events (``prompt_built``
and the call's four events, redaction and cleaning included), encoding and hashing, the
SQLite statements of the two commits, waiting for the process's write lock (held by the
background catch-up), and, on the background thread, the catch-up itself (wall and CPU).

The timers cost about a microsecond each (a few dozen per call): figures are a little
above an uninstrumented run's, shares are what to read.  The process's and the main
thread's CPU time tell what the background thread took (the GIL lets one run at a time).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_core as b  # noqa: E402

import llm_events  # noqa: E402
from llm_events.interface import context_builder as context_builder_module  # noqa: E402
from llm_events.log import catchup  # noqa: E402
from llm_events.log import events as ev  # noqa: E402
from llm_events.log import store as store_module
from llm_events.log.redaction import Redactor  # noqa: E402
from llm_events.recording import config, recorder  # noqa: E402

#: (part, thread) -> seconds
spent: dict[tuple[str, str], float] = defaultdict(float)
cpu_spent: dict[str, float] = defaultdict(float)
_depth = threading.local()


def _thread() -> str:
    return "main" if threading.current_thread() is threading.main_thread() else "background"


def timed(part: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with its wall time added to ``part`` (outermost call only: no double count
    when it recurses or calls another timed function of the same part)."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        key = (part, _thread())
        outer = not getattr(_depth, part, False)
        if not outer:
            return fn(*args, **kwargs)
        setattr(_depth, part, True)
        t0 = time.perf_counter()
        c0 = time.thread_time() if part == "catch_up" else 0.0
        try:
            return fn(*args, **kwargs)
        finally:
            spent[key] += time.perf_counter() - t0
            if part == "catch_up":
                cpu_spent[_thread()] += time.thread_time() - c0
            setattr(_depth, part, False)

    return wrapper


class TimedLock:
    """The store's write lock, with the time spent waiting for it counted per thread."""

    def __init__(self, lock: Any) -> None:
        self._lock = lock

    def __enter__(self) -> bool:
        t0 = time.perf_counter()
        got = self._lock.acquire()
        spent[("write_lock_wait", _thread())] += time.perf_counter() - t0
        return got

    def __exit__(self, *exc: Any) -> None:
        self._lock.release()

    def acquire(self, *args: Any, **kwargs: Any) -> bool:
        return self._lock.acquire(*args, **kwargs)

    def release(self) -> None:
        self._lock.release()


def instrument() -> None:
    built = timed("prompt_built_event", context_builder_module.prompt_built_event)
    context_builder_module.prompt_built_event = built
    recorder.prompt_built_event = built
    Redactor.__call__ = timed("redaction", Redactor.__call__)
    ev.new_id = timed("ids", ev.new_id)
    ev.encode = timed("encode", ev.encode)
    store_module.row_hash = timed("sha256_chain", store_module.row_hash)
    store_module.begin_immediate = timed("sqlite_begin", store_module.begin_immediate)
    insert = store_module.EventStore._insert
    store_module.EventStore._insert = staticmethod(timed("sqlite_insert_and_head", insert))
    catchup.apply_pending = timed("catch_up", catchup.apply_pending)
    for name in ("start", "begin_attempt", "attempt_succeeded", "finish"):
        setattr(recorder.CallScope, name, timed(f"scope_{name}", getattr(recorder.CallScope, name)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=3000, help="recorded calls per repetition")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="llm-events-profile-"))
    path = str(tmp / "profile.db")
    config.reset()
    config.configure(db=path)
    retriever = b.KeywordRetriever(b.DOCS)
    builder = b.ContextBuilder([retriever], system=b.SYSTEM)
    plain = b.UnrecordedBuilder([retriever], system=b.SYSTEM)
    client = b.InstantClient("instant-1")
    store = llm_events.open_store(path)

    def recorded(i: int) -> None:
        client.generate(builder.build_prompt(b.question(i)), context_builder=builder)

    def unrecorded(i: int) -> None:
        client._generate(plain.build_prompt(b.question(i)), context_builder=plain)

    for i in range(500):
        recorded(i)
    store.flush()
    instrument()
    store._wlock = TimedLock(store._wlock)
    # the group commit holds the bound method it was made with
    store._group._commit = timed("commit_transaction", store._group._commit)
    n = args.calls
    offset = 1000
    wall = base = main_cpu = proc_cpu = 0.0
    for _ in range(args.reps):
        base += b._time_loop(n, offset, unrecorded) * n
        offset += n
        t0, c0, m0 = time.perf_counter(), time.process_time(), time.thread_time()
        for i in range(offset, offset + n):
            recorded(i)
        store.flush()  # the catch-up these calls left is theirs
        wall += time.perf_counter() - t0
        proc_cpu += time.process_time() - c0
        main_cpu += time.thread_time() - m0
        offset += n
    calls = n * args.reps
    store.close()

    def us(seconds: float) -> float:
        return round(seconds / calls * 1e6, 1)

    parts = {f"{part} ({thread})": us(s) for (part, thread), s in sorted(spent.items())}
    main = {part: s for (part, thread), s in spent.items() if thread == "main"}
    # what the commit transactions spent outside the parts timed inside them: COMMIT itself,
    # the head read, the held events' encoding, the hand-off between callers
    inside = ("write_lock_wait", "sqlite_begin", "sqlite_insert_and_head")
    parts["commit_rest: COMMIT, head read (main)"] = us(
        main.get("commit_transaction", 0.0) - sum(main.get(k, 0.0) for k in inside)
    )
    parts["sqlite_insert_and_head without sha256 (main)"] = us(
        main.get("sqlite_insert_and_head", 0.0) - main.get("sha256_chain", 0.0)
    )
    out = {
        "benchmark": "profile_recording",
        "calls": calls,
        "machine": b.machine(),
        "recorded_call_us": us(wall),
        "unrecorded_call_us": us(base),
        "overhead_us": us(wall - base),
        "process_cpu_us": us(proc_cpu),
        "main_thread_cpu_us": us(main_cpu),
        "other_threads_cpu_us": us(proc_cpu - main_cpu),
        "catch_up_cpu_us": {k: us(v) for k, v in cpu_spent.items()},
        "parts_us": parts,
        "loadavg_at_end": list(os.getloadavg()),
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
