"""CLI and Datasette latency on a store of 1,000,000 events; prints JSON.

    python benchmarks/bench_cli.py [--events 1000000] [--store /tmp/llm-events-bench-1000000.db]

The store is synthetic but shaped like real traffic (prompt, call, attempts, failures, retries,
fallbacks, answers, over 30 days, a replay run) and cached under /tmp: the first run builds it
with batch appends, later runs reuse it.  Each command is timed as a whole process, start-up
included (what a user waits for); each Datasette page over HTTP against a running
``llm-events browse``.  Targets: commands < 200 ms, Datasette pages < 500 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODELS = [
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4o"),
    ("anthropic", "claude-3-5-haiku"),
    ("ollama", "llama3.1:8b"),
]
_WORDS_TEXT = (
    "invoice refund annual plan billing export region latency token budget contract support "
    "password login account upgrade downgrade seat team admin audit log retention backup "
    "restore webhook integration slack email calendar report dashboard chart metric alert "
    "quota limit burst throttle cache index search vector embedding summary translate legal"
)
WORDS = _WORDS_TEXT.split()
#: The mean number of events per synthetic call (spreads the calls over ``days``).
EVENTS_PER_CALL = 5.3
RARE = "zeppelin"  # in about 0.5% of prompts: a selective search


def build_store(path: Path, n_events: int, days: int = 30) -> None:
    """Append synthetic calls in chronological order until ``n_events`` events are stored."""
    from llm_events.log import events as ev
    from llm_events.log.store import EventStore

    rng = random.Random(42)
    store = EventStore(path, synchronous="OFF")
    start = time.time() - days * 86400
    step = days * 86400 / (n_events / EVENTS_PER_CALL)
    t = start
    batch: list[ev.Event] = []
    written = 0
    call_ids: list[str] = []

    def ts(offset: float = 0.0) -> str:
        return ev.now_iso(t + offset)

    while written + len(batch) < n_events:
        t += step * rng.uniform(0.5, 1.5)
        backend, model = rng.choice(MODELS)
        words = rng.sample(WORDS, 8)
        if rng.random() < 0.005:
            words.append(RARE)
        user = " ".join(words).capitalize() + "?"
        pid, cid = ev.new_id(), ev.new_id()
        tags = ["bench", rng.choice(["web", "batch", "api"])]
        batch.append(
            ev.PromptBuilt(
                id=pid, ts=ts(), prompt_id=pid, user=user, system="Be brief.", tags=tags[1:]
            )
        )
        batch.append(
            ev.CallStarted(
                id=ev.new_id(),
                ts=ts(0.001),
                call_id=cid,
                prompt_id=pid,
                client=f"{backend}:{model}",
                tags=tags,
            )
        )
        attempt = 1
        clock = 0.002
        batch.append(
            ev.AttemptStarted(
                id=ev.new_id(),
                ts=ts(clock),
                call_id=cid,
                attempt=1,
                backend=backend,
                model=model,
                params={"temperature": 0.2},
            )
        )
        r = rng.random()
        if r < 0.13:  # a failure first: retried, fell back, or fatal
            lat = rng.uniform(50, 3000)
            clock += lat / 1000
            batch.append(
                ev.AttemptFailed(
                    id=ev.new_id(),
                    ts=ts(clock),
                    call_id=cid,
                    attempt=1,
                    backend=backend,
                    error_type="RateLimited",
                    message="429 Too Many Requests",
                    retryable=True,
                    status_code=429,
                    latency_ms=lat,
                )
            )
            if r < 0.03:
                clock += 0.001
                batch.append(
                    ev.CallFinished(
                        id=ev.new_id(),
                        ts=ts(clock),
                        call_id=cid,
                        status="error",
                        attempts=1,
                        backend=backend,
                        model=model,
                        error_type="RateLimited",
                        error_message="429 Too Many Requests",
                        latency_ms=clock * 1000,
                    )
                )
                call_ids.append(cid)
                if len(batch) >= 20_000:
                    store.append(batch)
                    written += len(batch)
                    batch = []
                continue
            if r < 0.08:
                batch.append(
                    ev.RetryScheduled(
                        id=ev.new_id(),
                        ts=ts(clock),
                        call_id=cid,
                        attempt=1,
                        delay_s=0.5,
                        error_type="RateLimited",
                    )
                )
                clock += 0.5
            else:
                other_backend, model = rng.choice([m for m in MODELS if m[0] != backend])
                batch.append(
                    ev.FallbackTaken(
                        id=ev.new_id(),
                        ts=ts(clock),
                        call_id=cid,
                        from_backend=backend,
                        to_backend=other_backend,
                        reason="RateLimited",
                    )
                )
                backend = other_backend
            attempt = 2
            batch.append(
                ev.AttemptStarted(
                    id=ev.new_id(),
                    ts=ts(clock),
                    call_id=cid,
                    attempt=2,
                    backend=backend,
                    model=model,
                )
            )
        lat = rng.lognormvariate(6.5, 0.6)
        clock += lat / 1000
        n_in, n_out = rng.randint(50, 2000), rng.randint(10, 600)
        answer = " ".join(rng.sample(WORDS, 12)) + "."
        batch.append(
            ev.AttemptSucceeded(
                id=ev.new_id(),
                ts=ts(clock),
                call_id=cid,
                attempt=attempt,
                backend=backend,
                model=model,
                text=answer,
                input_tokens=n_in,
                output_tokens=n_out,
                cost=(n_in * 0.15 + n_out * 0.6) / 1e6,
                latency_ms=lat,
                finish_reason="stop",
            )
        )
        clock += 0.001
        batch.append(
            ev.CallFinished(
                id=ev.new_id(),
                ts=ts(clock),
                call_id=cid,
                status="ok",
                attempts=attempt,
                backend=backend,
                model=model,
                latency_ms=clock * 1000,
            )
        )
        call_ids.append(cid)
        if len(batch) >= 20_000:
            store.append(batch)
            written += len(batch)
            batch = []
    # a replay run over 1,000 of the calls
    rid = ev.new_id()
    batch.append(
        ev.ReplayStarted(
            id=ev.new_id(), ts=ts(1), replay_id=rid, against="echo", compare="exact", total=1000
        )
    )
    counts = {"same": 0, "changed": 0, "error": 0}
    for cid in rng.sample(call_ids, 1000):
        verdict = rng.choices(["same", "changed", "error"], [0.8, 0.17, 0.03])[0]
        counts[verdict] += 1
        # the replay's own call: ordinary events linked to the recorded one (parent_call_id)
        new_cid = ev.new_id()
        batch.extend(_replay_call(rng, new_cid, cid, verdict, ts(1.5)))
        batch.append(
            ev.ReplayCompared(
                id=ev.new_id(),
                ts=ts(2),
                replay_id=rid,
                source_call_id=cid,
                replay_call_id=new_cid,
                verdict=verdict,
                score=1.0 if verdict == "same" else 0.4,
                reason="identical" if verdict == "same" else "answers differ",
                compare="exact",
            )
        )
    batch.append(
        ev.ReplayFinished(id=ev.new_id(), ts=ts(3), replay_id=rid, counts=counts, total=1000)
    )
    store.append(batch)
    store.close()


def _replay_call(rng: random.Random, call_id: str, parent: str, verdict: str, ts: str) -> list:
    """The events of one replay call: started (parent_call_id set), an answer or an error."""
    from llm_events.log import events as ev

    common = {"ts": ts, "call_id": call_id}
    out: list[ev.Event] = [
        ev.CallStarted(id=ev.new_id(), client="echo", parent_call_id=parent, **common),
        ev.AttemptStarted(id=ev.new_id(), attempt=1, backend="echo", model="echo", **common),
    ]
    if verdict == "error":
        out.append(
            ev.AttemptFailed(
                id=ev.new_id(), attempt=1, backend="echo", error_type="Timeout", **common
            )
        )
        out.append(
            ev.CallFinished(
                id=ev.new_id(), status="error", attempts=1, error_type="Timeout", **common
            )
        )
        return out
    text = " ".join(rng.sample(WORDS, 12)) + "."
    out.append(
        ev.AttemptSucceeded(
            id=ev.new_id(),
            attempt=1,
            backend="echo",
            model="echo",
            text=text,
            latency_ms=1.0,
            **common,
        )
    )
    out.append(
        ev.CallFinished(
            id=ev.new_id(), status="ok", attempts=1, backend="echo", model="echo", **common
        )
    )
    return out


def timed_runs(cmd: list[str], env: dict[str, str], repeat: int) -> dict[str, float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = subprocess.run(cmd, env=env, capture_output=True, text=True)
        times.append((time.perf_counter() - t0) * 1000)
        if out.returncode != 0:
            raise SystemExit(f"{cmd} failed: {out.stderr}")
    return {"median_ms": round(statistics.median(times), 1), "min_ms": round(min(times), 1)}


def bench_commands(db: Path, repeat: int) -> dict[str, dict[str, float]]:
    import sqlite3

    conn = sqlite3.connect(db)
    # a call from the last day with a fallback: the interesting kind to `show`
    call_id = conn.execute(
        "SELECT call_id FROM calls WHERE fallbacks > 0 ORDER BY started_at DESC LIMIT 1"
    ).fetchone()[0]
    conn.close()
    exe = str(Path(sys.executable).parent / "llm-events")
    env = dict(os.environ, LLM_EVENTS_DB=str(db), COLUMNS="160")
    commands = {
        "python -c pass (interpreter start-up)": [sys.executable, "-c", "pass"],
        "calls -n 50": [exe, "calls", "-n", "50"],
        f"show {call_id[:18]}": [exe, "show", call_id[:18]],
        f"search {RARE}": [exe, "search", RARE],
        "search 'refund invoice'": [exe, "search", "refund", "invoice"],
        "stats --since 1d": [exe, "stats", "--since", "1d"],
        "calls -n 50 --status error --since 3d": [
            exe,
            "calls",
            "-n",
            "50",
            "--status",
            "error",
            "--since",
            "3d",
        ],
        "tail -n 20": [exe, "tail", "-n", "20"],
        "replays": [exe, "replays"],
    }
    return {name: timed_runs(cmd, env, repeat) for name, cmd in commands.items()}


def bench_datasette(db: Path, repeat: int) -> dict[str, dict[str, float]]:
    import sqlite3

    from llm_events.browse.datasette import load_metadata
    from tests.cli_support import Browse

    meta = load_metadata()["databases"]["events"]
    name = db.stem
    conn = sqlite3.connect(db)
    call_id = conn.execute("SELECT call_id FROM calls ORDER BY started_at DESC LIMIT 1").fetchone()[
        0
    ]
    replay_id = conn.execute("SELECT replay_id FROM replay_results LIMIT 1").fetchone()
    conn.close()
    params = {
        "call_timeline": {"call_id": call_id[:18]},
        "replay_regressions": {"replay_id": replay_id[0] if replay_id else "x"},
        "search_answers": {"q": RARE},
    }
    conn = sqlite3.connect(db)
    present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    pages = {  # blobs is made with the first image a store keeps: not every store has it
        f"table {t}": f"/{name}/{t}"
        for t, m in meta["tables"].items()
        if not m.get("hidden") and t in present
    }
    pages["table prompts ?_search"] = f"/{name}/prompts?_search={RARE}"
    # our pages: a call that retried or fell back, the replay run, the dashboard
    conn = sqlite3.connect(db)
    busy = conn.execute(
        "SELECT call_id FROM calls WHERE fallbacks > 0 ORDER BY started_at DESC LIMIT 1"
    ).fetchone()[0]
    conn.close()
    pages["page call (a fallback)"] = f"/-/calls/{busy}"
    pages["page call (a prefix: redirect + page)"] = f"/-/calls/{busy[:18]}"
    if replay_id:
        pages["page replay"] = f"/-/replays/{replay_id[0]}"
        pages["page replay ?verdict=same"] = f"/-/replays/{replay_id[0]}?verdict=same"
    pages["page dashboard (30 days)"] = "/-/dashboard"
    pages["page dashboard (all, replays included)"] = "/-/dashboard?days=0&replays=1"
    for q in meta["queries"]:
        qs = urllib.parse.urlencode(params.get(q, {}))
        pages[f"query {q}"] = f"/{name}/{q}" + (f"?{qs}" if qs else "")
    browse = Browse(db).wait(120)
    results = {}
    try:
        for label, path in pages.items():
            t0 = time.perf_counter()
            browse.get(path)  # warm: templates, page cache (the dashboard's figures)
            first_ms = round((time.perf_counter() - t0) * 1000, 1)
            times = []
            failed = None
            for _ in range(repeat):
                t0 = time.perf_counter()
                status, body = browse.get(path)
                times.append((time.perf_counter() - t0) * 1000)
                if status != 200:  # recorded, not fatal: one slow view must not hide the rest
                    failed = f"HTTP {status}: {' '.join(body.split())[:160]}"
            if failed:
                results[label] = {"error": failed, "median_ms": round(statistics.median(times), 1)}
                continue
            results[label] = {
                "median_ms": round(statistics.median(times), 1),
                "max_ms": round(max(times), 1),
                "first_ms": first_ms,
            }
    finally:
        browse.stop()
    return results


def machine() -> dict[str, str | int]:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import sqlite3

    return {
        "nproc": os.cpu_count() or 0,
        "cpu": cpu,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--store", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-datasette", action="store_true")
    args = parser.parse_args()
    #: -v2: the replay run has replay calls of its own (answers to diff, replays kept apart)
    db = args.store or Path(f"/tmp/llm-events-bench-{args.events}-v2.db")
    built_s = None
    if not db.exists():
        t0 = time.perf_counter()
        build_store(db, args.events)
        built_s = round(time.perf_counter() - t0, 1)
    import sqlite3

    conn = sqlite3.connect(db)
    n_events = conn.execute("SELECT max(seq) FROM events").fetchone()[0]
    n_calls = conn.execute("SELECT count(*) FROM calls").fetchone()[0]
    conn.close()
    report = {
        "machine": machine(),
        "store": {
            "path": str(db),
            "events": n_events,
            "calls": n_calls,
            "mb": round(db.stat().st_size / 1e6),
            "built_s": built_s,
        },
        "targets_ms": {"command": 200, "datasette_page": 500, "call_and_replay_page": 100},
        "commands": bench_commands(db, args.repeat),
    }
    if not args.skip_datasette:
        report["datasette"] = bench_datasette(db, max(3, args.repeat // 2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
