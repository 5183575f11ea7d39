"""A rebuild changes settings for its own duration (checkpoints on a thread of their own, a
larger page cache, the search index in large segments): what it writes is the same, and
what it changed is back once it ends, fails, or is killed and the file opened again."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from llm_events import EventStore
from llm_events.log import events as ev
from llm_events.log import fts
from tests.helpers import read_db

TABLES = ("calls", "prompts", "tool_calls", "replays", "replay_results")
INDEXES = "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY 1"
PRAGMAS = ("cache_size", "threads", "wal_autocheckpoint")


def _record(store: EventStore, n: int) -> None:
    for i in range(n):
        pid = ev.new_id()
        store.append([ev.PromptBuilt(id=pid, ts=ev.now_iso(), prompt_id=pid, user=f"q{i} kiwi")])
        store.append(
            ev.answered_call_events(
                prompt_id=pid,
                ts=ev.now_iso(),
                client="c",
                backend="echo",
                model="echo",
                success={"text": f"answer {i} mango", "input_tokens": 3, "output_tokens": 2},
                call_id=ev.new_id(),
            )
        )


def _state(path) -> dict:
    conn = read_db(path)
    out = {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in TABLES}
    out["indexes"] = conn.execute(INDEXES).fetchall()
    out["fts_config"] = conn.execute("SELECT * FROM prompts_fts_config ORDER BY k").fetchall()
    out["found"] = conn.execute(
        "SELECT rowid FROM prompts_fts WHERE prompts_fts MATCH 'kiwi mango' ORDER BY rowid"
    ).fetchall()
    out["left"] = conn.execute("SELECT * FROM _meta WHERE key = 'deferred_indexes'").fetchall()
    conn.close()
    return out


def test_a_rebuild_writes_the_same_and_puts_its_settings_back(db_path):
    store = EventStore(db_path)
    _record(store, 12)
    store.flush()
    before = _state(db_path)
    assert len(before["found"]) == 12 and before["fts_config"] == [("version", 4)]
    conn = store._write_conn()
    pragmas = {p: conn.execute(f"PRAGMA {p}").fetchone()[0] for p in PRAGMAS}
    during = []

    def look(_n: int) -> None:
        during.append({p: conn.execute(f"PRAGMA {p}").fetchone()[0] for p in PRAGMAS})
        c = read_db(db_path)
        during[-1]["fts"] = c.execute("SELECT * FROM prompts_fts_config ORDER BY k").fetchall()
        c.close()

    assert store.rebuild(chunk=7, progress=look) == 60
    assert during and during[0]["wal_autocheckpoint"] == 0 and during[0]["cache_size"] < -2000
    assert ("hashsize", fts.BULK_OPTIONS[0][1]) in during[0]["fts"]
    assert {p: conn.execute(f"PRAGMA {p}").fetchone()[0] for p in PRAGMAS} == pragmas
    assert _state(db_path) == before
    # the index still merges its segments as it grows after the rebuild
    _record(store, 3)
    store.flush()
    assert len(_state(db_path)["found"]) == 15
    store.close()


def test_a_rebuild_that_fails_puts_its_settings_back(db_path, monkeypatch):
    from llm_events.log.projections import PromptsProjection

    store = EventStore(db_path)
    _record(store, 6)
    store.flush()
    before = _state(db_path)
    assert before["fts_config"] == [("version", 4)]
    monkeypatch.setattr(PromptsProjection, "apply", lambda *a: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        store.rebuild(chunk=4)
    monkeypatch.undo()
    after = _state(db_path)
    assert after["fts_config"] == before["fts_config"] and after["left"] == []
    assert after["indexes"] == before["indexes"]
    store.catch_up()
    assert _state(db_path) == before
    store.close()


KILLED_REBUILD = """
import os, signal, sys
from llm_events import EventStore
store = EventStore(sys.argv[1])
seen = []
def progress(n):
    seen.append(n)
    if len(seen) == 3:
        os.kill(os.getpid(), signal.SIGKILL)
store.rebuild(chunk=5, progress=progress)
"""


def test_a_rebuild_killed_half_way_leaves_a_file_the_next_open_repairs(db_path):
    store = EventStore(db_path)
    _record(store, 10)
    store.close()
    before = _state(db_path)
    assert before["fts_config"] == [("version", 4)] and before["left"] == []
    done = subprocess.run(
        [sys.executable, "-c", KILLED_REBUILD, str(db_path)], capture_output=True, timeout=120
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    left = _state_raw(db_path)
    assert left["prompts"] < len(before["prompts"])  # killed half-way
    assert any(k == "hashsize" for k, _v in left["fts_config"])  # the bulk options stayed
    assert fts.END_BULK in left["deferred"]
    EventStore(db_path).close()  # the next open catches up and does what the end would have
    assert _state(db_path) == before


def _state_raw(path) -> dict:
    """What the killed process left, read without opening it as a store (which repairs)."""
    import sqlite3

    import msgspec

    conn = sqlite3.connect(path)
    row = conn.execute("SELECT value FROM _meta WHERE key = 'deferred_indexes'").fetchone()
    out = {
        "prompts": conn.execute("SELECT count(*) FROM prompts").fetchone()[0],
        "fts_config": conn.execute("SELECT * FROM prompts_fts_config").fetchall(),
        "deferred": [] if row is None else msgspec.json.decode(row[0]),
    }
    conn.close()
    return out
