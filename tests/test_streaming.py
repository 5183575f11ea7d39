"""Streaming and async: chunks as they arrive, time to first chunk, usage, broken streams."""

from __future__ import annotations

import asyncio
import json

import pytest

from llm_events import LLMClient, LLMResult, client_from_spec
from llm_events.backends.errors import ServerError, StreamInterrupted

from .backend_helpers import (
    SECRET,
    base_url,
    broken_stream,
    events,
    events_text,
    openai_sse,
    server_fixtures,
    types,
)

PATH = "/v1/chat/completions"

shared_server, server = server_fixtures()


def openai(server, **options):
    return client_from_spec(
        "openai:gpt-4o-mini", base_url=base_url(server, "/v1"), api_key=SECRET, **options
    )


async def collect(client, prompt, builder):
    return [piece async for piece in client.async_generate(prompt, context_builder=builder)]


def test_openai_sse_stream_records_ttft_text_and_final_usage(server, builder, db_path):
    server.expect_request(PATH).respond_with_data(
        openai_sse(["Hel", "lo", "!"]), content_type="text/event-stream"
    )
    client = openai(server, temperature=0)
    pieces = asyncio.run(collect(client, builder.build_prompt("hi"), builder))
    assert pieces == ["Hel", "lo", "!"]

    body = json.loads(server.log[0][0].data)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert types(db_path) == [
        "call_started",
        "attempt_started",
        "attempt_succeeded",
        "call_finished",
    ]
    assert events(db_path, "attempt_started")[0]["params"] == {"temperature": 0, "stream": True}
    ok = events(db_path, "attempt_succeeded")[0]
    assert ok["text"] == "Hello!"
    assert (ok["input_tokens"], ok["output_tokens"], ok["cached_tokens"]) == (9, 2, 4)
    assert ok["tokens_estimated"] is False
    assert ok["finish_reason"] == "stop"
    assert ok["ttft_ms"] is not None and 0 <= ok["ttft_ms"] <= ok["latency_ms"]
    assert ok["raw"]["streamed"] is True
    assert SECRET not in events_text(db_path)


def test_agenerate_returns_the_assembled_result(server, builder):
    server.expect_request(PATH).respond_with_data(
        openai_sse(["4", "2"]), content_type="text/event-stream"
    )
    result = asyncio.run(
        openai(server).agenerate(
            builder.build_prompt("answer?"), context_builder=builder, parse_fn=int
        )
    )
    assert isinstance(result, LLMResult)
    assert (result.text, result.parsed, result.input_tokens) == ("42", 42, 9)
    assert result.call_id is not None


def test_stream_without_usage_is_estimated(server, builder, db_path):
    server.expect_request(PATH).respond_with_data(
        openai_sse(["a b c d"], usage=False), content_type="text/event-stream"
    )
    asyncio.run(collect(openai(server, include_usage=False), builder.build_prompt("x"), builder))
    assert "stream_options" not in json.loads(server.log[0][0].data)
    ok = events(db_path, "attempt_succeeded")[0]
    assert ok["tokens_estimated"] is True and ok["output_tokens"] == 2


def test_stream_cut_mid_way_keeps_partial_text(server, builder, db_path):
    sse = openai_sse(["Hel", "lo"], done=False)
    server.expect_request(PATH).respond_with_handler(broken_stream([sse]))
    got: list[str] = []

    async def run():
        async for piece in openai(server).async_generate(
            builder.build_prompt("hi"), context_builder=builder
        ):
            got.append(piece)

    with pytest.raises(StreamInterrupted):
        asyncio.run(run())
    assert got == ["Hel", "lo"]
    failed = events(db_path, "attempt_failed")[0]
    assert failed["error_type"] == "StreamInterrupted"
    assert failed["partial_text"] == "Hello"
    assert failed["retryable"] is True
    assert events(db_path, "call_finished")[0]["status"] == "error"


def test_stream_that_ends_early_without_done_is_interrupted(server, builder, db_path):
    server.expect_request(PATH).respond_with_data(
        openai_sse(["par", "tial"], done=False), content_type="text/event-stream"
    )
    with pytest.raises(StreamInterrupted, match=r"no \[DONE\]"):
        asyncio.run(collect(openai(server), builder.build_prompt("hi"), builder))
    assert events(db_path, "attempt_failed")[0]["partial_text"] == "partial"


def test_error_status_before_streaming_falls_back(server, builder, db_path):
    """A backend that fails before any text falls back to the next, as generate does."""
    server.expect_request(PATH).respond_with_json({"error": {"message": "down"}}, status=503)
    primary = openai(server)
    chain = LLMClient(backends=[primary, client_from_spec("echo")])
    pieces = asyncio.run(collect(chain, builder.build_prompt("hello there"), builder))
    assert pieces == ["hello there"]
    assert types(db_path) == [
        "call_started",
        "attempt_started",
        "attempt_failed",
        "fallback_taken",
        "attempt_started",
        "attempt_succeeded",
        "call_finished",
    ]
    assert events(db_path, "attempt_failed")[0]["status_code"] == 503


def test_error_status_on_a_stream_raises_classified(server, builder):
    server.expect_request(PATH).respond_with_json({"error": {"message": "busy"}}, status=500)
    with pytest.raises(ServerError, match="busy"):
        asyncio.run(collect(openai(server), builder.build_prompt("hi"), builder))


