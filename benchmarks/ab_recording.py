"""A recorded call's cost, this tree against an earlier commit, interleaved in one process.

    python benchmarks/ab_recording.py [--base REV] [--blocks N] [--calls N] [--rounds N]

On a shared machine two benchmark runs minutes apart differ by more than a change of a few
per cent; here both versions run in the same process, block by block in alternation, so the
load falls on both alike.  The commit ``REV`` (default ``HEAD~1``) is copied from git as the
package ``llm_events_base`` (the recording path imports only relatively) and each side gets
its own store.  Printed as JSON, per side: the CPU a recorded call costs beyond the same
call unrecorded (process CPU: the background catch-up included; and the wall clock of the
same blocks), the same with the store's
transaction replaced by encoding and hashing (the Python alone), and calls/s and CPU per
call of one thread and of 64 (instant client); ``new_vs_base`` are medians of the ratios of
paired blocks.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_core as b  # noqa: E402


def base_package(rev: str, into: Path) -> None:
    """The ``llm_events`` package of commit ``rev``, as ``into/llm_events_base``."""
    archive = subprocess.run(
        ["git", "-C", str(HERE.parent), "archive", rev, "llm_events"],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    (into / "llm_events").rename(into / "llm_events_base")


class Side:
    """One version's builder, instant client and store."""

    def __init__(self, name: str, tmp: Path) -> None:
        self.name, self.tmp = name, tmp
        self.pkg = importlib.import_module(name)
        self.config = importlib.import_module(f"{name}.recording.config")
        pkg = self.pkg

        class Instant(pkg.LLMClient):  # type: ignore[name-defined,misc]
            backend_name = "instant"

            def _generate(self, prompt: Any, *, context_builder: Any) -> Any:
                return pkg.LLMResult(text=b.ANSWER, input_tokens=180, output_tokens=90)

        class Unrecorded(pkg.ContextBuilder):  # type: ignore[name-defined,misc]
            def record(self, prompt: Any, items: Any = ()) -> None:
                return None

        self.instant = Instant
        retriever = pkg.KeywordRetriever(b.DOCS)
        self.builder = pkg.ContextBuilder([retriever], system=b.SYSTEM)
        self.plain = Unrecorded([retriever], system=b.SYSTEM)
        self.client = Instant("instant-1")

    def open(self, tag: str, python_only: bool = False) -> Any:
        self.config.reset()
        self.config.configure(db=str(self.tmp / f"{self.name}-{tag}.db"))
        store = self.config.open_store()
        for i in range(200):
            self.recorded(i)
        store.flush()
        if python_only:
            ev = importlib.import_module(f"{self.name}.log.events")
            chain = importlib.import_module(f"{self.name}.log.chain")

            def encode_and_hash(requests: list, store: Any = store) -> None:
                with store._deferred_lock:
                    deferred, store._deferred = store._deferred, []
                # held events: encoded when held (since 2026-12-02), or still events (a tree
                # from before)
                encoded = [d if isinstance(d, tuple) else (d, ev.encode(d)) for d in deferred]
                for r in requests:
                    encoded += r.encoded
                prev = "0" * 64
                for seq, (e, payload) in enumerate(encoded):
                    prev = chain.row_hash(prev, seq, e.id, e.type_name, e.key, e.ts, payload)
                    payload.decode()

            store._group._commit = encode_and_hash
        return store

    def recorded(self, i: int) -> None:
        self.client.generate(self.builder.build_prompt(b.question(i)), context_builder=self.builder)

    def unrecorded(self, i: int) -> None:
        self.client._generate(self.plain.build_prompt(b.question(i)), context_builder=self.plain)

    def thread_rate(self, threads: int, calls: int, tag: str) -> tuple[float, float]:
        """(calls/s, process CPU µs per call) of ``threads`` threads making ``calls`` each."""
        self.config.reset()
        self.config.configure(db=str(self.tmp / f"{self.name}-threads-{tag}.db"))
        client = self.instant("instant-1")
        client.generate(self.builder.build_prompt("warm"), context_builder=self.builder)
        barrier = threading.Barrier(threads + 1)

        def work(t: int) -> None:
            barrier.wait()
            for i in range(calls):
                prompt = self.builder.build_prompt(b.question(t * calls + i))
                client.generate(prompt, context_builder=self.builder)

        workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        gc.collect()
        barrier.wait()
        t0, c0 = time.perf_counter(), time.process_time()
        for w in workers:
            w.join()
        self.config.flush()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        self.config.reset()
        return threads * calls / wall, cpu / (threads * calls) * 1e6


