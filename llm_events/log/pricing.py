"""Prices per million tokens, keyed by backend and model, and the cost of one answer.

Cost is computed when projecting (not when recording), so changing the price table and
running ``llm-events rebuild`` re-prices history.  A model with no known price costs ``None``,
never 0.

Users override or extend the built-in table with a JSON or TOML file named by the
``LLM_EVENTS_PRICES`` environment variable (the format is chosen by the ``.toml``
extension).  Keys are ``backend:model`` (``backend:*`` for every model of a backend, or a
bare model name for any backend serving it); values give USD per million tokens::

    {"openai:gpt-4o-mini": {"input": 0.15, "output": 0.60, "cached_input": 0.075},
     "ollama:*": {"input": 0, "output": 0}}

    ["anthropic:claude-3-5-haiku"]
    input = 0.80
    output = 4.00

``cached_input`` (optional) prices the input tokens the provider served from its prompt
cache (cache reads), ``cache_write`` the input tokens written to it (Anthropic's cache
creation), ``reasoning`` the output tokens spent on reasoning; without them those tokens cost
the ``input`` (or ``output``) price.  A file entry replaces the built-in one.

Token counts follow one convention whatever the provider: ``input_tokens`` counts every
input token, cache reads and writes included (Anthropic reports them apart; its backend adds
them up), and ``output_tokens`` counts reasoning tokens too (as OpenAI reports them).
"""

from __future__ import annotations

import json
import os
import re
import warnings
from functools import lru_cache
from typing import Any

Prices = dict[str, float]

#: USD per million tokens (a snapshot of public list prices; override for accuracy).
#: Checked 2026-11-25: the Anthropic rows against a stored copy of Anthropic's pricing page,
#: the OpenAI rows against several public summaries of OpenAI's price list (which disagree on
#: some newer models, left out for that reason).  Prices change: ``LLM_EVENTS_PRICES``.
BUILTIN_PRICES: dict[str, Prices] = {
    # built in and offline
    "echo:*": {"input": 0.0, "output": 0.0},
    "llm:markov": {"input": 0.0, "output": 0.0},
    "llm:echo": {"input": 0.0, "output": 0.0},
    # self-hosted servers: no per-token charge
    "ollama:*": {"input": 0.0, "output": 0.0},
    "vllm:*": {"input": 0.0, "output": 0.0},
    # OpenAI
    "openai:gpt-4o": {"input": 2.50, "output": 10.00, "cached_input": 1.25},
    "openai:gpt-4o-mini": {"input": 0.15, "output": 0.60, "cached_input": 0.075},
    "openai:gpt-4.1": {"input": 2.00, "output": 8.00, "cached_input": 0.50},
    "openai:gpt-4.1-mini": {"input": 0.40, "output": 1.60, "cached_input": 0.10},
    "openai:gpt-4.1-nano": {"input": 0.10, "output": 0.40, "cached_input": 0.025},
    "openai:gpt-4-turbo": {"input": 10.00, "output": 30.00},
    "openai:gpt-4": {"input": 30.00, "output": 60.00},
    "openai:gpt-3.5-turbo": {"input": 0.50, "output": 1.50},
    "openai:o1": {"input": 15.00, "output": 60.00, "cached_input": 7.50},
    "openai:o1-mini": {"input": 1.10, "output": 4.40, "cached_input": 0.55},
    "openai:o3": {"input": 2.00, "output": 8.00, "cached_input": 0.50},
    "openai:o3-mini": {"input": 1.10, "output": 4.40, "cached_input": 0.55},
    "openai:o4-mini": {"input": 1.10, "output": 4.40, "cached_input": 0.275},
    # Anthropic (cached_input = cache reads, 0.1x input; cache_write = 5-minute cache writes,
    # 1.25x input: Anthropic's prompt-caching price table)
    "anthropic:claude-3-haiku": {
        "input": 0.25,
        "output": 1.25,
        "cached_input": 0.03,
        "cache_write": 0.30,
    },
    "anthropic:claude-3-5-haiku": {
        "input": 0.80,
        "output": 4.00,
        "cached_input": 0.08,
        "cache_write": 1.00,
    },
    "anthropic:claude-3-5-sonnet": {
        "input": 3.00,
        "output": 15.00,
        "cached_input": 0.30,
        "cache_write": 3.75,
    },
    "anthropic:claude-3-7-sonnet": {
        "input": 3.00,
        "output": 15.00,
        "cached_input": 0.30,
        "cache_write": 3.75,
    },
    "anthropic:claude-sonnet-4": {
        "input": 3.00,
        "output": 15.00,
        "cached_input": 0.30,
        "cache_write": 3.75,
    },
    "anthropic:claude-3-opus": {
        "input": 15.00,
        "output": 75.00,
        "cached_input": 1.50,
        "cache_write": 18.75,
    },
    "anthropic:claude-opus-4": {
        "input": 15.00,
        "output": 75.00,
        "cached_input": 1.50,
        "cache_write": 18.75,
    },
    "anthropic:claude-opus-4-1": {
        "input": 15.00,
        "output": 75.00,
        "cached_input": 1.50,
        "cache_write": 18.75,
    },
}

#: Backends that serve other providers' models under the same names (``llm:gpt-4o-mini``).
PROXY_BACKENDS = frozenset({"llm"})

PRICES_ENV = "LLM_EVENTS_PRICES"

_DATE_SUFFIX = re.compile(r"(-\d{4}-\d{2}-\d{2}|-\d{8}|-latest|@\d{8})$")


class PriceFileError(ValueError):
    """The prices file cannot be read; the message names the file and the problem."""


class PriceFileWarning(UserWarning):
    """The prices file was ignored (unreadable or malformed); built-in prices were used."""


