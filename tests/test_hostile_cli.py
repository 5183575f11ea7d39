"""The CLI under a hostile user (the outside checks' kind): odd option values, odd files in
place of a store or an export, paths with spaces, Ctrl-C. Each test holds the exact line and
exit status a user sees; each failed on the code before its fix."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from llm_events.cli import main
from tests.cli_support import SampleStore, console_script, make_sample_store


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleStore:
    return make_sample_store(tmp_path_factory.mktemp("hostile") / "sample.db")


def cli(*args: str, db: Path | None = None):
    extra = ["--db", str(db)] if db is not None else []
    return CliRunner(env={"COLUMNS": "120"}).invoke(main, [*args, *extra], prog_name="llm-events")


def event_count(db: Path, type_: str | None = None) -> int:
    conn = sqlite3.connect(db)
    try:
        if type_ is None:
            return conn.execute("SELECT count(*) FROM events").fetchone()[0]
        return conn.execute("SELECT count(*) FROM events WHERE type = ?", (type_,)).fetchone()[0]
    finally:
        conn.close()


# --- tail -------------------------------------------------------------------------------------


def test_tail_n_0_prints_every_event_as_its_help_says(sample):
    """`-n 0` is "all" in every listing's help; tail printed nothing and said "no events
    match" on a store full of them."""
    result = cli("tail", "-n", "0", "--json", db=sample.path)
    assert (result.exit_code, result.stderr) == (0, "")
    seqs = [json.loads(line)["seq"] for line in result.stdout.splitlines()]
    assert seqs == list(range(1, event_count(sample.path) + 1))
    text = cli("tail", "-n", "0", "--type", "call_finished", db=sample.path)
    assert text.exit_code == 0
    assert len(text.stdout.splitlines()) == event_count(sample.path, "call_finished") > 1


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("inf", "bad --interval: inf is out of range (more than 0, at most 3600 s)"),
        ("1e308", "bad --interval: 1e308 is out of range (more than 0, at most 3600 s)"),
        ("nan", "bad --interval: nan is out of range (more than 0, at most 3600 s)"),
        ("0", "bad --interval: 0 is out of range (more than 0, at most 3600 s)"),
        ("-1", "bad --interval: -1 is out of range (more than 0, at most 3600 s)"),
        ("soon", "bad --interval: 'soon' is not a number of seconds"),
    ],
)
def test_tail_follow_refuses_an_interval_it_cannot_sleep(sample, value, message):
    """`tail -f --interval inf` (or 1e308) ended in an OverflowError traceback from
    time.sleep, and -1 printed the events first, then failed with exit 1."""
    result = cli("tail", "-f", "--interval", value, db=sample.path)
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", f"Error: {message}\n")


# --- options that click's FloatRange lets through ---------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["replay", "--against", "echo", "--timeout", "nan"], "bad --timeout: nan is not a finite number"),
        (["replay", "--against", "echo", "--timeout", "inf"], "bad --timeout: inf is not a finite number"),
        (["replay", "--against", "echo", "--threshold", "nan"], "bad --threshold: nan is not a finite number"),
        (["prompt", "hi", "-m", "echo", "--retry-delay", "inf"], "bad --retry-delay: inf is not a finite number"),
        (["prompt", "hi", "-m", "echo", "--retry-delay", "nan"], "bad --retry-delay: nan is not a finite number"),
    ],
)  # fmt: skip
def test_non_finite_numbers_are_refused_before_anything_runs(sample, args, message):
    """`--timeout nan` was accepted and meant no timeout at all (nan never compares
    greater); `--retry-delay inf` would overflow time.sleep at the first retry."""
    before = event_count(sample.path)
    result = cli(*args, db=sample.path)
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", f"Error: {message}\n")
    assert event_count(sample.path) == before


# --- replay ------------------------------------------------------------------------------------

#: the largest number of threads seen alive while the replayed calls ran
_PEAK_THREADS: list[int] = []


def count_threads(prompt) -> str:
    _PEAK_THREADS.append(threading.active_count())
    return prompt.user


def test_replay_with_a_huge_concurrency_starts_no_more_workers_than_calls(tmp_path):
    """`replay --concurrency 1000000000` started a billion threads up front: 0 of 8 calls
    compared after 20 s. The pool now has at most one worker per selected call."""
    import replay

    db = tmp_path / "c.db"
    make_sample_store(db)
    _PEAK_THREADS.clear()
    before = threading.active_count()
    report = replay.run(
        str(db), f"{__name__}:count_threads", concurrency=5000, select={"status": None}
    )
    assert report.status == "completed" and report.compared == report.planned > 0
    assert _PEAK_THREADS and max(_PEAK_THREADS) <= before + report.planned + 4


# --- odd files where a store or an export is expected ----------------------------------------


def test_import_of_an_sqlite_file_names_the_option_that_reads_it(tmp_path):
    """`import logs.db` (an llm log, without --from-llm) said only "is not a text file"."""
    logs = tmp_path / "logs.db"
    conn = sqlite3.connect(logs)
    conn.executescript((Path(__file__).parent / "data" / "llm_0_19_logs.sql").read_text())
    conn.close()
    result = cli("import", str(logs), db=tmp_path / "store.db")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {logs} is an SQLite file, not JSON Lines from `export` (an llm logs.db? "
        f"import it with --from-llm {logs}); 0 events before it were imported (importing "
        "again is safe: stored events are skipped)\n"
    )
    assert cli("import", "--from-llm", str(logs), "-q", db=tmp_path / "store.db").exit_code == 0


