"""Re-sending a captured request, byte for byte as recorded, to another upstream.

``llm-events replay --to-url URL`` replays captured calls with :class:`ResendClient`: for
each, the request body its first attempt recorded (``attempt_started.params["body"]``) goes
to ``URL`` + the provider path it was sent to, and the answer is parsed by the same adapters
as the proxy's.  Replay links the new call to the captured one (``parent_call_id``), which is
how the client finds the body to send.  Keys come from ``OPENAI_API_KEY`` /
``ANTHROPIC_API_KEY`` (none were recorded).
"""

from __future__ import annotations

import json
import os
from typing import Any

import httpx

from ..interface.client import LLMClient
from ..interface.prompt import LLMResult, Prompt
from ..log import blobs
from ..log import events as ev
from ..log.store import EventStore
from ..recording.recorder import current_call
from . import parsing
from .blob_refs import resolve_blob_refs
from .routing import join

ANTHROPIC_VERSION = "2023-06-01"


class ResendError(RuntimeError):
    """The recorded request cannot be re-sent, or its new answer is an error."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retryable = status_code is not None and (status_code == 429 or status_code >= 500)


def recorded_request(store: EventStore, call_id: str) -> tuple[str, Any]:
    """(provider path, JSON body) of a captured call's first attempt."""
    for stored in store.iter_events(call_id=call_id, types=["attempt_started"]):
        event = stored.event
        if not isinstance(event, ev.AttemptStarted):
            continue
        http = event.params.get("http") or {}
        body = event.params.get("body")
        if not http or body is None:
            break
        if isinstance(body, dict) and body.get("truncated"):
            raise ResendError(f"call {call_id}: its recorded body was truncated (over the limit)")
        if isinstance(body, dict) and "unstorable" in body:
            raise ResendError(f"call {call_id}: its recorded body could not be stored as JSON")
        body = resolve_blob_refs(body, lambda digest: blobs.read(store.conn(), digest))
        return http.get("provider_path") or http.get("path") or "/", body
    raise ResendError(f"call {call_id} was not captured by the proxy or transport (no body)")


class ResendClient(LLMClient):
    """Sends captured bodies to ``url`` (``https://staging.example/v1``)."""

    backend_name = "resend"

    def __init__(self, url: str, *, timeout: float = 600.0, **kwargs: Any) -> None:
        super().__init__(model=url.rstrip("/"), **kwargs)
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _headers(self, path: str) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if path.startswith("/v1/messages"):
            headers["anthropic-version"] = ANTHROPIC_VERSION
            key = os.environ.get("ANTHROPIC_API_KEY")
            if key:
                headers["x-api-key"] = key
        else:
            key = os.environ.get("OPENAI_API_KEY")
            if key:
                headers["authorization"] = f"Bearer {key}"
        return headers

    def _generate(self, prompt: Prompt, *, context_builder: Any = None) -> LLMResult:
        scope = current_call()
        source = scope.options.parent_call_id if scope and scope.options else None
        store = scope.store if scope else None
        if source is None or store is None:
            raise ResendError("ResendClient re-sends captured calls: use it through replay")
        path, body = recorded_request(store, source)
        with httpx.Client(timeout=self.timeout) as http:
            response = http.post(
                join(self.url, path), content=json.dumps(body), headers=self._headers(path)
            )
        headers = {k.lower(): v for k, v in response.headers.items()}
        if response.status_code >= 400:
            raise ResendError(
                f"HTTP {response.status_code}: {response.text[:300]}", response.status_code
            )
        adapter = parsing.adapter_for_path(path)
        if adapter is None:
            return LLMResult(text=response.text, raw={"status": response.status_code})
        if headers.get("content-type", "").startswith(("text/event-stream", "application/x-nd")):
            parser = adapter.stream_parser(headers)
            parser.feed(response.content)
            r = parser.response()
            raw = None
        else:
            raw = response.json()
            r = adapter.parse_response(raw, headers)
        return LLMResult(
            raw=raw,
            text=r.text,
            input_tokens=r.usage.input_tokens,
            output_tokens=r.usage.output_tokens,
            finish_reason=r.finish_reason,
            response_id=r.response_id,
            response_model=r.response_model,
            request_id=r.request_id,
        )
