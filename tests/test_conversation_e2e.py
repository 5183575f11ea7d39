"""A multi-turn conversation with a tool call, a tool result and an image, end to end:
recorded, shown by ``show``, found by ``search`` on a tool argument, replayed with the
``tools`` comparator (the whole request re-sent, the image's bytes read back)."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from click.testing import CliRunner

import replay
from llm_events import ContextBuilder, client_from_spec, configure, flush
from llm_events.cli import main
from tests import helpers
from tests.helpers import PIXEL_PNG, WEATHER_HISTORY, WEATHER_TOOLS, read_db

PNG_SHA = hashlib.sha256(PIXEL_PNG).hexdigest()


def cli(db, *args, columns=100):
    result = CliRunner(env={"COLUMNS": str(columns)}).invoke(main, [*args, "--db", str(db)])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def talk(db_path):
    """One recorded call: the conversation so far, answered with a tool call."""
    builder = ContextBuilder(system="You are a travel assistant.")
    prompt = builder.build_prompt(
        "And on Saturday?",
        history=WEATHER_HISTORY,
        tools=WEATHER_TOOLS,
        options={"tool_choice": "auto"},
    )
    result = client_from_spec("tests.helpers:forecast_call").generate(
        prompt, context_builder=builder
    )
    flush()
    return result.call_id


def test_show_prints_the_conversation_and_the_tool_call(db_path, talk):
    out = cli(db_path, "show", talk)
    prompt = out.split("\nprompt\n")[1].split("\nanswer\n")[0]
    assert prompt.splitlines() == [
        "  system:",
        "    You are a travel assistant.",
        "  tools:    get_weather, get_forecast",
        '  options:  tool_choice="auto"',
        "  conversation (5 messages):",
        "    user       Where was this photo taken, and what is the weather there?",
        f"               [image: image/png, {len(PIXEL_PNG)} bytes, sha256 {PNG_SHA[:12]}…]",
        '    assistant  tool call get_weather {"city": "Paris"} (call_1)',
        '    tool       result for call_1: {"temp_c": 18, "sky": "clear"}',
        "    assistant  In Paris; it is 18 C and clear.",
        "    user       And on Saturday?",
    ]
    answer = out.split("\nanswer\n")[1]
    assert answer.splitlines() == [
        '  tool call get_forecast {"city": "Paris", "day": "saturday", "units": "metric"} (call_2)',
        "",
        "  finish    tool_calls",
        "  usage     1,200 in (1,000 cache read) / 40 out (12 reasoning)",
        "  ids       request req_42   response chatcmpl-42   model weather-model-2026-01-01",
    ]
    full = cli(db_path, "show", talk, "--full")
    timeline = full.split("\ntimeline\n")[1].split("\n\n")[0]
    assert "(5 messages, 2 tools, 0 context items, context_builder)" in timeline
    assert ": tool calls: get_forecast [tool_calls]" in timeline
    assert '    - get_forecast: The forecast for a city and day {"properties": ' in full


def test_search_finds_the_call_by_a_tool_argument(db_path, talk):
    out = cli(db_path, "search", "metric", "--json")
    (hit,) = json.loads(out)
    assert hit["call_id"] == talk
    assert (
        hit["answer_snippet"]
        == 'get_forecast({"city": "Paris", "day": "saturday", "units": "[metric]"})'
    )
    assert (
        hit["tool_calls"] == 'get_forecast({"city": "Paris", "day": "saturday", "units": "metric"})'
    )
    table = cli(db_path, "search", "metric", "--full")
    assert '"units": "metric"})' in table


def test_calls_preview_of_an_answer_that_is_only_tool_calls_names_them(db_path, talk):
    conn = read_db(db_path)
    assert conn.execute("SELECT response_preview FROM calls").fetchall() == [
        ('get_forecast({"city": "Paris", "day": "saturday", "units": "metric"})',)
    ]


def test_views_list_each_tool_call_with_its_arguments(db_path, talk):
    conn = read_db(db_path)
    assert conn.execute(
        "SELECT call_id, name, tool_call_id, arguments FROM tool_calls"
    ).fetchall() == [
        (talk, "get_forecast", "call_2", '{"city": "Paris", "day": "saturday", "units": "metric"}')
    ]
    assert conn.execute(
        "SELECT finish_reason, tool_calls, request_id FROM events_attempt_succeeded"
    ).fetchall() == [("tool_calls", "get_forecast", "req_42")]
    assert conn.execute("SELECT messages, tools FROM events_prompt_built").fetchall() == [
        (5, "get_weather, get_forecast")
    ]


def test_replay_resends_the_whole_conversation_and_compares_tool_calls(store, db_path, talk):
    helpers.SEEN.clear()
    report = replay.run(store, "tests.helpers:forecast_again", compare="tools")
    assert report.counts == {"same": 1, "changed": 0, "error": 0}
    (sent,) = helpers.SEEN
    assert sent.origin == "replay" and sent.user == "And on Saturday?"
    assert sent.system == "You are a travel assistant."
    assert [m["role"] for m in sent.messages] == ["user", "assistant", "tool", "assistant", "user"]
    image = sent.messages[0]["parts"][1]
    assert base64.b64decode(image["content"]) == PIXEL_PNG and image["sha256"] == PNG_SHA
    assert [t["name"] for t in sent.tools] == ["get_weather", "get_forecast"]
    assert sent.options == {"tool_choice": "auto"}
    # the replayed request's prompt_built is the recorded one, byte for byte in its messages
    conn = read_db(db_path)
    built = [json.loads(p) for (p,) in conn.execute(
        "SELECT payload FROM events WHERE type = 'prompt_built' ORDER BY seq")]  # fmt: skip
    assert len(built) == 2 and built[1]["origin"] == "replay"
    assert built[1]["messages"] == built[0]["messages"]
    assert built[1]["tools"] == built[0]["tools"]
    sources = [json.loads(p)["source"] for (p,) in conn.execute(
        "SELECT payload FROM events WHERE type = 'call_started' ORDER BY seq")]  # fmt: skip
    assert sources == ["application", "replay"]
    assert conn.execute("SELECT count(*) FROM blobs").fetchone() == (1,)

    changed = replay.run(store, "tests.helpers:forecast_sunday", compare="tools")
    assert changed.counts == {"same": 0, "changed": 1, "error": 0}
    (r,) = changed.results
    assert r.reason == (
        'get_forecast called with other arguments: {"city": "Paris", "day": "saturday", "units": "metric"} -> '
        '{"city": "Paris", "day": "sunday", "units": "metric"}; newly called: get_weather({"city": "Paris"})'
    )
    assert r.score == pytest.approx(2 / 3 * 0)  # nothing matched
    assert r.diff.splitlines() == [
        '-get_forecast({"city": "Paris", "day": "saturday", "units": "metric"})',
        '+get_forecast({"city": "Paris", "day": "sunday", "units": "metric"})',
        '+get_weather({"city": "Paris"})',
    ]


def test_replay_skips_a_conversation_whose_image_bytes_were_not_stored(store, db_path):
    configure(store_blobs=False)
    builder = ContextBuilder()
    prompt = builder.build_prompt("And on Saturday?", history=WEATHER_HISTORY)
    client_from_spec("tests.helpers:forecast_call").generate(prompt, context_builder=builder)
    report = replay.run(store, "tests.helpers:forecast_again", compare="tools")
    (skipped,) = report.skipped
    assert f"sha256 {PNG_SHA[:12]}… is not in the store" in skipped[1]


def test_show_prints_a_provider_error_and_a_broken_stream_s_partial_answer(db_path):
    from tests.test_conversation import Failing

    builder = ContextBuilder()
    with pytest.raises(Exception, match="Rate limit reached"):
        Failing().generate(builder.build_prompt("Forecast for Paris?"), context_builder=builder)
    call_id = read_db(db_path).execute("SELECT call_id FROM calls").fetchone()[0]
    out = cli(db_path, "show", call_id, columns=200)
    assert (
        "attempt 1 failed      ProviderFailure (HTTP 429, rate_limit_exceeded, retryable, "
    ) in out
    assert ", request req_429): Rate limit reached for requests" in out
    partial = out.split("\npartial answer (attempt 1, before it broke off)\n")[1]
    assert partial.splitlines() == [
        "  thinking (15 chars; --full shows it)",
        "  It will be sun",
        '  tool call get_forecast {"city": "Pa (call_9)',
    ]
    conn = read_db(db_path)
    assert conn.execute(
        "SELECT error_code, provider_error_type, request_id, retry_after_s, partial_text "
        "FROM events_attempt_failed"
    ).fetchall() == [("rate_limit_exceeded", "rate_limit_error", "req_429", 2.0, "It will be sun")]


def test_cost_counts_cache_reads_writes_at_their_prices(db_path):
    from llm_events import LLMClient, LLMResult

    class Claude(LLMClient):
        backend_name = "anthropic"

        def _generate(self, prompt, *, context_builder):
            return LLMResult(
                text="ok",
                input_tokens=1_000_000,
                output_tokens=100_000,
                cache_read_tokens=600_000,
                cache_write_tokens=200_000,
            )

    builder = ContextBuilder()
    Claude("claude-sonnet-4-20250514").generate(builder.build_prompt("q"), context_builder=builder)
    (cost,) = read_db(db_path).execute("SELECT cost FROM calls").fetchone()
    # input 3.00, cache read 0.30, cache write 3.75, output 15.00 per million
    assert cost == pytest.approx(0.2 * 3.00 + 0.6 * 0.30 + 0.2 * 3.75 + 0.1 * 15.00)


def test_an_image_sent_through_the_httpx_transport_is_stored_once_by_digest(db_path):
    """The transport (and the proxy) hand their inline bytes to the store before the events."""
    from openai import OpenAI

    from llm_events import httpx_client
    from tests.corpus import case, serve

    url = "data:image/png;base64," + base64.b64encode(PIXEL_PNG).decode()
    with serve(case("openai_chat/plain")) as server:
        client = OpenAI(
            base_url=server.url + "/v1",
            api_key="sk-test-KEY1234567890",
            http_client=httpx_client(),
            max_retries=0,
        )
        for _ in range(2):
            client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": [
                    {"type": "text", "text": "What is in this picture?"},
                    {"type": "image_url", "image_url": {"url": url}},
                ]}],
            )  # fmt: skip
    flush()
    conn = read_db(db_path)
    assert conn.execute("SELECT sha256, size, data FROM blobs").fetchall() == [
        (PNG_SHA, len(PIXEL_PNG), PIXEL_PNG)
    ]
    payloads = [
        p for (p,) in conn.execute("SELECT payload FROM events WHERE type = 'prompt_built'")
    ]
    assert len(payloads) == 2
    for p in payloads:
        part = json.loads(p)["messages"][0]["parts"][1]
        assert part["type"] == "blob" and part["sha256"] == PNG_SHA
        assert base64.b64encode(PIXEL_PNG).decode()[:20] not in p


def test_a_cassette_answers_a_conversation_with_its_tool_calls(store, db_path, talk):
    from replay import RecordedClient

    other_turns = [
        *WEATHER_HISTORY[:2],
        {"role": "tool", "tool_call_id": "call_1", "content": "rain"},
    ]
    report = replay.run(store, f"recorded:{db_path}", compare="tools")
    assert report.counts == {"same": 1, "changed": 0, "error": 0}
    cassette = RecordedClient(str(db_path))
    builder = ContextBuilder(system="You are a travel assistant.")
    same = builder.build_prompt(
        "And on Saturday?",
        history=WEATHER_HISTORY,
        tools=WEATHER_TOOLS,
        options={"tool_choice": "auto"},
    )
    answer = cassette.generate(same, context_builder=builder)
    assert [c["name"] for c in answer.tool_calls] == ["get_forecast"]
    assert answer.finish_reason == "tool_calls"
    # another conversation ending in the same user text is not the same prompt
    other = builder.build_prompt("And on Saturday?", history=other_turns, tools=WEATHER_TOOLS)
    with pytest.raises(LookupError, match="no recorded answer"):
        cassette.generate(other, context_builder=builder)


def test_a_long_conversation_is_folded_and_full_shows_every_turn(db_path):
    turns = []
    for i in range(1, 7):
        turns += [
            {"role": "user", "content": f"question {i}"},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "x" * 40, "signature": "s"}, f"answer {i}"]},
        ]  # fmt: skip
    builder = ContextBuilder()
    prompt = builder.build_prompt("question 7", history=turns)
    result = client_from_spec("echo").generate(prompt, context_builder=builder)
    out = cli(db_path, "show", result.call_id)
    conversation = out.split("  conversation (13 messages):\n")[1].split("\n\nanswer\n")[0]
    assert conversation.splitlines() == [
        "    user       question 1",
        "    assistant  [thinking, 40 chars]",
        "               answer 1",
        "    … 6 more messages (--full shows them)",
        "    user       question 5",
        "    assistant  [thinking, 40 chars]",
        "               answer 5",
        "    user       question 6",
        "    assistant  [thinking, 40 chars]",
        "               answer 6",
        "    user       question 7",
    ]
    full = cli(db_path, "show", result.call_id, "--full")
    assert "more messages" not in full
    assert full.count("    user       question") == 7


def test_a_captured_request_is_replayed_with_its_system_message_once(db_path):
    """The proxy names its system messages' text in prompt_built.system too: a replay
    sends the conversation as captured, not that text a second time."""
    import msgspec

    from llm_events.backends.render import conversation
    from llm_events.log import events as ev
    from llm_events.log.conversation import Message
    from replay.rerun import prompt_from_event

    messages = [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Hi?"}]},
    ]
    for origin, expected in (
        ("proxy", ["system", "user"]),
        ("context_builder", ["system", "system", "user"]),
    ):
        built = ev.PromptBuilt(
            id="p", ts="2026-01-01T00:00:00Z", prompt_id="p", system="Be brief.", user="Hi?",
            origin=origin, messages=msgspec.convert(messages, list[Message]),
            options={"stream": True, "stream_options": {"include_usage": True}, "seed": 1},
        )  # fmt: skip
        prompt = prompt_from_event(built)
        assert [m.role for m in conversation(prompt)] == expected
        # how a capture was sent is the replaying client's choice; what it asked is kept
        assert prompt.options == ({"seed": 1} if origin == "proxy" else dict(built.options))
