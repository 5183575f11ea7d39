"""The benchmark scripts BENCHMARKS.md tells people to run still run, at tiny sizes.

They import the store's internals (writer constants, the rebuild's chunk, projections) and
went unrun between sessions: ``bench_core.py --only rebuild`` failed at its floor for a
session after the store was split.  Each part runs here on a few calls and must produce the
figures BENCHMARKS.md quotes; the figures themselves are not judged (no timings in tests).
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def bench_core():
    sys.path.insert(0, str(BENCH_DIR))
    try:
        yield importlib.import_module("bench_core")
    finally:
        sys.path.remove(str(BENCH_DIR))


def test_recording_batch_and_threads_produce_their_figures_and_floors(bench_core, tmp_path):
    rec = bench_core.bench_recording(tmp_path, calls=12, reps=1, llm_calls=2)
    for key in (
        "overhead_us",
        "raw_sqlite3_background_checkpoints_us",
        "overhead_vs_raw_background_checkpoints",
        "events_rows_vs_raw_background_checkpoints",
        "minimal_python_us",
        "floor_with_minimal_python_vs_raw_background_checkpoints",
        "required_work_floor_us",
        "required_work_without_projection_rows_us",
        "required_work_events_only_us",
        "overhead_vs_required_work_floor",
    ):
        assert rec[key] > 0, key
    assert rec["wal_pages_per_call"]["recorded"] > 0
    batch = bench_core.bench_batch(tmp_path, calls=60, reps=1)
    assert batch["events_per_rep"] == 300
    assert batch["floor_events_and_projection_rows_vs_raw_executemany"] > 0
    assert batch["vs_raw_executemany"] > 0 and batch["import_vs_raw_executemany"] > 0
    threads = bench_core.bench_threads(tmp_path, calls=64, reps=1)
    assert threads["one_thread_cpu_us_per_call"] > 0 and threads["threads_64_cpu_us_per_call"] > 0
    assert threads["required_work_threads_64_vs_1"] > 0


def test_the_required_work_floor_writes_a_store_that_verifies(bench_core, tmp_path):
    """What the floor times is a correct store: a chain that verifies, every call's row,
    its prompt and its search entry (so the floor leaves out nothing the spec requires)."""
    from llm_events import EventStore

    src = tmp_path / "src.db"
    bench_core._sequential_groups(src, 6)
    work = bench_core.RequiredWork(str(src), 6, batch=4)
    work.fresh(str(tmp_path / "floor.db"))
    for i in range(10):
        work.call(i)
    work.close()
    with EventStore(tmp_path / "floor.db", readonly=True) as store:
        assert store.verify().ok
        conn = store.conn()
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 50
        assert conn.execute("SELECT count(DISTINCT call_id) FROM calls").fetchone()[0] == 10
        assert conn.execute("SELECT count(*) FROM prompts").fetchone()[0] == 10
        hits = "SELECT count(*) FROM prompts_fts WHERE prompts_fts MATCH 'restart'"
        assert conn.execute(hits).fetchone()[0] == 10


def test_rebuild_and_its_floor_on_a_small_store(bench_core, tmp_path):
    out = bench_core.bench_rebuild(tmp_path / "cache", tmp_path, 1_000, lookups=3)
    assert out["events"] == 1_000 and out["applied"] == 1_000
    assert set(out["floor"]) == {
        "read_cpu_s",
        "decode_cpu_s",
        "write_cpu_s",
        "index_cpu_s",
        "sum_cpu_s",
        "writer_best_cpu_s",
        "least_fold_cpu_s",
        "drop_cpu_s",
        "best_cpu_s",
    }
    assert out["lookups_met"] in (True, False)


def test_the_least_fold_makes_the_rebuilds_rows_and_says_when_it_does_not(bench_core, tmp_path):
    """The floor's fold is checked against the rebuilt tables: a fold that skipped work (or
    a rebuild that changed its rows) stops the benchmark instead of flattering the floor."""
    import sqlite3

    from llm_events.log import catchup

    least_fold = importlib.import_module("least_fold")
    path, _ = bench_core.big_store(tmp_path / "cache", 1_000)
    EventStore = bench_core.EventStore
    store = EventStore(path)
    store.rebuild()
    store.close()
    conn = sqlite3.connect(path)
    rows = conn.execute(
        "SELECT seq, type, CAST(payload AS BLOB) FROM events ORDER BY seq"
    ).fetchall()
    fold = least_fold.LeastFold()
    decoded = catchup._decode_rows(rows, None)
    fold.apply([(seq, row[1], event) for (seq, event), row in zip(decoded, rows, strict=True)])
    assert len(fold.calls) == conn.execute("SELECT count(*) FROM calls").fetchone()[0] > 100
    least_fold.check(fold, conn)  # the same rows
    conn.execute("UPDATE prompts SET model = 'other' WHERE id = 7")
    with pytest.raises(AssertionError, match="differs from the rebuild in prompts"):
        least_fold.check(fold, conn)
    fold.calls.pop()
    with pytest.raises(AssertionError, match="calls rows"):
        least_fold.check(fold, conn)


def test_profile_recording_prints_where_a_call_goes(tmp_path):
    run = subprocess.run(
        [sys.executable, str(BENCH_DIR / "profile_recording.py"), "--calls", "40", "--reps", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["calls"] == 40
    parts = out["parts_us"]
    for part in ("commit_transaction (main)", "prompt_built_event (main)", "sha256_chain (main)"):
        assert parts[part] > 0, part


def test_the_interleaved_ab_of_a_recorded_call_against_a_commit():
    head = subprocess.run(
        ["git", "-C", str(BENCH_DIR.parent), "rev-parse", "--verify", "HEAD"],
        capture_output=True,
        text=True,
    )
    if head.returncode != 0:
        pytest.skip("not a git checkout")
    run = subprocess.run(
        [
            sys.executable,
            str(BENCH_DIR / "ab_recording.py"),
            "--base",
            "HEAD",
            "--blocks",
            "2",
            "--calls",
            "5",
            "--rounds",
            "2",
            "--thread-calls",
            "16",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    for measure in ("python_only_overhead_cpu_us", "overhead_cpu_us"):
        assert out[measure]["base_us"] > 0 and out[measure]["new_vs_base"] > 0, measure
    for side in ("base", "new"):
        assert out["threads"][side]["threads_64_calls_per_s"] > 0


def test_the_eight_process_run_and_its_plain_sqlite3_floor(bench_core, tmp_path):
    out = bench_core.bench_processes(tmp_path, calls=2, history=500)
    for run in (
        "writers_alone",
        "raw_commits_floor",
        "required_work_floor",
        "with_readers_and_rebuild",
    ):
        assert out[run]["calls"] == 8 * 4 * 2, run
        assert 0 < out[run]["p50_ms"] <= out[run]["p99_ms"] <= out[run]["max_ms"], run
