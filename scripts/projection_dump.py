"""Dump the projections a seeded random log gives, to compare two versions of the folds.

The log: calls interleaved and sometimes out of order, failed attempts, retries, fallbacks,
tool calls, refusals, prompts written after their calls, malformed payloads, a count past
2**63, replay runs.  Each seed is projected three ways: caught up in random chunks (1 to
500 events) as it is appended, appended and caught up by two stores on one file (each one's
caches reset when the other moved the checkpoints), and rebuilt.  Every projected table,
the search index and the salvage reports are pickled::

    PYTHONPATH=/path/to/old/checkout python scripts/projection_dump.py old.pkl 1,2,3 400
    python scripts/projection_dump.py new.pkl 1,2,3 400
    python scripts/projection_dump.py --compare old.pkl new.pkl

(Catching up and rebuilding differ for out-of-order calls, in both versions: a rebuild
reads an answer or prompt that is later in the log, a catch-up has not seen it yet.)
"""

from __future__ import annotations

import pickle
import random
import sys
import tempfile
from pathlib import Path

from llm_events.log import events as ev
from llm_events.log import salvage
from llm_events.log.store import EventStore

EventStore.follow_in_background = False  # catch-ups only where this script asks for them


def gen(seed: int, n_calls: int) -> list:
    """The seeded log: ``(event, payload bytes or None)`` in the order they are appended."""
    rng = random.Random(seed)
    k = [0]

    def nid():
        k[0] += 1
        return f"{seed:04d}{k[0]:028d}"

    def ts():
        return f"2026-01-{1 + rng.randrange(28):02d}T{rng.randrange(24):02d}:00:{rng.randrange(60):02d}.{rng.randrange(1000):03d}Z"

    out = []  # list of (event, payload bytes or None)
    prompts = []
    models = [
        "gpt-4o-mini",
        "gpt-4o-2024-08-06",
        "claude-3.5-haiku",
        None,
        "",
        "llama3",
        "unknown-x",
    ]
    backends = ["openai", "anthropic", "ollama", "", "openrouter", "echo"]
    texts = [
        "",
        "hello",
        "  lots   of\tspace\n ",
        "x" * 900,
        "é" * 300,
        "tab\there",
        " lead",
        "trail ",
    ]
    opens = []
    for _i in range(n_calls):
        r = rng.random()
        if r < 0.8 or not prompts:
            pid = nid()
            p = ev.PromptBuilt(
                id=pid,
                ts=ts(),
                prompt_id=pid,
                system=rng.choice(["", "sys"]),
                user=rng.choice(texts),
                examples=rng.choice([[], ["a", "b"]]),
                tags=rng.choice([[], ["x"], ["llm-import"]]),
                metadata=rng.choice(
                    [{}, {"vector_confidences": [0.1, 0.2]}, {"vector_confidences": "bad"}]
                ),
                vector_confidence=rng.choice([None, 0.5]),
                builder=rng.choice(["", "llm_import", "ContextBuilder"]),
            )
            prompts.append(p)
            if rng.random() < 0.9:
                out.append((p, None))
            else:
                opens.append([(p, None)])  # a prompt written later (after its call)
        prompt = rng.choice(prompts)
        cid = nid()
        evs = []
        model = rng.choice(models)
        src = rng.choice([None, None, "proxy", "replay"])
        evs.append(
            ev.CallStarted(
                id=nid(),
                ts=ts(),
                call_id=cid,
                prompt_id=rng.choice([prompt.prompt_id, prompt.prompt_id, None, "missing"]),
                client=rng.choice(["c", "legacy PromptDB", ""]),
                model=model,
                parent_call_id=rng.choice([None, None, "p1"]),
                tags=rng.choice([[], ["replay"], ["llm-import", "t"]]),
                source=src,
            )
        )
        if rng.random() < 0.2:
            evs.append(ev.RouteChosen(id=nid(), ts=ts(), call_id=cid, chosen="a", reason="r"))
        attempts = 1 + (rng.random() < 0.3) + (rng.random() < 0.1)
        for a in range(1, attempts + 1):
            b = rng.choice(backends)
            evs.append(
                ev.AttemptStarted(
                    id=nid(), ts=ts(), call_id=cid, attempt=a, backend=b, model=rng.choice(models)
                )
            )
            if a < attempts:
                evs.append(
                    ev.AttemptFailed(
                        id=nid(),
                        ts=ts(),
                        call_id=cid,
                        attempt=a,
                        backend=b,
                        error_type="E",
                        message=rng.choice(["", "boom"]),
                    )
                )
                if rng.random() < 0.5:
                    evs.append(
                        ev.RetryScheduled(id=nid(), ts=ts(), call_id=cid, attempt=a, delay_s=0.1)
                    )
                else:
                    evs.append(
                        ev.FallbackTaken(
                            id=nid(), ts=ts(), call_id=cid, from_backend=b, to_backend="x"
                        )
                    )
        ok = rng.random() < 0.85
        if ok and rng.random() < 0.97:
            tcs = rng.choice([[], [], [ev.ToolCallPart(id="t1", name="f", arguments='{"a":1}')]])
            evs.append(
                ev.AttemptSucceeded(
                    id=nid(),
                    ts=ts(),
                    call_id=cid,
                    attempt=attempts,
                    backend=rng.choice(backends),
                    model=rng.choice(models),
                    text=rng.choice(texts),
                    parsed=rng.choice([None, {"a": [1, 2.5]}]),
                    raw=rng.choice([None, {"id": "r"}]),
                    input_tokens=rng.choice([None, 10, 2**70 if rng.random() < 0.01 else 5]),
                    output_tokens=rng.choice([None, 7]),
                    cached_tokens=rng.choice([None, 3]),
                    reasoning_tokens=rng.choice([None, 2]),
                    tokens_estimated=rng.random() < 0.3,
                    cost=rng.choice([None, None, 0.01]),
                    latency_ms=rng.choice([None, 12.5]),
                    tool_calls=tcs,
                    refusal=rng.choice([None, None, "no"]),
                    cache_write_tokens=rng.choice([None, 1]),
                )
            )
        if rng.random() < 0.95:
            evs.append(
                ev.CallFinished(
                    id=nid(),
                    ts=ts(),
                    call_id=cid,
                    status="ok" if ok else rng.choice(["error", "cancelled"]),
                    attempts=attempts,
                    backend=rng.choice([None, "openai"]),
                    model=rng.choice([None, "gpt-4o"]),
                    error_type=None if ok else "E",
                    error_message=None if ok else "m",
                    latency_ms=rng.choice([None, 30.0]),
                )
            )
        if rng.random() < 0.05:  # a duplicate finished / success
            evs.append(ev.CallFinished(id=nid(), ts=ts(), call_id=cid, status="ok"))
        if rng.random() < 0.05 and len(evs) > 2:  # out of order
            i1, i2 = rng.sample(range(len(evs)), 2)
            evs[i1], evs[i2] = evs[i2], evs[i1]
        opens.append([(e, None) for e in evs])
        # interleave: flush some open calls partly
        while opens and (rng.random() < 0.6 or len(opens) > 6):
            j = rng.randrange(len(opens))
            take = rng.randrange(1, len(opens[j]) + 1)
            out.extend(opens[j][:take])
            opens[j] = opens[j][take:]
            if not opens[j]:
                opens.pop(j)
        if rng.random() < 0.02:  # malformed payloads of call types
            e = ev.AttemptSucceeded(id=nid(), ts=ts(), call_id=cid, attempt=1)
            out.append(
                (
                    e,
                    b'{"type":"attempt_succeeded","id":"'
                    + e.id.encode()
                    + b'","ts":"x","call_id":"'
                    + cid.encode()
                    + b'","attempt":"one","text":5}',
                )
            )
            e = ev.CallStarted(id=nid(), ts=ts(), call_id=cid)
            out.append(
                (
                    e,
                    b'{"type":"call_started","id":"'
                    + e.id.encode()
                    + b'","ts":"x","call_id":"'
                    + cid.encode()
                    + b'","tags":"notalist"}',
                )
            )
        if rng.random() < 0.03:
            rid = nid()
            out.append((ev.ReplayStarted(id=nid(), ts=ts(), replay_id=rid, total=3), None))
            out.append(
                (
                    ev.ReplayCompared(
                        id=nid(), ts=ts(), replay_id=rid, source_call_id=cid, verdict="same"
                    ),
                    None,
                )
            )
            out.append(
                (ev.ReplayFinished(id=nid(), ts=ts(), replay_id=rid, counts={"same": 1}), None)
            )
    for o in opens:
        out.extend(o)
    return out


