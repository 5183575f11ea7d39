"""Small clients and functions that tests name as ``tests.helpers:attr`` specs."""

from __future__ import annotations

from llm_events import LLMClient, LLMResult, Prompt


def reverse(prompt: Prompt) -> str:
    return prompt.user[::-1]


def upper_result(prompt: Prompt) -> LLMResult:
    return LLMResult(text=prompt.user.upper())


#: A one-pixel PNG: what the conversation below sends inline.
PIXEL_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)

#: Earlier turns of a conversation: an image, a tool call and its result.
WEATHER_HISTORY = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "Where was this photo taken, and what is the weather there?"},
            {"type": "blob", "mime_type": "image/png", "content": PIXEL_PNG},
        ],
    },
    {
        "role": "assistant",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 18, "sky": "clear"}'},
    {"role": "assistant", "content": "In Paris; it is 18 C and clear."},
]
WEATHER_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather now in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_forecast",
            "description": "The forecast for a city and day",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "day": {"type": "string"}},
            },
        },
    },
]


def forecast_call(prompt: Prompt) -> LLMResult:
    """Answers with a tool call, as a model with tools would (``tests.helpers:forecast_call``)."""
    return LLMResult(
        text="",
        input_tokens=1200,
        output_tokens=40,
        tool_calls=[
            {
                "id": "call_2",
                "name": "get_forecast",
                "arguments": '{"city": "Paris", "day": "saturday", "units": "metric"}',
            }
        ],
        finish_reason="tool_calls",
        cache_read_tokens=1000,
        reasoning_tokens=12,
        response_id="chatcmpl-42",
        response_model="weather-model-2026-01-01",
        request_id="req_42",
    )


#: What the replay clients below were sent (the whole request, as the client saw it).
SEEN: list[Prompt] = []


def forecast_again(prompt: Prompt) -> LLMResult:
    """The same tool call with another id, arguments in another order and spacing."""
    SEEN.append(prompt)
    return LLMResult(
        text="",
        tool_calls=[
            {
                "id": "call_77",
                "name": "get_forecast",
                "arguments": '{"units":"metric","day":"saturday","city":"Paris"}',
            }
        ],
    )


def forecast_sunday(prompt: Prompt) -> LLMResult:
    """Another day, and one more tool."""
    return LLMResult(
        text="",
        tool_calls=[
            {
                "id": "c1",
                "name": "get_forecast",
                "arguments": '{"city": "Paris", "day": "sunday", "units": "metric"}',
            },
            {"id": "c2", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        ],
    )


class Returns(LLMClient):
    """A client whose every answer is the result it was made with (any value: tests feed
    it what a faulty backend could return)."""

    def __init__(self, result):  # type: ignore[no-untyped-def]
        super().__init__("returns")
        self.result = result

    def _generate(self, prompt, *, context_builder):  # type: ignore[no-untyped-def]
        return self.result


def read_db(path):  # type: ignore[no-untyped-def]
    """A plain connection for reading a store's tables once every store this process has
    open has brought its projections up to date (they follow the log: llm_events.flush())."""
    import sqlite3

    import llm_events

    llm_events.flush()
    return sqlite3.connect(path)