def overhead(sides: dict[str, Side], blocks: int, calls: int, python_only: bool) -> dict:
    """CPU µs per call beyond the unrecorded call, blocks alternating between the sides."""
    clock = time.thread_time if python_only else time.process_time
    stores = {k: s.open("python" if python_only else "full", python_only) for k, s in sides.items()}
    got: dict[str, list[float]] = {k: [] for k in sides}
    wall: dict[str, list[float]] = {k: [] for k in sides}
    offset = 1000
    for block in range(blocks):
        for k in ("base", "new") if block % 2 == 0 else ("new", "base"):
            side = sides[k]
            gc.collect()
            c0, w0 = clock(), time.perf_counter()
            for i in range(offset, offset + calls):
                side.unrecorded(i)
            base, base_wall = clock() - c0, time.perf_counter() - w0
            gc.collect()
            c0, w0 = clock(), time.perf_counter()
            for i in range(offset, offset + calls):
                side.recorded(i)
            stores[k].flush()
            got[k].append((clock() - c0 - base) / calls * 1e6)
            wall[k].append((time.perf_counter() - w0 - base_wall) / calls * 1e6)
        offset += calls
    for s in sides.values():
        s.config.reset()

    def summary(by: dict[str, list[float]]) -> dict[str, float]:
        return {
            "base_us": round(statistics.median(by["base"]), 1),
            "new_us": round(statistics.median(by["new"]), 1),
            "new_vs_base": round(
                statistics.median(n / o for o, n in zip(by["base"], by["new"], strict=True)), 3
            ),
        }

    # the wall clock of the same blocks: what a caller waits (a fold moved off the lock
    # costs the same CPU but overlaps the caller's commits), paired block by block
    return {**summary(got), "wall": summary(wall)}


def threads(sides: dict[str, Side], rounds: int, calls: int) -> dict:
    got: dict[str, dict[int, list[tuple[float, float]]]] = {k: {1: [], 64: []} for k in sides}
    for r in range(rounds):
        for k in ("base", "new") if r % 2 == 0 else ("new", "base"):
            got[k][1].append(sides[k].thread_rate(1, calls, f"1-{r}"))
            got[k][64].append(sides[k].thread_rate(64, max(1, calls // 16), f"64-{r}"))
    out: dict[str, Any] = {}
    for k, by in got.items():
        med = statistics.median
        out[k] = {
            "one_thread_calls_per_s": round(med(x[0] for x in by[1])),
            "one_thread_cpu_us_per_call": round(med(x[1] for x in by[1])),
            "threads_64_calls_per_s": round(med(x[0] for x in by[64])),
            "threads_64_cpu_us_per_call": round(med(x[1] for x in by[64])),
            "threads_64_vs_1": round(
                med(a[0] / o[0] for a, o in zip(by[64], by[1], strict=True)), 2
            ),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", default="HEAD~1", help="the commit to compare with (git rev)")
    ap.add_argument("--blocks", type=int, default=40, help="alternating blocks per measure")
    ap.add_argument("--calls", type=int, default=200, help="calls per block")
    ap.add_argument("--rounds", type=int, default=6, help="alternating thread-rate rounds")
    ap.add_argument("--thread-calls", type=int, default=640, help="one thread's calls a round")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="llm-events-ab-"))
    try:
        base_package(args.base, tmp)
        sys.path.insert(0, str(tmp))
        sides = {"base": Side("llm_events_base", tmp), "new": Side("llm_events", tmp)}
        out = {
            "benchmark": "ab_recording",
            "base": args.base,
            "machine": b.machine(),
            "python_only_overhead_cpu_us": overhead(sides, args.blocks, args.calls, True),
            "overhead_cpu_us": overhead(sides, args.blocks, args.calls, False),
            "threads": threads(sides, args.rounds, args.thread_calls),
            "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
