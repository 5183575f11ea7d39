"""Real provider traffic end to end: a corpus case (tests/data/providers) served from
127.0.0.1 -> our backend (streamed or not) -> the store -> what ``show`` prints."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from click.testing import CliRunner

from llm_events import ContextBuilder, client_from_spec, flush
from llm_events.cli import main
from tests.corpus import case, serve

SPECS = {
    "openai_chat": ("openai:gpt-4o-mini", "/v1"),
    "anthropic": ("anthropic:claude-sonnet-4", ""),
    "ollama": ("ollama:llama3.2", ""),
    "vllm": ("vllm:Qwen/Qwen3-8B", "/v1"),
}

ANSWERS = {
    "openai_chat/stream_tool_call": [
        '  tool call multiply {"a":1231,"b":2331} (call_1EYWDzueHEp8OsB8jJSEp7WB)',
        "",
        "  finish    tool_calls",
        "  ids       request req_c3e995e7a86953713a6dc1b17e399fd5   "
        "response chatcmpl-BWlJBDk2xe66hjff60joVYpXi1hh4   model gpt-4o-mini-2024-07-18",
    ],
    "openai_chat/stream_refusal": [
        "  refusal: I'm sorry, I can't assist with that request.",
        "",
        "  finish    stop",
        "  ids       response chatcmpl-ABfw4IfQfCCrcuybFm41wJyxjbkz7   model gpt-4o-2024-08-06",
    ],
    "openai_chat/usage_cache_write_reasoning": [
        "  (empty)",
        "",
        "  finish    length",
        "  usage     1,220 in (1,217 cache write) / 100 out (100 reasoning)",
        "  ids       request req_ed1692f28b27414ebc298d2b377f052d   "
        "response chatcmpl-E0AeOu004E5onbvs8LtrVv7w8NYn2   model gpt-5.6-sol",
    ],
    "anthropic/thinking": [
        "  thinking (289 chars; --full shows it)",
        "  1. **Pouch** - references their iconic bill pouch",
        '  2. **Pelé** - playful take on "pelican"',
        "",
        "  finish    end_turn",
        "  ids       request req_011CZknLUJYvpB2LarebrVDv   "
        "response msg_01Eg56TYRnKCEgWtZu2yjR1t   model claude-haiku-4-5-20251001",
    ],
    "anthropic/stream_refusal_stop_details": [
        "  refusal: This request was blocked as it seems to violate Anthropic's Terms of Service "
        "restrictions on reverse engineering or duplicating model outputs. To learn more, visit "
        "https://www.anthropic.com/legal/commercial-terms. API integrators: you can reduce "
        "refusals for your users by configuring a fallback model \u2014 see "
        "https://platform.claude.com/docs/en/build-with-claude/refusals-and-fallback",
        "",
        '  finish    refusal {"stop_details": {"type": "refusal", "category": '
        '"reasoning_extraction", "explanation": "This reque\u2026',
        "  ids       request req_011Cef1BeSqcyH3S7gNQq2MN   "
        "response msg_011Cef1BfCEZn512shRMGG4q   model claude-fable-5-1",
    ],
    "anthropic/stream_thinking_tool_use": [
        "  thinking (180 chars; --full shows it)",
        "  tool call fixed_version {} (toolu_01825dXWLSoJwCst1qTsiWdb)",
        "",
        "  finish    tool_use",
        "  usage     598 in / 92 out (53 reasoning)",
        "  ids       request req_011CbVjqiXA7wxBTF7BBSFMV   "
        "response msg_01JdU4xqNHXL9QCFWkwCDKGr   model claude-haiku-4-5-20251001",
    ],
    "ollama/chat_stream_tool_calls": [
        '  tool call get_weather {"city":"Tokyo"}',
        "",
        '  finish    stop {"total_duration": 182242375, "load_duration": 41295167, '
        '"prompt_eval_duration": 24573166, "eval_durat…',
        "  ids       model llama3.2",
    ],
    "vllm/chat_stream": [
        "  Okay. Sure.",
        "",
        "  finish    stop",
        "  ids       response chatcmpl-f42e8ae7ddb346e1adfba47e3d710b46   "
        "model deepseek-ai/DeepSeek-V3.1",
    ],
}

ERRORS = {
    "openai_chat/error_429_rate_limit": [
        "  attempt 1  RateLimitError  HTTP 429  code rate_limit_exceeded  type tokens  "
        "request req_6a1b2c3d4e5f60718293a4b5c6d7e8f9  retry after 27s",
    ],
    "anthropic/error_429_rate_limit": [
        "  attempt 1  RateLimitError  HTTP 429  type rate_limit_error  "
        "request req_011Ca6u66aLnUk1L2q2MSyRy  retry after 12s",
    ],
}


def shown(db, case_id: str) -> str:
    """Serve the case, make one call to it through our backend, return ``show``'s output."""
    served = case(case_id)
    spec, suffix = SPECS[served.provider]
    with serve(served) as server:
        client = client_from_spec(
            spec, base_url=server.url + suffix, api_key="sk-test-KEY1234567890"
        )
        builder = ContextBuilder()
        prompt = builder.build_prompt("What is the weather in Paris?")
        try:
            if served.stream:
                asyncio.run(client.agenerate(prompt, context_builder=builder))
            else:
                client.generate(prompt, context_builder=builder)
        except Exception:
            assert served.status >= 400
    flush()
    (call_id,) = sqlite3.connect(db).execute("SELECT call_id FROM calls").fetchone()
    result = CliRunner(env={"COLUMNS": "120"}).invoke(main, ["show", call_id, "--db", str(db)])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("case_id", sorted(ANSWERS))
def test_show_prints_what_the_provider_answered(db_path, case_id):
    out = shown(db_path, case_id)
    assert out.split("\nanswer\n")[1].splitlines() == ANSWERS[case_id]


@pytest.mark.parametrize("case_id", sorted(ERRORS))
def test_show_prints_what_the_provider_said_of_an_error(db_path, case_id):
    out = shown(db_path, case_id)
    assert out.split("\nerrors\n")[1].split("\n\n")[0].splitlines() == ERRORS[case_id]
    assert "\nanswer\n" not in out


@pytest.mark.parametrize("case_id", ["openai_chat/logprobs_top_logprobs"])
def test_logprobs_are_stored_as_the_provider_sent_them(db_path, case_id):
    import json

    shown(db_path, case_id)
    (payload,) = (
        sqlite3.connect(db_path)
        .execute("SELECT payload FROM events WHERE type = 'attempt_succeeded'")
        .fetchone()
    )
    sent = json.loads(case(case_id).body)["choices"][0]["logprobs"]
    assert json.loads(payload)["logprobs"] == sent
    assert sent["content"][0]["token"] == "Hello"  # a data field named token, kept
