"""A store whose tables an older llm-events laid out is upgraded by the first process that
reads it (``calls``, ``browse``), not only by the next writer: its tables have this
version's columns and indexes (the Datasette facets rely on them)."""

from __future__ import annotations

import sqlite3
import subprocess
import time

from llm_events.log.versions import VERSIONS
from tests.cli_support import Browse, console_script


def older(db) -> None:
    """Make ``db`` look as an llm-events with calls v3 (no facet indexes) left it."""
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE _projections SET version = 3 WHERE name = 'calls'")
        conn.execute("DROP INDEX calls_backend")
        conn.execute("DROP INDEX calls_day")
    conn.close()


def layout(db) -> tuple[int, set[str]]:
    conn = sqlite3.connect(db)
    try:
        (version,) = conn.execute(
            "SELECT version FROM _projections WHERE name = 'calls'"
        ).fetchone()
        indexes = {
            r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        }
        return version, indexes
    finally:
        conn.close()


def demo(db) -> None:
    subprocess.run([console_script(), "demo", "--db", str(db)], check=True, capture_output=True)


def test_a_reading_command_upgrades_the_tables_once_and_says_so(tmp_path):
    db = tmp_path / "old.db"
    demo(db)
    older(db)
    first = subprocess.run(
        [console_script(), "calls", "--db", str(db), "-n", "50"], capture_output=True, text=True
    )
    assert first.returncode == 0, first.stderr
    assert first.stderr == (
        f"note: upgrading the calls table of {db} to this version of llm-events "
        "(once; rebuilt from the log, which is untouched)\n"
    )
    assert len(first.stdout.splitlines()) == 1 + 9  # the demo's nine calls, all there
    version, indexes = layout(db)
    assert version == VERSIONS["calls"] and {"calls_backend", "calls_day"} <= indexes
    again = subprocess.run(
        [console_script(), "calls", "--db", str(db)], capture_output=True, text=True
    )
    assert again.returncode == 0 and again.stderr == ""


def test_browse_upgrades_the_tables_in_the_background(tmp_path):
    db = tmp_path / "old.db"
    demo(db)
    older(db)
    browse = Browse(db).wait()
    try:
        # The version is stamped when the table is reset; its indexes come back after the
        # fold, one write transaction each: the upgrade is done when both are there.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            version, indexes = layout(db)
            if version == VERSIONS["calls"] and {"calls_backend", "calls_day"} <= indexes:
                break
            time.sleep(0.2)
        assert version == VERSIONS["calls"] and {"calls_backend", "calls_day"} <= indexes
        status, page = browse.get("/old/calls.json?_shape=array&_size=50")
        assert status == 200 and page.count('"call_id"') == 9
    finally:
        browse.stop()
