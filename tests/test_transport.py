"""In-process capture: the real SDKs given ``llm_events.httpx_client()`` and friends."""

from __future__ import annotations

import asyncio

import anthropic
import httpx
import openai
import pytest

import llm_events

from .fake_upstream import ANTHROPIC_TEXT, OPENAI_TEXT, FakeUpstream, Scripted
from .proxy_support import ANTHROPIC_KEY, OPENAI_KEY, call_events, finished_calls, store_bytes

MESSAGES = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def up():
    with FakeUpstream() as upstream:
        yield upstream


def test_sync_openai_recorded_into_the_current_store(up, store, db_path):
    client = openai.OpenAI(
        base_url=up.url + "/v1", api_key=OPENAI_KEY, http_client=llm_events.httpx_client()
    )
    direct = openai.OpenAI(base_url=up.url + "/v1", api_key=OPENAI_KEY)
    via = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert (
        via.model_dump()
        == direct.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).model_dump()
    )
    # recorded before the SDK returned: read-your-writes
    (call_id,) = [s.event.call_id for s in store.iter_events(types=["call_finished"])]
    events = call_events(store, call_id)
    assert events["call_started"][0].source == "transport"
    assert events["attempt_succeeded"][0].text == OPENAI_TEXT
    assert events["prompt_built"][0].user == "Say hello"
    store.flush()
    assert OPENAI_KEY.encode() not in store_bytes(db_path)


def test_sync_stream_and_a_stream_closed_early(up, store):
    client = openai.OpenAI(
        base_url=up.url + "/v1", api_key=OPENAI_KEY, http_client=llm_events.httpx_client()
    )
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == OPENAI_TEXT
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    next(iter(stream))
    stream.close()
    first, second = finished_calls(store, 2)
    assert call_events(store, first)["attempt_succeeded"][0].text == OPENAI_TEXT
    assert call_events(store, second)["attempt_failed"][0].error_type == "Cancelled"


def test_async_anthropic_stream_and_retries_as_attempts(up, store):
    up.script(
        Scripted(
            status=529,
            headers={"retry-after-ms": "5"},
            body=b'{"type": "error", "error": {"type": "overloaded_error", "message": "x"}}',
        )
    )

    async def main() -> str:
        client = anthropic.AsyncAnthropic(
            base_url=up.url,
            api_key=ANTHROPIC_KEY,
            http_client=llm_events.async_httpx_client(),
            max_retries=2,
        )
        async with client.messages.stream(
            model="claude-sonnet-4-5", max_tokens=50, messages=MESSAGES
        ) as s:
            return await s.get_final_text()

    assert asyncio.run(main()) == ANTHROPIC_TEXT
    (call_id,) = finished_calls(store, 1)
    events = call_events(store, call_id)
    assert [e.attempt for e in events["attempt_started"]] == [1, 2]
    assert events["attempt_failed"][0].status_code == 529
    assert events["attempt_succeeded"][0].text == ANTHROPIC_TEXT
    assert events["call_finished"][0].attempts == 2


def test_wrapping_an_existing_transport_into_an_explicit_store(up, tmp_path):
    other = llm_events.EventStore(tmp_path / "other.db")
    inner = httpx.HTTPTransport(retries=0)
    http = httpx.Client(transport=llm_events.RecordingTransport(inner, store=other))
    r = http.get(up.url + "/v1/models", headers={"X-LLM-Events-Tags": "inventory"})
    assert r.json()["data"][0]["id"] == "gpt-4o-mini"
    assert "x-llm-events-tags" not in up.seen[-1]["headers"]
    (call_id,) = finished_calls(other, 1)
    events = call_events(other, call_id)
    assert events["call_started"][0].tags == ["inventory"]
    assert events["attempt_succeeded"][0].raw["status"] == 200
    http.close()


def test_unreachable_upstream_is_a_failed_call(store):
    from .cli_support import free_port

    client = openai.OpenAI(
        base_url=f"http://127.0.0.1:{free_port()}/v1",
        api_key=OPENAI_KEY,
        http_client=llm_events.httpx_client(),
        max_retries=1,
    )
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    client.close()  # closing the client finishes the call that waited for a retry
    (call_id,) = finished_calls(store, 1)
    events = call_events(store, call_id)
    assert [e.error_type for e in events["attempt_failed"]] == ["ConnectError"] * 2
    assert events["call_finished"][0].status == "error"
