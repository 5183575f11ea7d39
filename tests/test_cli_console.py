"""The installed ``llm-events`` console script, run as a user runs it (real subprocesses)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.cli_support import console_script, make_sample_store


def env_for(db: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["LLM_EVENTS_DB"] = str(db)
    env["COLUMNS"] = "120"
    return env


def test_console_script_lists_shows_and_fails_cleanly(db_path):
    sample = make_sample_store(db_path)
    calls = subprocess.run(
        [console_script(), "calls", "-n", "3"], env=env_for(db_path), capture_output=True, text=True
    )
    assert calls.returncode == 0, calls.stderr
    assert calls.stdout.splitlines()[0].startswith("CALL ")
    assert len(calls.stdout.splitlines()) == 4
    show = subprocess.run(
        [console_script(), "show", sample.failed_call_id[:18]],
        env=env_for(db_path),
        capture_output=True,
        text=True,
    )
    assert show.returncode == 0 and "status    error" in show.stdout
    bad = subprocess.run(
        [console_script(), "show", "zzz"], env=env_for(db_path), capture_output=True, text=True
    )
    assert bad.returncode == 1
    assert bad.stdout == ""
    assert bad.stderr == "Error: no call with id 'zzz' (list ids with `llm-events calls`)\n"


def test_reading_commands_import_no_network_or_web_stack(db_path):
    """Start-up stays fast: `calls` must not pull in httpx, asyncio or Datasette."""
    make_sample_store(db_path)
    probe = (
        "import sys; from llm_events.cli import main\n"
        "try:\n    main(['calls', '-n', '1'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('httpx', 'asyncio', 'datasette', 'ssl') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env_for(db_path), capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "HEAVY []"


def test_tail_follow_sees_events_appended_by_another_process(db_path, tmp_path):
    make_sample_store(db_path)
    tail = subprocess.Popen(
        [console_script(), "tail", "-f", "-n", "0", "--interval", "0.1"],
        env=env_for(db_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)  # let it start and read the head
        writer = (
            "from llm_events import ContextBuilder, EventStore, client_from_spec\n"
            "from llm_events.recording.recorder import call_options\n"
            f"store = EventStore({str(db_path)!r})\n"
            "b = ContextBuilder(store=store)\n"
            "with call_options(store=store):\n"
            "    client_from_spec('echo').generate(b.build_prompt('followed?'), context_builder=b)\n"
            "store.close()\n"
        )
        subprocess.run([sys.executable, "-c", writer], check=True, env=env_for(db_path))
        seen: list[str] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = tail.stdout.readline()
            seen.append(line)
            if "call finished" in line:
                break
        text = "".join(seen)
        assert "prompt built" in text and "followed?" in text
        assert "attempt 1 succeeded" in text and "call finished" in text
    finally:
        tail.terminate()
        tail.wait(10)
        tail.stdout.close()
        tail.stderr.close()
