"""The seed's API and the store under odd arguments and damaged files (the outside checks'
kind): each error is raised before anything runs, names what was wrong, and never replaces
the caller's own error; each test failed on the code before its fix."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

import llm_events
from llm_events import (
    ContextBuilder,
    EventStore,
    LLMClient,
    LLMResult,
    LLMRouter,
    PromptDB,
    client_from_settings,
    with_retry,
)
from llm_events.cli import main
from llm_events.log.store import StoreError

# --- with_retry --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"attempts": 1.5}, TypeError, "attempts must be a whole number, not 1.5"),
        ({"attempts": "3"}, TypeError, "attempts must be a whole number, not '3'"),
        ({"attempts": 0}, ValueError, "attempts must be at least 1"),
        ({"delay": -1}, ValueError, "delay must be a finite number >= 0, not -1"),
        ({"delay": float("nan")}, ValueError, "delay must be a finite number >= 0, not nan"),
        ({"delay": float("inf")}, ValueError, "delay must be a finite number >= 0, not inf"),
        ({"delay": "1"}, TypeError, "delay must be a number, not '1'"),
        ({"jitter": -5}, ValueError, "jitter must be a finite number >= 0, not -5"),
        ({"exc": "ValueError"}, TypeError, "exc must be an exception class or a tuple of them, not 'ValueError'"),
        ({"exc": (ValueError, int)}, TypeError, "exc must be an exception class or a tuple of them, not (<class 'ValueError'>, <class 'int'>)"),
        ({"exc": ()}, TypeError, "exc must be an exception class or a tuple of them, not ()"),
    ],
)  # fmt: skip
def test_with_retry_refuses_odd_arguments_before_the_first_try(options, error, message):
    """`delay=-1` ran the function, then raised "sleep length must be non-negative" in
    place of the function's own error; `exc="ValueError"` raised a TypeError from the
    except clause at the first failure; `delay=inf` an OverflowError."""
    calls = []

    def fails() -> None:
        calls.append(1)
        raise ValueError("the caller's own error")

    with pytest.raises(error) as raised:
        with_retry(fails, **options)
    assert str(raised.value) == message
    assert calls == []


@pytest.mark.parametrize("func", [None, 5, "generate"])
def test_with_retry_needs_something_to_call(func):
    with pytest.raises(TypeError) as raised:
        with_retry(func)
    assert str(raised.value) == f"with_retry needs a function to call, not {type(func).__name__}"


class _RateLimited(Exception):
    def __init__(self, retry_after: object) -> None:
        super().__init__("429 slow down")
        self.retry_after = retry_after


@pytest.mark.parametrize("hint", [float("inf"), "inf", "Infinity"])
def test_a_servers_infinite_retry_after_is_ignored_not_an_overflow(hint):
    """A `Retry-After: inf` from a server made with_retry raise OverflowError from
    time.sleep instead of retrying (or re-raising the 429)."""
    tries = []

    def flaky() -> str:
        tries.append(1)
        if len(tries) == 1:
            raise _RateLimited(hint)
        return "answered"

    assert with_retry(flaky, attempts=2, delay=0) == "answered"
    assert len(tries) == 2


# --- client_from_settings, the backend registry, LLMRouter -------------------------------------


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AVAILABLE_LLM_BACKENDS": '["mine"]'}, 'AVAILABLE_LLM_BACKENDS must map names to factories, as a JSON object like {"mine": "package.module:factory"}, not a list'),
        ({"AVAILABLE_LLM_BACKENDS": '"mine"'}, 'AVAILABLE_LLM_BACKENDS must map names to factories, as a JSON object like {"mine": "package.module:factory"}, not a str'),
        ({"AVAILABLE_LLM_BACKENDS": '{"mine": "os.path"}', "LLM_BACKEND": "mine"}, "backend 'mine': 'os.path' is a module, not a client class or factory function"),
        ({"AVAILABLE_LLM_BACKENDS": '{"mine": "json:__doc__"}', "LLM_BACKEND": "mine"}, "backend 'mine': 'json:__doc__' is a str, not a client class or factory function"),
        ({"AVAILABLE_LLM_BACKENDS": '{"mine": 5}', "LLM_BACKEND": "mine"}, "backend 'mine': 5 is neither a client class, a factory function nor a dotted path to one ('package.module:factory')"),
    ],
)  # fmt: skip
def test_client_from_settings_with_bad_backends_is_a_clear_value_error(monkeypatch, env, message):
    """These raised AttributeError ('list' object has no attribute 'items') or TypeError
    ('module' object is not callable) from deep inside."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError) as raised:
        client_from_settings()
    assert str(raised.value) == message


