"""Prices: the table, user overrides (JSON and TOML), unknown models, and re-pricing by rebuild."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from llm_events import LLMClient, LLMResult
from llm_events.log.pricing import (
    PriceFileError,
    PriceFileWarning,
    load_price_file,
    price_call,
    unit_prices,
)

from .conftest import cli_env
from .helpers import read_db


def answer(
    input_tokens=1_000_000,
    output_tokens=1_000_000,
    cached=None,
    cost=None,
    cache_write=None,
    reasoning=None,
):
    return SimpleNamespace(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_tokens=cached,
        cost=cost,
        cache_write_tokens=cache_write,
        reasoning_tokens=reasoning,
    )


def test_known_model_and_dated_names():
    assert price_call(answer(), "openai", "gpt-4o-mini") == pytest.approx(0.75)
    assert unit_prices("openai", "gpt-4o-mini-2024-07-18") == unit_prices("openai", "gpt-4o-mini")
    assert unit_prices("anthropic", "claude-3-5-haiku-20241022")["input"] == 0.80
    assert unit_prices("anthropic", "claude-3-5-haiku-latest")["output"] == 4.00
    opus = unit_prices("anthropic", "claude-opus-4-1-20250805")
    assert opus == {"input": 15.00, "output": 75.00, "cached_input": 1.50, "cache_write": 18.75}


def test_unknown_model_costs_none_not_zero():
    assert price_call(answer(), "openai", "gpt-99-ultra") is None
    assert price_call(answer(), "mystery", "model") is None
    assert price_call(answer(), "openai", None) is None


def test_missing_tokens_cost_none():
    assert price_call(answer(input_tokens=None), "openai", "gpt-4o-mini") is None


def test_backend_wildcards_and_the_llm_proxy():
    assert price_call(answer(), "ollama", "llama3.2") == 0.0
    assert price_call(answer(), "echo", "echo") == 0.0
    # llm:gpt-4o-mini is OpenAI's model served through the llm package
    assert price_call(answer(), "llm", "gpt-4o-mini") == pytest.approx(0.75)
    assert price_call(answer(), "llm", "markov") == 0.0


def test_cached_input_tokens_are_cheaper():
    full = price_call(answer(output_tokens=0), "openai", "gpt-4o-mini")
    half_cached = price_call(answer(output_tokens=0, cached=500_000), "openai", "gpt-4o-mini")
    assert full == pytest.approx(0.15)
    assert half_cached == pytest.approx(0.5 * 0.15 + 0.5 * 0.075)


def test_anthropic_cache_writes_cost_more_and_reads_less():
    # claude-sonnet-4: input 3.00, cache write 3.75 (1.25x), cache read 0.30 (0.1x), output 15
    cost = price_call(
        answer(input_tokens=1_000_000, output_tokens=0, cached=500_000, cache_write=250_000),
        "anthropic",
        "claude-sonnet-4-20250514",
    )
    assert cost == pytest.approx(0.25 * 3.00 + 0.5 * 0.30 + 0.25 * 3.75)
    # an OpenAI model has no cache-write price: written tokens cost the input price
    assert price_call(
        answer(input_tokens=1_000_000, output_tokens=0, cache_write=500_000), "openai", "gpt-4o"
    ) == pytest.approx(2.50)


def test_reasoning_tokens_use_their_price_where_the_table_has_one(tmp_path, monkeypatch):
    # OpenAI counts reasoning in output tokens at the output price: the built-in table
    assert price_call(answer(input_tokens=0, reasoning=400_000), "openai", "o3") == pytest.approx(
        8.00
    )
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"acme:thinker": {"input": 1, "output": 2, "reasoning": 5}}))
    monkeypatch.setenv("LLM_EVENTS_PRICES", str(path))
    assert price_call(
        answer(input_tokens=0, output_tokens=1_000_000, reasoning=400_000), "acme", "thinker"
    ) == pytest.approx(0.6 * 2 + 0.4 * 5)


def test_backend_reported_cost_wins():
    assert price_call(answer(cost=0.5), "openai", "gpt-99-ultra") == 0.5


def test_json_override(tmp_path, monkeypatch):
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps(
            {"openai:gpt-4o-mini": {"input": 1, "output": 2}, "acme:*": {"input": 3, "output": 3}}
        )
    )
    monkeypatch.setenv("LLM_EVENTS_PRICES", str(path))
    assert price_call(answer(), "openai", "gpt-4o-mini") == pytest.approx(3.0)
    assert price_call(answer(), "acme", "anything") == pytest.approx(6.0)
    assert price_call(answer(), "openai", "gpt-4o") == pytest.approx(12.5)  # built-in kept


def test_toml_override(tmp_path, monkeypatch):
    path = tmp_path / "prices.toml"
    path.write_text('["mylab:small"]\ninput = 0.5\noutput = 1.5\ncached_input = 0.1\n')
    monkeypatch.setenv("LLM_EVENTS_PRICES", str(path))
    assert price_call(answer(), "mylab", "small") == pytest.approx(2.0)
    assert load_price_file(str(path)) == {
        "mylab:small": {"input": 0.5, "output": 1.5, "cached_input": 0.1}
    }


def test_bad_price_file_warns_and_uses_builtins(tmp_path, monkeypatch):
    path = tmp_path / "prices.json"
    path.write_text('{"openai:gpt-4o-mini": {"input": "cheap"}}')
    with pytest.raises(PriceFileError, match="must be a table of numbers"):
        load_price_file(str(path))
    monkeypatch.setenv("LLM_EVENTS_PRICES", str(path))
    with pytest.warns(PriceFileWarning):
        assert price_call(answer(), "openai", "gpt-4o-mini") == pytest.approx(0.75)


class Priced(LLMClient):
    """Answers with fixed usage, like a server reporting tokens."""

    backend_name = "acme"

    def _generate(self, prompt, *, context_builder):
        return LLMResult(text="ok", input_tokens=1_000_000, output_tokens=1_000_000)


def test_rebuild_reprices_history(tmp_path, monkeypatch, builder, db_path, store):
    result = Priced("widget").generate(builder.build_prompt("hi"), context_builder=builder)

    def costs():
        conn = read_db(db_path)
        try:
            calls = conn.execute("SELECT cost FROM calls WHERE call_id = ?", (result.call_id,))
            prompts = conn.execute("SELECT cost FROM prompts WHERE call_id = ?", (result.call_id,))
            return calls.fetchone()[0], prompts.fetchone()[0]
        finally:
            conn.close()

    assert costs() == (None, None)  # unknown model: null, not 0
    store.close()

    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"acme:widget": {"input": 2, "output": 4}}))
    env = cli_env(db_path)
    env["LLM_EVENTS_PRICES"] = str(path)
    done = subprocess.run(
        [sys.executable, "-c", "from llm_events.cli import main; main()", "rebuild"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert costs() == (pytest.approx(6.0), pytest.approx(6.0))