TABLES = ["calls", "prompts", "tool_calls", "replays", "replay_results", "_projections"]


def dump(store: EventStore) -> dict:
    """Every projected table, a search of the index, and its size."""
    conn = store.conn()
    d = {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in TABLES}
    d["fts"] = conn.execute(
        "SELECT rowid, * FROM prompts_fts WHERE prompts_fts MATCH 'hello OR lots OR f OR x' ORDER BY rowid"
    ).fetchall()
    d["fts_n"] = conn.execute("SELECT count(*) FROM prompts_fts").fetchone()
    d["_projections"] = [r for r in d["_projections"]]
    return d


def write(store: EventStore, items: list, rng: random.Random | None = None) -> None:
    """Append ``items`` in random groups, catching up in random chunks after some."""
    i = 0
    while i < len(items):
        n = rng.randrange(1, 12) if rng else len(items)
        part = items[i : i + n]
        i += n
        plain = [e for e, p in part if p is None]
        if all(p is None for _e, p in part):
            store.append(plain)
        else:
            store.append_encoded([(e, p if p is not None else ev.encode(e)) for e, p in part])
        if rng and rng.random() < 0.5:
            store.catch_up(chunk=rng.choice([1, 2, 3, 5, 17, 500]))


def run(seed: int, n_calls: int, workdir: str) -> dict:
    """The dumps of one seed: caught up as appended, by two stores, and rebuilt."""
    items = gen(seed, n_calls)
    res = {}
    rng = random.Random(seed * 7 + 1)
    p = Path(workdir) / f"inc-{seed}.db"
    for s in ("", "-wal", "-shm"):
        Path(f"{p}{s}").unlink(missing_ok=True)
    st = EventStore(p)
    st.follow_in_background = False
    salvage.drain()
    write(st, items, rng)
    st.catch_up()
    st.flush()
    res["incremental"] = dump(st)
    res["salvage_inc"] = len(salvage.drain())
    # two stores on one file (two processes): each one's caches are reset when the other
    # moved the checkpoints, so calls whose events span their batches are read back
    p2 = Path(workdir) / f"two-{seed}.db"
    for s in ("", "-wal", "-shm"):
        Path(f"{p2}{s}").unlink(missing_ok=True)
    a, b = EventStore(p2), EventStore(p2)
    r2 = random.Random(seed * 11 + 3)
    i = 0
    while i < len(items):
        n = r2.randrange(1, 9)
        part = items[i : i + n]
        i += n
        w = a if r2.random() < 0.5 else b
        if all(pp is None for _e, pp in part):
            w.append([e for e, _p in part])
        else:
            w.append_encoded([(e, pp if pp is not None else ev.encode(e)) for e, pp in part])
        (a if r2.random() < 0.5 else b).catch_up(chunk=r2.choice([1, 2, 3, 7, 500]))
    a.catch_up()
    a.flush()
    b.flush()
    res["two"] = dump(a)
    res["salvage_two"] = sorted(map(str, salvage.drain()))
    a.close()
    b.close()
    st.rebuild(chunk=rng.choice([3, 100]))
    st.flush()
    res["rebuild_small"] = dump(st)
    st.rebuild()
    st.flush()
    res["rebuild"] = dump(st)
    res["salvage_rebuild"] = len(salvage.drain())
    st.close()
    return res


