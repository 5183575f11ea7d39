"""Replay benchmarks: wall time against a 50 ms client, peak memory of a 100,000-call replay.

Prints one JSON object.  Targets (DESIGN.md, issue 3):

* 1,000 recorded prompts replayed against a client with 50 ms latency at concurrency 16:
  under 5 s wall time (the ideal, 1000 * 0.05 / 16, is 3.1 s and is reported beside it);
* peak memory of replaying 100,000 calls: under 200 MB.  Measured in a fresh subprocess
  (``ru_maxrss``), against a baseline subprocess that imports everything and opens the same
  store but replays nothing; tracemalloc's Python-heap peak is reported too.

    python benchmarks/bench_replay.py [--calls 1000] [--memory-calls 100000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LATENCY_S = 0.05


def seed_store(path: Path, n: int) -> None:
    """``n`` answered calls written as events, 10,000 per transaction (as recording would)."""
    from llm_events import EventStore
    from llm_events.log import events as ev

    store = EventStore(path)
    batch: list[ev.Event] = []
    for i in range(n):
        now = ev.now_iso()
        pid, cid = ev.new_id(), ev.new_id()
        user = f"question #{i}: how do refunds work for plan {i % 97}?"
        batch += [
            ev.PromptBuilt(
                id=pid,
                ts=now,
                prompt_id=pid,
                system="Answer briefly.",
                user=user,
                examples=["Refunds are possible within 30 days."],
                origin="context_builder",
            ),
            ev.CallStarted(id=ev.new_id(), ts=now, call_id=cid, prompt_id=pid, client="echo"),
            ev.AttemptStarted(
                id=ev.new_id(), ts=now, call_id=cid, attempt=1, backend="echo", model="echo"
            ),
            ev.AttemptSucceeded(
                id=ev.new_id(),
                ts=now,
                call_id=cid,
                attempt=1,
                backend="echo",
                model="echo",
                text=user,
                input_tokens=20,
                output_tokens=12,
                latency_ms=1.0,
            ),
            ev.CallFinished(
                id=ev.new_id(), ts=now, call_id=cid, status="ok", attempts=1, latency_ms=1.0
            ),
        ]
        if len(batch) >= 10_000:
            store.append(batch)
            batch = []
    store.append(batch)
    store.close()


def slow_echo(prompt: object) -> str:
    time.sleep(LATENCY_S)
    return prompt.user  # type: ignore[attr-defined]


def fast_echo(prompt: object) -> str:
    return prompt.user  # type: ignore[attr-defined]


def bench_latency(workdir: Path, n: int, concurrency: int) -> dict[str, float]:
    import replay
    from llm_events import EventStore

    path = workdir / "latency.db"
    seed_store(path, n)
    store = EventStore(path)
    t0 = time.perf_counter()
    report = replay.run(store, slow_echo, concurrency=concurrency)
    wall = time.perf_counter() - t0
    assert report.counts["same"] == n, report.counts
    store.close()
    ideal = n * LATENCY_S / concurrency
    return {
        "calls": n,
        "concurrency": concurrency,
        "client_latency_s": LATENCY_S,
        "wall_s": round(wall, 3),
        "ideal_s": round(ideal, 3),
        "overhead_vs_ideal": round(wall / ideal, 3),
        "target_s": 5.0,
        "ok": wall < 5.0,
    }


def _child(path: str, mode: str, batch: bool) -> None:
    """Runs in a subprocess: replay (or only open the store) and print its peak memory."""
    import tracemalloc

    import replay
    from llm_events import EventStore

    tracemalloc.start()
    store = EventStore(path, batch=batch)
    out: dict[str, object] = {}
    if mode == "replay":
        t0 = time.perf_counter()
        report = replay.run(store, fast_echo, concurrency=4)
        out["wall_s"] = round(time.perf_counter() - t0, 2)
        out["compared"] = report.compared
    else:
        store.last_seq()
    store.close()
    out["py_heap_peak_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
    out["maxrss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(out))


def bench_memory(workdir: Path, n: int, batch: bool) -> dict[str, object]:
    path = workdir / "memory.db"
    t0 = time.perf_counter()
    seed_store(path, n)
    seeded = time.perf_counter() - t0

    def child(mode: str) -> dict[str, object]:
        env = dict(os.environ, LLM_EVENTS_DB=str(path))
        args = [sys.executable, __file__, "--child", mode, str(path)]
        if batch:
            args.append("--batch")
        done = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])

    base = child("baseline")
    run = child("replay")
    assert run["compared"] == n, run
    peak = float(run["maxrss_mb"])
    return {
        "calls": n,
        "seed_s": round(seeded, 1),
        "batch_store": batch,
        "replay_wall_s": run["wall_s"],
        "calls_per_s": round(n / float(run["wall_s"]), 1),
        "peak_rss_mb": peak,
        "baseline_rss_mb": base["maxrss_mb"],
        "replay_rss_over_baseline_mb": round(peak - float(base["maxrss_mb"]), 1),
        "py_heap_peak_mb": run["py_heap_peak_mb"],
        "target_mb": 200,
        "ok": peak < 200,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--memory-calls", type=int, default=100_000)
    parser.add_argument(
        "--batch",
        action="store_true",
        help="memory run on a batch-mode store (its queue has no backpressure: see BENCHMARKS.md)",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[1], args.child[0], args.batch)
        return
    if args.quick:
        args.calls, args.memory_calls = 200, 2000
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        work = Path(tmp)
        result = {
            "machine": {
                "python": platform.python_version(),
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
            },
            "latency": bench_latency(work, args.calls, args.concurrency),
            "memory": bench_memory(work, args.memory_calls, args.batch),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