def _read_file(path: str) -> dict[str, Prices]:
    try:
        if path.endswith(".toml"):
            import tomllib

            with open(path, "rb") as f:
                data: Any = tomllib.load(f)
        else:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
    except (OSError, ValueError) as e:
        raise PriceFileError(f"cannot read prices file {path} ({PRICES_ENV}): {e}") from None
    if not isinstance(data, dict):
        raise PriceFileError(f"prices file {path} must map 'backend:model' to prices")
    table: dict[str, Prices] = {}
    for key, value in data.items():
        if not isinstance(value, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value.values()
        ):
            raise PriceFileError(
                f"prices file {path}: {key!r} must be a table of numbers "
                "(input, output, optional cached_input, cache_write, reasoning), "
                "USD per million tokens"
            )
        table[str(key)] = {str(k): float(v) for k, v in value.items()}
    return table


@lru_cache(maxsize=8)
def _load(path: str | None, stamp: tuple[float, int] | None) -> dict[str, Prices]:
    table = dict(BUILTIN_PRICES)
    if path:
        try:
            table.update(_read_file(path))
        except PriceFileError as e:
            # Pricing runs inside the store's append transaction: a broken prices file must
            # not stop calls from being recorded.  Say so, and price with the built-ins.
            warnings.warn(f"{e}; using the built-in prices", PriceFileWarning, stacklevel=2)
    return table


def _stamp(path: str | None) -> tuple[float, int] | None:
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime, st.st_size)


def load_price_file(path: str) -> dict[str, Prices]:
    """Read and check a prices file (raises :class:`PriceFileError`); for tools and tests."""
    return _read_file(path)


def price_table() -> dict[str, Prices]:
    """The effective table: built-in prices updated by the file in ``LLM_EVENTS_PRICES``.

    Re-read when the file changes, so a long-lived process (or a test) sees edits.
    """
    path = os.environ.get(PRICES_ENV) or None
    return _load(path, _stamp(path))


def _model_names(model: str) -> list[str]:
    """``model`` and its undated family names (``gpt-4o-mini-2024-07-18`` -> ``gpt-4o-mini``)."""
    names = [model]
    short = model.rsplit("/", 1)[-1]  # "openai/gpt-4o" as some proxies name them
    if short != model:
        names.append(short)
    for name in list(names):
        stripped = _DATE_SUFFIX.sub("", name)
        if stripped != name:
            names.append(stripped)
        dotted = stripped.replace(".", "-")  # llm's "claude-3.5-haiku"
        if dotted != stripped:
            names.append(dotted)
    return names


_lookups: dict[tuple[str | None, str | None], Prices | None] = {}
_lookups_table: list[dict[str, Prices]] = []


def unit_prices(
    backend: str | None, model: str | None, table: dict[str, Prices] | None = None
) -> Prices | None:
    """The prices of ``backend:model``, most specific match first; ``None`` if unknown.

    Looked up once per backend and model while the table stays the same (projections ask
    for every answer, so a rebuild asks millions of times).  ``table`` is a snapshot from
    :func:`price_table` (a projection takes one per batch); by default the current one.
    """
    if table is None:
        table = price_table()
    if not _lookups_table or _lookups_table[0] is not table:
        _lookups.clear()
        _lookups_table[:] = [table]
    key = (backend, model)
    try:
        return _lookups[key]
    except KeyError:
        found = _lookups[key] = _find_prices(table, backend, model)
        return found


def _find_prices(table: dict[str, Prices], backend: str | None, model: str | None) -> Prices | None:
    backend = (backend or "").lower()
    if model:
        names = _model_names(model)
        for name in names:
            for key in (f"{backend}:{name}", name):
                if key in table:
                    return table[key]
        if backend in PROXY_BACKENDS:
            for name in names:
                for key, prices in table.items():
                    if key.partition(":")[2] == name and not key.startswith(f"{backend}:"):
                        return prices
    return table.get(f"{backend}:*")


def price_call(
    success: Any,
    backend: str | None,
    model: str | None,
    table: dict[str, Prices] | None = None,
) -> float | None:
    """The cost of one answer: the backend's own figure if it gave one, else the table's.

    ``None`` when the model has no price or the token counts are missing.
    """
    try:  # an answer event has every field: read them directly (projections price millions)
        cost = success.cost
        input_tokens = success.input_tokens
        output_tokens = success.output_tokens
        cached = success.cached_tokens
        cache_write = success.cache_write_tokens
        reasoning_tokens = success.reasoning_tokens
    except AttributeError:
        cost = getattr(success, "cost", None)
        input_tokens = getattr(success, "input_tokens", None)
        output_tokens = getattr(success, "output_tokens", None)
        cached = getattr(success, "cached_tokens", None)
        cache_write = getattr(success, "cache_write_tokens", None)
        reasoning_tokens = getattr(success, "reasoning_tokens", None)
    if cost is not None:
        return cost
    prices = unit_prices(backend, model, table)
    if prices is None or input_tokens is None or output_tokens is None:
        return None
    # min(a, b) as ``b if b < a else a`` (what min returns; without three builtin calls)
    read = cached or 0
    read = input_tokens if input_tokens < read else read
    written = cache_write or 0
    left = input_tokens - read
    written = left if left < written else written
    reasoning = reasoning_tokens or 0
    reasoning = output_tokens if output_tokens < reasoning else reasoning
    input_price = prices.get("input", 0.0)
    output_price = prices.get("output", 0.0)
    return (
        (input_tokens - read - written) * input_price
        + read * prices.get("cached_input", input_price)
        + written * prices.get("cache_write", input_price)
        + (output_tokens - reasoning) * output_price
        + reasoning * prices.get("reasoning", output_price)
    ) / 1_000_000