def compare(old: str, new: str) -> int:
    """Print what differs between two dumps; the exit status: 0 when nothing does."""
    a = pickle.load(open(old, "rb"))  # noqa: S301, SIM115 - our own files
    b = pickle.load(open(new, "rb"))  # noqa: S301, SIM115
    bad = 0
    for seed in a:
        for mode in a[seed]:
            if a[seed][mode] == b[seed][mode]:
                continue
            bad += 1
            if not isinstance(a[seed][mode], dict):
                print("differs:", seed, mode, a[seed][mode], b[seed][mode])
                continue
            for table in a[seed][mode]:
                x, y = a[seed][mode][table], b[seed][mode][table]
                if x != y:
                    print("differs:", seed, mode, table, len(x), len(y))
                    for r1, r2 in zip(x, y, strict=False):
                        if r1 != r2:
                            print("  old", r1)
                            print("  new", r2)
                            break
    print("identical" if not bad else f"{bad} differences")
    return 1 if bad else 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--compare"]:
        return compare(argv[1], argv[2])
    out, seeds, n_calls = argv[0], [int(x) for x in argv[1].split(",")], int(argv[2])
    workdir = tempfile.mkdtemp(prefix="projection-dump-")
    results = {seed: run(seed, n_calls, workdir) for seed in seeds}
    with open(out, "wb") as f:
        pickle.dump(results, f)
    for seed, r in results.items():
        print(
            seed,
            {k: (len(v["calls"]), len(v["prompts"])) for k, v in r.items() if isinstance(v, dict)},
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