def test_commands_printed_to_run_next_quote_a_path_with_spaces(tmp_path):
    """demo's "Look at it" lines gave `--db my store.db` unquoted: pasted into a shell, that
    is two arguments and `show` fails."""
    db = tmp_path / "my store é.db"
    result = cli("demo", db=db)
    assert result.exit_code == 0, result.output
    hints = [line.strip() for line in result.stdout.splitlines() if line.startswith("  llm-events")]
    assert hints and all(line.split("    #")[0].endswith(f"--db '{db}'") for line in hints)
    show = next(line for line in hints if "# a fallback" in line).split("    #")[0]
    ran = subprocess.run(show.replace("llm-events", console_script(), 1), shell=True, capture_output=True, text=True)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert "fallback" in ran.stdout
    # a store named by $LLM_EVENTS_DB is seen by the next command too: no --db then
    env = CliRunner(env={"LLM_EVENTS_DB": str(tmp_path / "env.db")}).invoke(main, ["demo"])
    assert env.exit_code == 0 and "  llm-events browse\n" in env.stdout


# --- Ctrl-C -------------------------------------------------------------------------------------


def _record_calls(db: Path, n: int) -> None:
    import llm_events
    from llm_events import ContextBuilder, EventStore, client_from_spec
    from llm_events.recording.recorder import call_options

    store = EventStore(db, batch=True)
    try:
        builder = ContextBuilder(store=store)
        client = client_from_spec("echo")
        with call_options(store=store):
            for i in range(n):
                client.generate(builder.build_prompt(f"question {i}"), context_builder=builder)
        store.flush()
    finally:
        store.close()
    llm_events.flush()


def _wait(condition, proc: subprocess.Popen, what: str, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_ctrl_c_during_import_says_what_was_imported_and_a_rerun_completes(tmp_path):
    """Ctrl-C in `import` printed click's bare "Aborted!" and exit 1: nothing said how much
    was in, or that importing again is safe. Now: one line, exit 130, the count is the
    store's, and the same import run again adds exactly the rest."""
    src = tmp_path / "src.db"
    _record_calls(src, 1100)  # 5 events a call: more than one 5,000-event import chunk
    exported = cli("export", db=src).stdout.splitlines(keepends=True)
    total = len(exported)
    assert total > 5000
    dest = tmp_path / "dest.db"
    env = {**os.environ, "LLM_EVENTS_DB": str(dest)}
    proc = subprocess.Popen(
        [console_script(), "import", "-"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None
    proc.stdin.writelines(exported[:5200])
    proc.stdin.flush()

    def first_chunk_in() -> bool:
        try:
            return dest.exists() and event_count(dest) >= 5000
        except sqlite3.OperationalError:  # the file exists, its tables not yet
            return False

    _wait(first_chunk_in, proc, "the first chunk to be committed")
    proc.send_signal(signal.SIGINT)  # the import is waiting for more lines on stdin
    out, err = proc.communicate(timeout=60)
    stored = event_count(dest)
    assert (proc.returncode, out) == (130, "")
    assert err == (
        f"interrupted: {stored} new events were imported (importing again is safe: stored "
        "events are skipped)\n"
    )
    again = subprocess.run(
        [console_script(), "import", "-"], env=env, input="".join(exported), capture_output=True, text=True
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert again.stdout == (
        f"imported {total - stored} new events from - ({stored} already in {dest})\n"
    )
    assert event_count(dest) == total
    verified = subprocess.run([console_script(), "verify"], env=env, capture_output=True, text=True)
    assert verified.returncode == 0, verified.stderr


def test_ctrl_c_of_a_replay_run_with_db_names_the_store_in_its_resume_hint(tmp_path):
    """The resume hint after Ctrl-C left out `--db`: run as printed, it resumed nothing
    (`no replay ... in` the default store)."""
    db = tmp_path / "replay store.db"
    _record_calls(db, 30)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "REPLAY_TEST_DELAY": "0.2"}
    env.pop("LLM_EVENTS_DB", None)
    proc = subprocess.Popen(
        [console_script(), "replay", "--db", str(db), "--against", "tests.test_replay_clients:slow", "--concurrency", "2"],
        env=env,
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip

    def compared() -> bool:
        try:
            conn = sqlite3.connect(db)
            try:
                return (
                    conn.execute(
                        "SELECT count(*) FROM events WHERE type = 'replay_compared'"
                    ).fetchone()[0]
                    >= 2
                )
            finally:
                conn.close()
        except sqlite3.OperationalError:
            return False

    _wait(compared, proc, "two compared calls")
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    hint = err.strip().splitlines()[-1]
    assert hint.startswith("interrupted: ") and hint.endswith(f" --db '{db}'`"), hint
    command = hint.split("continue with `")[1].rstrip("`")
    resumed = subprocess.run(
        command.replace("llm-events", console_script(), 1) + " -q",
        shell=True,
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode in (0, 1), resumed.stderr  # 1: answers changed, as replays do
    assert "no replay" not in resumed.stderr
