"""OpenAI's legacy Completions (``POST /v1/completions``), still served by vLLM and others.

Neutral <-> wire: the ``prompt`` text is one user turn (a list of prompts, one turn each;
token-id prompts stay in ``params``); building joins the conversation's text into one
prompt, system text first.  Answers are ``choices[0].text``; streams are the chat chunks'
SSE framing with ``choices[].text`` (read by the chat stream parser).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..log.conversation import ChatRequest, Message, ModelResponse, TextPart
from .base import (
    Adapter,
    Blobs,
    as_dict,
    decode_body,
    header_request_id,
    kept_headers,
    request_body,
)
from .openai_chat import ChatStreamParser, stop_details, text_of, usage


def parse_text_response(data: Any, headers: Mapping[str, str] | None) -> ModelResponse:
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("choices"), list)
        or not data["choices"]
    ):
        raise ValueError("the server's answer has no ['choices'][0]")
    choice = as_dict(data["choices"][0])
    text = choice.get("text")
    return ModelResponse(
        text=text if isinstance(text, str) else "",
        finish_reason=choice.get("finish_reason"),
        stop_details=stop_details(choice),
        usage=usage(data.get("usage")),
        response_id=data.get("id"),
        response_model=data.get("model"),
        request_id=header_request_id(headers),
        headers=kept_headers(headers),
        logprobs=choice.get("logprobs"),
        raw=data,
    )


class OpenAICompletionsAdapter(Adapter):
    name = "openai_completions"
    path = "/completions"

    def build_request(
        self, req: ChatRequest, blobs: Mapping[str, bytes] | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if req.model is not None:
            body["model"] = req.model
        texts = [text_of(m.parts) for m in req.messages]
        body["prompt"] = "\n\n".join(t for t in texts if t)
        body.update(req.params)
        if req.stream:
            body["stream"] = True
        return body

    def parse_request(self, body: dict[str, Any] | bytes | str) -> tuple[ChatRequest, Blobs]:
        data = request_body(body)
        prompt = data.get("prompt")
        params = {k: v for k, v in data.items() if k not in ("model", "prompt", "stream")}
        if isinstance(prompt, str):
            messages = [Message(role="user", parts=[TextPart(content=prompt)])]
        elif isinstance(prompt, list) and all(isinstance(p, str) for p in prompt):
            messages = [Message(role="user", parts=[TextPart(content=p)]) for p in prompt]
        else:
            messages = []
            if prompt is not None:
                params["prompt"] = prompt
        model = data.get("model")
        return (
            ChatRequest(
                model=model if isinstance(model, str) else None,
                messages=messages,
                params=params,
                stream=bool(data.get("stream")),
            ),
            {},
        )

    def parse_response(
        self, body: bytes | str | dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> ModelResponse:
        return parse_text_response(decode_body(body), headers)

    def stream_parser(self, headers: Mapping[str, str] | None = None) -> ChatStreamParser:
        return ChatStreamParser(headers)


adapter = OpenAICompletionsAdapter()