class _Down(LLMClient):
    def _generate(self, prompt, *, context_builder):
        raise ConnectionError(f"{self.name} is down")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"remote": None}, "LLMRouter remote must be a client (an object with generate()), not NoneType"),
        ({"local": "echo"}, "LLMRouter local must be a client (an object with generate()), not str"),
        ({"size_threshold": "big"}, "LLMRouter size_threshold must be a number, not 'big'"),
        ({"failure_cooldown": float("nan")}, "LLMRouter failure_cooldown must be a number, not nan"),
    ],
)  # fmt: skip
def test_a_router_over_something_that_is_not_a_client_is_refused_when_made(kwargs, message):
    """`LLMRouter(remote=None, ...)` was accepted, then failed at the first prompt with
    AttributeError: 'NoneType' object has no attribute 'name' (or a TypeError comparing
    a size with 'big')."""
    args = {"remote": _Down("remote"), "local": _Down("local"), **kwargs}
    with pytest.raises(TypeError) as raised:
        LLMRouter(**args)
    assert str(raised.value) == message


def test_a_router_whose_backends_both_fail_raises_the_fallbacks_error_and_records_it(db_path):
    builder = ContextBuilder()
    router = LLMRouter(remote=_Down("remote"), local=_Down("local"))
    with pytest.raises(ConnectionError, match="remote is down"):
        router.generate(builder.build_prompt("hello"), context_builder=builder)
    llm_events.flush()
    conn = sqlite3.connect(db_path)
    try:
        types = [r[0] for r in conn.execute("SELECT type FROM events ORDER BY seq")]
    finally:
        conn.close()
    assert types.count("attempt_failed") == 2 and "fallback_taken" in types
    assert types[-1] == "call_finished"


# --- a store path that is something else ------------------------------------------------------


def test_a_store_or_prompt_db_on_a_directory_says_so(tmp_path):
    """It said "unable to open database file" (SQLite's words for any failure to open)."""
    folder = tmp_path / "prompts.db"
    folder.mkdir()
    with pytest.raises(StoreError) as raised:
        EventStore(folder)
    assert str(raised.value) == f"cannot open event store {folder}: it is a directory"
    with pytest.raises(StoreError) as raised:
        PromptDB("demo", path=str(folder)).log(
            ContextBuilder().build_prompt("hi"), LLMResult(text="ok")
        )
    assert str(raised.value) == f"cannot open event store {folder}: it is a directory"


# --- verify on a damaged file --------------------------------------------------------------------


def _damaged_copy(db_path: Path, tmp_path: Path, object_name: str) -> Path:
    """A checkpointed copy of the store with the first b-tree page of ``object_name``
    overwritten (its page type byte made invalid), as a bad disk sector would."""
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    copy = tmp_path / f"damaged-{object_name}.db"
    copy.write_bytes(db_path.read_bytes())
    conn = sqlite3.connect(copy)
    try:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        (root,) = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = ?", (object_name,)
        ).fetchone()
    finally:
        conn.close()
    assert root > 1
    with open(copy, "r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(b"\xff" * 64)
    return copy


def _record(db_path: Path, n: int) -> None:
    client = llm_events.client_from_spec("echo")
    builder = ContextBuilder()
    for i in range(n):
        client.generate(builder.build_prompt(f"question {i}"), context_builder=builder)
    llm_events.flush()
    for store in llm_events.log.store.open_stores():
        store.close()


def test_verify_fails_on_a_damaged_index_beside_an_intact_chain(db_path, tmp_path):
    """The chain verified ("ok: N events verified", exit 0) while a page of the file was
    garbage: the next append then failed with "database disk image is malformed"."""
    _record(db_path, 30)
    damaged = _damaged_copy(db_path, tmp_path, "events_call_id")
    result = CliRunner().invoke(main, ["verify", "--db", str(damaged)])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("FAILED the file is damaged: Page ")
    assert "(SQLite's quick_check; the events themselves verified) (" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    clean = CliRunner().invoke(main, ["verify", "--db", str(db_path)])
    assert clean.exit_code == 0 and clean.stdout.startswith("ok: ")


def test_verify_on_a_damaged_events_table_is_a_failed_check_not_a_bare_sqlite_error(
    db_path, tmp_path
):
    """It printed only "Error: database disk image is malformed" (from a COMMIT after the
    read failed), not what verify found."""
    _record(db_path, 30)
    damaged = _damaged_copy(db_path, tmp_path, "events")
    result = CliRunner().invoke(main, ["verify", "--db", str(damaged)])
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        "FAILED the file is damaged: database disk image is malformed "
        "(SQLite could not read the events)\n"
    )


# --- replay's selection ----------------------------------------------------------------------------


def test_a_replay_selection_with_an_unknown_status_is_refused_not_empty(db_path):
    """`select={"status": "failed"}` selected nothing and reported an empty run; "all" (the
    CLI's word) did the same. Now "all" is every status and other words are refused."""
    import replay
    from replay.select import SelectionError

    _record(db_path, 3)
    with pytest.raises(SelectionError) as raised:
        replay.run(str(db_path), "echo", select={"status": "failed"})
    assert str(raised.value) == (
        "status must be one of ok, error, running or all (or None), not 'failed'"
    )
    report = replay.run(str(db_path), "echo", select={"status": "all"})
    assert (report.status, report.planned) == ("completed", 3)
    assert json.loads(json.dumps(report.selection.to_dict()))["status"] is None
