"""``verify``: one snapshot under live writers, the head to keep, --expect-head, triggers;
and reading a store on a read-only file system."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import threading

import pytest
from click.testing import CliRunner

import llm_events
from llm_events import EventStore
from llm_events.cli import main
from llm_events.log import events as ev
from llm_events.log.chain import row_hash


def record(n: int) -> None:
    client = llm_events.client_from_spec("echo")
    builder = llm_events.ContextBuilder()
    for i in range(n):
        client.generate(builder.build_prompt(f"question {i}"), context_builder=builder)


def verify(db, *args):
    return CliRunner().invoke(main, ["verify", "--db", str(db), *args])


def test_verify_is_ok_while_a_writer_appends(db_path):
    record(2)
    store = llm_events.open_store(db_path)
    stop = threading.Event()

    def write() -> None:
        while not stop.is_set():
            store.append([ev.CallStarted(id=ev.new_id(), ts=ev.now_iso(), call_id="w")])

    writer = threading.Thread(target=write)
    writer.start()
    try:
        results = [EventStore(db_path, readonly=True).verify() for _ in range(15)]
    finally:
        stop.set()
        writer.join()
    assert [r.reason for r in results] == ["ok"] * 15
    assert len({r.checked for r in results}) > 1  # the log grew while it was verified


def forge(db, seq: int) -> None:
    """What a forger who knows the algorithm does: edit a row, re-chain every row after it,
    move the head, put the triggers back."""
    conn = sqlite3.connect(db)
    triggers = [s for (s,) in conn.execute("SELECT sql FROM sqlite_master WHERE type='trigger'")]
    conn.execute("DROP TRIGGER events_no_update")
    conn.execute("DROP TRIGGER events_no_delete")
    conn.execute(
        "UPDATE events SET payload = replace(payload, 'question', 'QUESTION') WHERE seq = ?", (seq,)
    )
    (prev,) = conn.execute("SELECT hash FROM events WHERE seq = ?", (seq - 1,)).fetchone()
    rows = conn.execute(
        "SELECT seq, id, type, call_id, ts, payload FROM events WHERE seq >= ? ORDER BY seq", (seq,)
    ).fetchall()
    for s, id_, type_, key, ts, payload in rows:
        h = row_hash(prev, s, id_, type_, key, ts, payload)
        conn.execute("UPDATE events SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, h, s))
        prev = h
    conn.execute("UPDATE _meta SET value = ? WHERE key = 'head'", (f"{rows[-1][0]}:{prev}",))
    for sql in triggers:
        conn.execute(sql)
    conn.commit()
    conn.close()


def test_verify_prints_the_head_and_expect_head_catches_a_rewritten_log(db_path):
    record(2)
    first = verify(db_path)
    assert first.exit_code == 0
    head = first.output.splitlines()[1].removeprefix("head: ")
    assert head.startswith("10:")
    record(1)  # the log grows: it still extends the head kept earlier
    later = verify(db_path, "--expect-head", head)
    assert later.exit_code == 0, later.output
    assert later.output.splitlines()[1].startswith("head: 15:")
    llm_events.recording.config.reset()
    forge(db_path, 6)  # the second call's prompt_built
    assert verify(db_path).exit_code == 0  # the chain itself is consistent again
    caught = verify(db_path, "--expect-head", head)
    assert caught.exit_code == 1
    assert f"FAILED at seq 10: the log does not extend the expected head {head}" in caught.output
    assert "it was rewritten or truncated since that head was taken" in caught.output
    beyond = verify(db_path, "--expect-head", "99:" + "0" * 64)
    assert beyond.exit_code == 1 and "(the log ends at seq 15)" in beyond.output
    bad = verify(db_path, "--expect-head", "ten:abc")
    assert bad.exit_code == 2 and "expected head as SEQ:HASH" in bad.output


def test_verify_reports_missing_append_only_triggers(db_path):
    record(1)
    llm_events.recording.config.reset()
    conn = sqlite3.connect(db_path)
    conn.execute("DROP TRIGGER events_no_delete")
    conn.commit()
    conn.close()
    result = verify(db_path)
    assert result.exit_code == 1
    assert (
        "FAILED the append-only trigger events_no_delete is missing: the log is no longer "
        "protected against UPDATE/DELETE (5 events intact, head 5:"
    ) in result.output


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1)")
def test_a_store_on_a_read_only_file_system_can_be_read(tmp_path, db_path):
    record(2)
    llm_events.recording.config.reset()
    store_dir = db_path.parent
    exe = shutil.which("llm-events", path=str(__import__("pathlib").Path(sys.executable).parent))
    script = (
        f"mount --bind {store_dir} {store_dir} && mount -o remount,bind,ro {store_dir} && "
        f"touch {store_dir}/probe 2>/dev/null && echo WRITABLE; "
        f"{exe} calls --db {db_path} -n 5 && {exe} verify --db {db_path} && "
        f"{exe} export --db {db_path} | wc -l"
    )
    try:
        done = subprocess.run(
            ["unshare", "-r", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=60
        )
    except OSError:
        pytest.skip("unshare cannot run here")
    if "mount" in done.stderr and done.returncode != 0 and "ok:" not in done.stdout:
        pytest.skip(f"cannot make a read-only mount here: {done.stderr.strip()}")
    assert "WRITABLE" not in done.stdout
    assert done.returncode == 0, done.stderr
    assert "unable to open" not in done.stderr
    assert done.stdout.count("ok") >= 2  # the two calls listed, then verify's line
    assert "ok: 10 events verified" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "10"