def test_consumer_stopping_early_is_recorded(server, builder, db_path):
    server.expect_request(PATH).respond_with_data(
        openai_sse(["one", "two", "three"]), content_type="text/event-stream"
    )

    async def first_only():
        stream = openai(server).async_generate(builder.build_prompt("hi"), context_builder=builder)
        async for piece in stream:
            await stream.aclose()
            return piece

    assert asyncio.run(first_only()) == "one"
    failed = events(db_path, "attempt_failed")[0]
    assert failed["error_type"] == "GeneratorExit" and failed["partial_text"] == "one"
    assert events(db_path, "call_finished")[0]["status"] == "error"


def test_non_streaming_clients_work_async(builder, db_path):
    class Plain(LLMClient):
        def _generate(self, prompt, *, context_builder):
            return LLMResult(text=prompt.user[::-1])

    pieces = asyncio.run(collect(Plain(), builder.build_prompt("abc"), builder))
    assert pieces == ["cba"]
    assert (
        asyncio.run(
            client_from_spec("echo").agenerate(builder.build_prompt("x"), context_builder=builder)
        ).text
        == "x"
    )
    assert types(db_path).count("call_finished") == 2


def test_concurrent_async_calls_are_separate_calls(server, builder, db_path):
    for _ in range(4):
        server.expect_request(PATH).respond_with_data(
            openai_sse(["ok"]), content_type="text/event-stream"
        )
    client = openai(server)

    async def many():
        prompts = [builder.build_prompt(f"q{i}") for i in range(4)]
        return await asyncio.gather(
            *(client.agenerate(p, context_builder=builder) for p in prompts)
        )

    results = asyncio.run(many())
    assert len({r.call_id for r in results}) == 4
    finished = events(db_path, "call_finished")
    assert len(finished) == 4 and all(f["attempts"] == 1 for f in finished)


def test_llm_markov_streams(builder, db_path, tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_USER_PATH", str(tmp_path / "llm"))
    client = client_from_spec("llm:markov", length=4, delay=0)
    pieces = asyncio.run(collect(client, builder.build_prompt("the cat sat on the mat"), builder))
    assert len(pieces) == 4
    ok = events(db_path, "attempt_succeeded")[0]
    assert ok["backend"] == "llm" and ok["model"] == "markov"
    assert ok["text"] == "".join(pieces) and ok["ttft_ms"] is not None


class Chunks(LLMClient):
    """An offline streaming backend: three chunks, then usage."""

    backend_name = "chunks"

    async def _astream(self, prompt, *, context_builder):
        from llm_events.interface.streaming import StreamChunk

        for piece in ("a", "b", "c"):
            yield StreamChunk(text=piece)
        yield StreamChunk(input_tokens=3, output_tokens=3, finish_reason="stop")


class FailsOnce(Chunks):
    async def _astream(self, prompt, *, context_builder):
        from llm_events.backends.errors import ServerError
        from llm_events.recording.recorder import current_call

        if current_call() is not None and current_call().attempt == 1:
            raise ServerError("busy", status_code=503)
        async for chunk in super()._astream(prompt, context_builder=context_builder):
            yield chunk


def test_async_calls_wait_for_a_locked_store_without_blocking_the_event_loop(db_path, builder):
    """Another process holding the write lock (an import, a rebuild) must not freeze the loop:
    the commits of async and streamed calls wait in a worker thread."""
    import sqlite3
    import threading
    import time

    from llm_events import with_retry_async

    prompt = builder.build_prompt("hi")
    client, flaky = Chunks("chunks-1"), FailsOnce("chunks-2")
    asyncio.run(client.agenerate(prompt, context_builder=builder))  # store created and warm
    hold_s = 2.0

    async def scenario():
        gaps: list[float] = []
        done = asyncio.Event()

        async def ticker():
            last = time.perf_counter()
            while not done.is_set():
                await asyncio.sleep(0.01)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        locked = threading.Event()

        def hold_lock():
            conn = sqlite3.connect(db_path, isolation_level=None)
            conn.execute("BEGIN IMMEDIATE")
            locked.set()
            time.sleep(hold_s)
            conn.execute("ROLLBACK")
            conn.close()

        holder = threading.Thread(target=hold_lock)
        holder.start()
        locked.wait()
        tick = asyncio.create_task(ticker())
        t0 = time.perf_counter()
        results = await asyncio.gather(
            client.agenerate(prompt, context_builder=builder),
            collect(client, prompt, builder),
            with_retry_async(
                lambda: flaky.agenerate(prompt, context_builder=builder), attempts=2, delay=0
            ),
        )
        waited = time.perf_counter() - t0
        done.set()
        await tick
        holder.join()
        return results, waited, max(gaps)

    (answer, pieces, retried), waited, worst_gap = asyncio.run(scenario())
    assert (answer.text, pieces, retried.text) == ("abc", ["a", "b", "c"], "abc")
    assert waited >= hold_s * 0.9  # the calls did wait for the lock
    assert worst_gap < hold_s / 2  # while the loop went on ticking
    assert types(db_path).count("call_finished") == 4
    assert types(db_path).count("retry_scheduled") == 1


def test_sixteen_async_calls_to_a_blocking_client_all_run_at_once(db_path, builder):
    """asyncio's default executor would run them CPUs + 4 at a time (6 on 2 CPUs)."""
    import threading

    together = threading.Barrier(16, timeout=20)  # broken unless all 16 are in flight at once

    class Blocking(LLMClient):
        backend_name = "blocking"

        def _generate(self, prompt, *, context_builder):
            together.wait()
            return LLMResult(text="ok")

    client = Blocking("blocking-1")
    prompt = builder.build_prompt("hi")

    async def run():
        return await asyncio.gather(
            *(client.agenerate(prompt, context_builder=builder) for _ in range(16))
        )

    answers = asyncio.run(run())
    assert [a.text for a in answers] == ["ok"] * 16
    assert types(db_path).count("call_finished") == 16
