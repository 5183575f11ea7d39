"""Import of `llm` logs.db files, made by running the real `llm` package, then replayed."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from llm_events.cli import main
from llm_events.transfer.llm_import import import_llm_logs

from .backend_helpers import events

LLM = str(Path(sys.executable).with_name("llm"))
LEGACY_DUMP = Path(__file__).parent / "data" / "llm_0_19_logs.sql"


def run_llm(user_dir: Path, *args: str) -> str:
    """Run the installed `llm` CLI with its logs in ``user_dir``."""
    env = dict(os.environ, LLM_USER_PATH=str(user_dir))
    done = subprocess.run(
        [LLM, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def llm_logs(tmp_path: Path) -> Path:
    """A logs.db written by llm itself (its current layout: turns, messages, parts)."""
    user_dir = tmp_path / "llm"
    user_dir.mkdir()
    run_llm(user_dir, "-m", "echo", "-s", "Answer briefly.", "What is a token?")
    run_llm(user_dir, "-m", "markov", "-o", "length", "6", "-o", "delay", "0", "a b c a b d a c")
    run_llm(user_dir, "-c", "-m", "echo", "and a follow-up")
    return user_dir / "logs.db"


@pytest.fixture
def legacy_logs(tmp_path: Path) -> Path:
    """A logs.db from llm 0.19 (legacy `responses` table), later opened by today's llm."""
    user_dir = tmp_path / "legacy"
    user_dir.mkdir()
    conn = sqlite3.connect(user_dir / "logs.db")
    conn.executescript(LEGACY_DUMP.read_text())
    conn.close()
    run_llm(user_dir, "-m", "echo", "a new-style turn")  # migrates, adds a turn
    return user_dir / "logs.db"


def test_import_turns_written_by_llm(llm_logs, store, db_path):
    assert import_llm_logs(store, llm_logs) == 3
    calls = (
        store.conn()
        .execute(
            "SELECT client, backend, model, status, attempts, prompt_preview, tokens_estimated "
            "FROM calls ORDER BY started_at"
        )
        .fetchall()
    )
    assert [c[:5] for c in calls] == [
        ("llm:echo", "llm", "echo", "ok", 1),
        ("llm:markov", "llm", "markov", "ok", 1),
        ("llm:echo", "llm", "echo", "ok", 1),
    ]
    built = events(db_path, "prompt_built")
    assert (built[0]["system"], built[0]["user"]) == ("Answer briefly.", "What is a token?")
    assert built[0]["origin"] == "llm"
    # the follow-up keeps the earlier turn as history
    assert built[2]["user"] == "and a follow-up"
    assert [h["role"] for h in built[2]["metadata"]["llm_history"]] == ["user", "assistant"]

    answers = events(db_path, "attempt_succeeded")
    echoed = json.loads(answers[0]["text"])
    assert echoed["prompt"] == "What is a token?" and echoed["system"] == "Answer briefly."
    assert answers[0]["input_tokens"] is not None and answers[0]["tokens_estimated"] is False
    assert len(answers[1]["text"].split()) == 6  # markov, length 6
    assert answers[1]["tokens_estimated"] is True  # markov reports no usage
    assert events(db_path, "attempt_started")[1]["params"] == {"length": 6, "delay": 0.0}
    assert events(db_path, "call_started")[0]["tags"] == ["llm-import"]
    # priced like any call: llm's markov is free
    assert (
        store.conn().execute("SELECT cost FROM calls WHERE model = 'markov'").fetchone()[0] == 0.0
    )


def test_import_is_idempotent(llm_logs, store):
    assert import_llm_logs(store, llm_logs) == 3
    count = store.conn().execute("SELECT count(*) FROM events").fetchone()[0]
    assert import_llm_logs(store, llm_logs) == 0
    assert store.conn().execute("SELECT count(*) FROM events").fetchone()[0] == count
    assert store.verify().ok


def test_import_legacy_responses_and_turns(legacy_logs, store, db_path):
    assert import_llm_logs(store, legacy_logs) == 4
    rows = (
        store.conn().execute("SELECT model, latency_ms FROM calls ORDER BY started_at").fetchall()
    )
    assert [r[0] for r in rows] == ["markov", "markov", "markov", "echo"]
    built = events(db_path, "prompt_built")
    assert built[1]["system"] == "a system prompt"
    assert built[1]["user"] == "alpha beta gamma alpha delta"
    assert built[1]["metadata"]["llm_table"] == "responses"
    assert (
        built[1]["metadata"]["llm_conversation_id"] == built[2]["metadata"]["llm_conversation_id"]
    )
    answers = events(db_path, "attempt_succeeded")
    assert answers[0]["text"] == "log the dog sat on the dog sat "
    assert answers[1]["latency_ms"] == 168.0
    assert import_llm_logs(store, legacy_logs) == 0


def test_not_an_llm_logs_db(tmp_path, store):
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(ValueError, match="not an llm logs.db"):
        import_llm_logs(store, other)
    with pytest.raises(ValueError, match="no llm logs.db"):
        import_llm_logs(store, tmp_path / "missing.db")


def test_cli_import_from_llm_and_replay_against_markov(llm_logs, db_path):
    runner = CliRunner()
    result = runner.invoke(main, ["import", "--from-llm", str(llm_logs), "--db", str(db_path)])
    assert result.exit_code == 0, result.output
    assert "imported 3 calls" in result.output

    result = runner.invoke(
        main,
        [
            "replay",
            "--against",
            "llm:markov",
            "--tag",
            "llm-import",
            "--db",
            str(db_path),
            "--json",
        ],
    )
    assert result.exit_code in (0, 1), result.output  # 1: answers changed, as markov's do
    conn = sqlite3.connect(db_path)
    try:
        verdicts = [r[0] for r in conn.execute("SELECT verdict FROM replay_results")]
        replayed = conn.execute(
            "SELECT count(*) FROM calls WHERE parent_call_id IS NOT NULL AND status = 'ok' "
            "AND backend = 'llm' AND model = 'markov'"
        ).fetchone()[0]
    finally:
        conn.close()
    assert len(verdicts) == 3 and "error" not in verdicts
    assert replayed == 3
