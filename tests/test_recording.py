"""What gets recorded: failed calls, retries and fallbacks under one call, threads, asyncio."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

import pytest

import llm_events
from llm_events import LLMClient, LLMResult, LLMRouter, with_retry

from .helpers import read_db


def events_of(db, call_id):
    return [
        (t, p)
        for t, p in read_db(db).execute(
            "SELECT type, payload FROM events WHERE call_id = ? ORDER BY seq", (call_id,)
        )
    ]


def types_of(db, call_id):
    return [t for t, _ in events_of(db, call_id)]


def only_call(db):
    (row,) = read_db(db).execute("SELECT call_id FROM calls").fetchall()
    return row[0]


class Overloaded(Exception):
    status_code = 503


class Failing(LLMClient):
    def __init__(self, exc: Exception, model="m"):
        super().__init__(model)
        self.exc = exc

    def _generate(self, prompt, *, context_builder):
        raise self.exc


class Scripted(LLMClient):
    """Raises the scripted exceptions in turn, then answers."""

    def __init__(self, *outcomes, model="scripted"):
        super().__init__(model)
        self.outcomes = list(outcomes)

    def _generate(self, prompt, *, context_builder):
        outcome = self.outcomes.pop(0) if self.outcomes else "answer"
        if isinstance(outcome, Exception):
            raise outcome
        return LLMResult(text=outcome)


def test_failed_call_is_recorded_fully_and_reraised_unchanged(db_path, builder):
    error = Overloaded("503 model overloaded")
    with pytest.raises(Overloaded) as info:
        Failing(error).generate(builder.build_prompt("q"), context_builder=builder)
    assert info.value is error
    call_id = only_call(db_path)
    assert types_of(db_path, call_id) == [
        "call_started",
        "attempt_started",
        "attempt_failed",
        "call_finished",
    ]
    row = (
        read_db(db_path)
        .execute("SELECT status, error_type, error_message, attempts, failures FROM calls")
        .fetchone()
    )
    assert row == ("error", "Overloaded", "503 model overloaded", 1, 1)
    failed = (
        read_db(db_path)
        .execute(
            "SELECT json_extract(payload, '$.retryable'), json_extract(payload, '$.status_code') "
            "FROM events WHERE type = 'attempt_failed'"
        )
        .fetchone()
    )
    assert failed == (1, 503)
    assert read_db(db_path).execute("SELECT count(*) FROM prompts").fetchone() == (0,)


def test_with_retry_around_generate_is_one_call(db_path, builder, monkeypatch):
    monkeypatch.setattr(time, "sleep", lambda s: None)
    client = Scripted(Overloaded("1"), Overloaded("2"), "third time lucky")
    prompt = builder.build_prompt("q")
    result = with_retry(lambda: client.generate(prompt, context_builder=builder), attempts=3)
    assert result.text == "third time lucky"
    call_id = only_call(db_path)
    assert result.call_id == call_id
    assert types_of(db_path, call_id) == [
        "call_started",
        "attempt_started",
        "attempt_failed",
        "retry_scheduled",
        "attempt_started",
        "attempt_failed",
        "retry_scheduled",
        "attempt_started",
        "attempt_succeeded",
        "call_finished",
    ]
    row = (
        read_db(db_path)
        .execute("SELECT status, attempts, retries, failures, error_type FROM calls")
        .fetchone()
    )
    assert row == ("ok", 3, 2, 2, None)
    delays = [
        d
        for (d,) in read_db(db_path).execute(
            "SELECT json_extract(payload,'$.delay_s') FROM events WHERE type='retry_scheduled'"
        )
    ]
    assert delays == [1.0, 2.0]


def test_retry_around_router_with_fallback_is_one_call(db_path, builder, monkeypatch):
    monkeypatch.setattr(time, "sleep", lambda s: None)
    remote = Failing(Overloaded("remote down"), model="big")
    local = Scripted(Overloaded("local hiccup"), "local answer", model="small")
    router = LLMRouter(remote, local, size_threshold=1)
    prompt = builder.build_prompt("a question long enough to go remote")
    result = with_retry(lambda: router.generate(prompt, context_builder=builder), attempts=2)
    assert result.text == "local answer"
    call_id = only_call(db_path)
    # both backends failed within the cooldown, so neither is avoided on the retry
    assert types_of(db_path, call_id) == [
        "call_started",
        "route_chosen",
        "attempt_started",  # remote
        "attempt_failed",
        "fallback_taken",
        "attempt_started",  # local
        "attempt_failed",
        "retry_scheduled",
        "route_chosen",
        "attempt_started",  # remote again
        "attempt_failed",
        "fallback_taken",
        "attempt_started",  # local answers
        "attempt_succeeded",
        "call_finished",
    ]
    row = (
        read_db(db_path)
        .execute("SELECT status, retries, fallbacks, backend, model FROM calls")
        .fetchone()
    )
    assert row == ("ok", 1, 2, "Scripted", "small")


def test_unknown_exception_types_propagate_and_finish_the_call(db_path, builder):
    class Weird(BaseException):
        pass

    class Boom(LLMClient):
        def _generate(self, prompt, *, context_builder):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Boom().generate(builder.build_prompt("q"), context_builder=builder)
    call_id = only_call(db_path)
    assert types_of(db_path, call_id)[-1] == "call_finished"
    assert read_db(db_path).execute("SELECT status, error_type FROM calls").fetchone() == (
        "error",
        "KeyboardInterrupt",
    )


def test_backend_chain_falls_back_in_order_and_small_tasks_try_first_last(db_path, builder):
    a = Failing(Overloaded("a down"), model="a")
    b = Scripted("b answers", model="b")
    client = LLMClient("chain", backends=[a, b])
    assert client.generate(builder.build_prompt("q"), context_builder=builder).text == "b answers"
    call_id = only_call(db_path)
    assert types_of(db_path, call_id) == [
        "call_started",
        "attempt_started",
        "attempt_failed",
        "fallback_taken",
        "attempt_started",
        "attempt_succeeded",
        "call_finished",
    ]
    small = builder.build_prompt("tiny", tags=["small_task"])
    result = client.generate(small, context_builder=builder)
    assert result.text == "answer"  # b was tried first, so a was never asked
    assert types_of(db_path, result.call_id).count("attempt_started") == 1


def test_parse_fn_sets_parsed_and_errors_leave_none(db_path, builder):
    client = Scripted('{"a": 1}', "not json")
    import json

    ok = client.generate(builder.build_prompt("q"), context_builder=builder, parse_fn=json.loads)
    assert ok.parsed == {"a": 1}
    bad = client.generate(builder.build_prompt("q"), context_builder=builder, parse_fn=json.loads)
    assert bad.parsed is None
    parsed = [
        p for (p,) in read_db(db_path).execute("SELECT response_parsed FROM prompts ORDER BY id")
    ]
    assert parsed == ['{"a":1}', "null"]


def test_tokens_estimated_when_backend_gives_none(db_path, builder):
    client = Scripted("12345678")
    result = client.generate(builder.build_prompt("abcd" * 10), context_builder=builder)
    assert (result.input_tokens, result.output_tokens) == (10, 2)
    assert (result.prompt_tokens, result.completion_tokens) == (10, 2)
    row = (
        read_db(db_path)
        .execute("SELECT input_tokens, output_tokens, tokens_estimated FROM calls")
        .fetchone()
    )
    assert row == (10, 2, 1)


def test_threads_get_separate_calls(db_path, builder):
    client = llm_events.client_from_spec("echo")
    prompts = [builder.build_prompt(f"thread {i}") for i in range(8)]
    results: list = [None] * 8

    def work(i):
        results[i] = client.generate(prompts[i], context_builder=builder)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r.call_id for r in results}) == 8
    assert read_db(db_path).execute(
        "SELECT count(*), sum(attempts) FROM calls WHERE status='ok'"
    ).fetchone() == (8, 8)


def test_asyncio_tasks_get_separate_calls(db_path, builder):
    client = llm_events.client_from_spec("echo")

    async def main():
        return await asyncio.gather(
            *(
                client.agenerate(builder.build_prompt(f"task {i}"), context_builder=builder)
                for i in range(5)
            )
        )

    results = asyncio.run(main())
    assert [r.text for r in results] == [f"task {i}" for i in range(5)]
    assert len({r.call_id for r in results}) == 5


def test_prompt_changed_after_build_is_recorded_as_sent(db_path, builder):
    prompt = builder.build_prompt("original")
    prompt.user = "edited after building"
    result = llm_events.client_from_spec("echo").generate(prompt, context_builder=builder)
    row = read_db(db_path).execute("SELECT text FROM prompts").fetchone()
    assert row == ("edited after building",)
    assert result.text == "edited after building"
    assert read_db(db_path).execute(
        "SELECT count(*) FROM events WHERE type='prompt_built'"
    ).fetchone() == (2,)


def test_call_options_set_parent_and_tags(db_path, builder):
    from llm_events.recording.recorder import call_options

    with call_options(parent_call_id="parent-1", tags=["replay:r1"]) as opts:
        llm_events.client_from_spec("echo").generate(
            builder.build_prompt("x"), context_builder=builder
        )
        with pytest.raises(Overloaded):
            Failing(Overloaded("x")).generate(builder.build_prompt("y"), context_builder=builder)
    assert len(opts.call_ids) == 2
    rows = (
        read_db(db_path)
        .execute("SELECT parent_call_id, tags, status FROM calls ORDER BY first_seq")
        .fetchall()
    )
    assert rows == [("parent-1", '["replay:r1"]', "ok"), ("parent-1", '["replay:r1"]', "error")]


def test_recording_can_be_disabled(db_path, builder):
    llm_events.configure(enabled=False)
    out = llm_events.client_from_spec("echo").generate(
        llm_events.Prompt(user="x", origin="context_builder"), context_builder=builder
    )
    assert out.text == "x"
    assert not db_path.exists() or read_db(db_path).execute(
        "SELECT count(*) FROM events"
    ).fetchone() == (0,)


def test_prompt_built_goes_out_with_the_calls_first_commit(db_path, builder):
    prompt = builder.build_prompt("deferred until sent")
    assert not db_path.exists() or sqlite3.connect(db_path).execute(
        "SELECT count(*) FROM events"
    ).fetchone() == (0,)
    result = llm_events.client_from_spec("echo").generate(prompt, context_builder=builder)
    rows = sqlite3.connect(db_path).execute("SELECT type FROM events ORDER BY seq").fetchall()
    assert [t for (t,) in rows] == [
        "prompt_built",
        "call_started",
        "attempt_started",
        "attempt_succeeded",
        "call_finished",
    ]
    assert read_db(db_path).execute("SELECT prompt_preview FROM calls").fetchone() == (
        "deferred until sent",
    )
    assert result.call_id is not None


def test_prompts_built_but_never_sent_are_written_at_exit(tmp_path):
    import subprocess
    import sys

    db = tmp_path / "exit.db"
    code = (
        "import llm_events\n"
        f"llm_events.configure(db={str(db)!r})\n"
        "b = llm_events.ContextBuilder()\n"
        "for i in range(3): b.build_prompt(f'never sent {i}')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    users = [
        u
        for (u,) in read_db(db).execute(
            "SELECT json_extract(payload, '$.user') FROM events WHERE type = 'prompt_built'"
        )
    ]
    assert users == ["never sent 0", "never sent 1", "never sent 2"]


def test_log_prompts_false_records_nothing_of_its_calls(db_path, builder):
    import asyncio

    quiet = llm_events.client_from_spec("echo")
    quiet.log_prompts = False
    prompt = builder.build_prompt("not logged")
    assert quiet.generate(prompt, context_builder=builder).text == "not logged"

    async def stream():
        return [c async for c in quiet.async_generate(prompt, context_builder=builder)]

    assert "".join(asyncio.run(stream())) == "not logged"
    llm_events.flush()
    conn = read_db(db_path)
    assert conn.execute("SELECT count(*) FROM calls").fetchone() == (0,)
    # the builder still recorded the prompt it made
    assert conn.execute("SELECT count(*) FROM events WHERE type='prompt_built'").fetchone() == (1,)


def test_with_retry_async_records_one_call_and_does_not_block(db_path, builder, monkeypatch):
    import asyncio

    slept: list[float] = []

    async def fake_sleep(seconds):
        slept.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    client = Scripted(Overloaded("busy"), "async answer")
    prompt = builder.build_prompt("async q")

    result = asyncio.run(
        llm_events.with_retry_async(
            lambda: client.agenerate(prompt, context_builder=builder), attempts=3, delay=0.5
        )
    )
    assert result.text == "async answer"
    assert slept == [0.5]
    call_id = only_call(db_path)
    assert types_of(db_path, call_id) == [
        "call_started",
        "attempt_started",
        "attempt_failed",
        "retry_scheduled",
        "attempt_started",
        "attempt_succeeded",
        "call_finished",
    ]
    assert read_db(db_path).execute("SELECT status, attempts, retries FROM calls").fetchone() == (
        "ok",
        2,
        1,
    )
