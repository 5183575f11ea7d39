"""What opens an exchange: the recorder the proxy and the httpx transport share.

:class:`ExchangeRecorder` turns a request into the events committed before it goes upstream
(``prompt_built``, ``call_started``, ``attempt_started``; the conversation parsed by the
provider adapters), groups an SDK's retries into one call, scrubs the credentials it saw, and
holds each outcome until the next write-ahead commits it (or a 0.2 s timer does).
:class:`~llm_events.capture.exchange.Exchange` records the rest of one exchange.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any

import msgspec

from ..log import events as ev
from ..log import processes
from ..log.blobs import attach as attach_blobs
from ..log.conversation import (
    ChatRequest,
    Message,
    TextPart,
)
from ..log.redaction import Redactor
from ..log.secrets import configured_secrets
from ..log.store import EventStore, StoreError
from . import parsing
from .blob_refs import blob_refs, blob_rows
from .credentials import ExchangeRedactor, credential_values, secret_scrubber
from .encodings import undone_whole
from .exchange import DEFAULT_MAX_BODY_BYTES, PARSE_LIMIT, Exchange, decode_json, log
from .request_head import Annotations, Request, annotations
from .retries import OpenCall, OpenCalls, request_keys


class ExchangeRecorder:
    """Turns exchanges into calls in one store; shared by every request of a proxy or of
    an httpx client (thread-safe).  ``store=None`` records nothing (forwarding only)."""

    def __init__(
        self,
        store: EventStore | None,
        *,
        source: str,
        redactor: Redactor | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        secrets: Sequence[str] = (),
    ) -> None:
        from ..recording.config import settings

        self.store = store
        self.source = source
        base = redactor if redactor is not None else settings().redactor
        scrub = secret_scrubber(list(secrets))
        self.redactor = base
        if scrub is not None:
            self.redactor = Redactor(include_defaults=False, callables=[base, scrub])
            self.redactor.sensitive_keys = base.sensitive_keys  # credential keys stay masked
        self.max_body_bytes = max_body_bytes
        self.store_blobs = settings().store_blobs
        self.open_calls = OpenCalls()
        self.process = processes.current()
        self._closed = False
        self._expiry: threading.Thread | None = None
        self._wake = threading.Event()
        self.lost = 0
        self._memo_forms: tuple[str, ...] | None = None
        self._memo_dict: dict[str, str] = {}
        self._scrubbers: dict[tuple[str, ...], Any] = {}

    @property
    def recording(self) -> bool:
        return self.store is not None

    def _memo(self) -> dict[str, str]:
        """The shared memo of redacted strings, emptied when the configured keys change."""
        forms = configured_secrets()
        if forms is not self._memo_forms:
            self._memo_forms = forms
            self._memo_dict = {}
        return self._memo_dict

    def _scrubber(self, headers: dict[str, str]) -> Any:
        """Masks this request's own credentials (remembered per set of credentials)."""
        creds = tuple(credential_values(headers))
        if not creds:
            return None
        scrub = self._scrubbers.get(creds)
        if scrub is None:
            if len(self._scrubbers) >= 256:
                self._scrubbers.clear()
            scrub = self._scrubbers[creds] = secret_scrubber(creds)
        return scrub

    # --- the request -----------------------------------------------------------------------

    def begin(self, request: Request) -> Exchange:
        """The exchange for ``request``; its ``start_events`` are to be committed before
        the request goes upstream."""
        headers = request.headers
        redactor = ExchangeRedactor(self.redactor, self._memo(), self._scrubber(headers))
        adapter = parsing.adapter_for_path(request.provider_path or request.path)
        body = request.body
        coding = headers.get("content-encoding")
        if coding and body and adapter is not None:
            # a compressed request (the bytes go upstream as they came): read it decoded
            limit = self.max_body_bytes * PARSE_LIMIT
            body = undone_whole(body, coding, limit) or body
        body_json = decode_json(body) if adapter is not None and body else None
        chat: ChatRequest | None = None
        blobs: dict[str, bytes] = {}
        if adapter is not None and isinstance(body_json, dict):
            try:
                chat, blobs = parsing.request_of(adapter, body_json)
            except Exception:
                log.debug("request parser failed", exc_info=True)
                chat = None
        if chat is None:
            adapter = None
        keys, declared = request_keys(
            request.client, request.method, request.path, request.body, headers
        )
        retried = self.open_calls.claim(keys, declared)
        if retried is not None:
            call, attempt = retried, retried.attempts + 1
        else:
            call = OpenCall(
                call_id=ev.new_id(),
                attempts=0,
                backend=request.upstream,
                model=chat.model if chat else None,
                started=time.perf_counter(),
                deadline=0.0,
                keys=keys,
            )
            attempt = 1
        exchange = Exchange(self, request, adapter, chat, call, attempt, declared, redactor)
        if self.store is None:
            return exchange
        events: list[ev.Event] = []
        if retried is None:
            note = annotations(headers)
            prompt_id = None
            if chat is not None:
                built = self._prompt_built(chat, note, exchange)
                events.append(built)
                prompt_id = built.prompt_id
                if blobs and self.store_blobs:
                    attach_blobs(built.id, blob_rows(built.messages, blobs))
            events.append(
                exchange._event(
                    ev.CallStarted,
                    prompt_id=prompt_id,
                    client=f"{self.source}:{request.upstream}",
                    model=chat.model if chat else None,
                    tags=exchange._clean(note.tags, "tags"),
                    metadata=exchange._clean(note.metadata, "metadata"),
                    host=self.process.host,
                    pid=self.process.pid,
                    process=self.process.process,
                    source=self.source,
                )
            )
        http = {"method": request.method, "path": request.path, "url": request.url}
        if request.provider_path and request.provider_path != request.path:
            http["provider_path"] = request.provider_path
        if coding:
            http["content_encoding"] = coding
        params: dict[str, Any] = {"http": http}
        if retried is None and chat is not None:
            params["body"] = self._recorded_body(body, body_json, blobs)
        events.append(
            exchange._event(
                ev.AttemptStarted,
                attempt=attempt,
                backend=request.upstream,
                model=chat.model if chat else None,
                params=exchange._clean(params, "params"),
            )
        )
        exchange.start_events = events
        return exchange

    def _recorded_body(self, body: bytes, parsed: Any, blobs: dict[str, bytes]) -> Any:
        """The request body as recorded: its JSON (inline bytes the blobs table holds
        replaced by their digest, see :func:`blob_refs`), its text, or a truncated prefix."""
        if not body:
            return None
        if len(body) > self.max_body_bytes and not blobs:
            head = body[: self.max_body_bytes].decode("utf-8", "replace")
            return {"truncated": True, "size": len(body), "text": head}
        if parsed is not None:
            return blob_refs(parsed, blobs) if blobs else parsed
        text = body.decode("utf-8", "replace")
        return {"text": text, "size": len(body)}

    def _prompt_built(self, chat: ChatRequest, note: Annotations, x: Exchange) -> ev.PromptBuilt:
        cleaned = x._clean(msgspec.to_builtins(chat.messages), "messages")
        try:
            messages = msgspec.convert(cleaned, list[Message])
        except (msgspec.ValidationError, TypeError):
            messages = []
        tools_raw = x._clean(msgspec.to_builtins(chat.tools), "tools")
        try:
            tools = msgspec.convert(tools_raw, list[type(chat.tools[0])]) if chat.tools else []
        except (msgspec.ValidationError, TypeError):
            tools = []
        system = "\n\n".join(_texts(m) for m in messages if m.role == "system")
        users = [m for m in messages if m.role == "user"]
        event_id = ev.new_id()
        options = x._clean(chat.params, "options")
        if chat.stream:
            options = {**options, "stream": True}
        return ev.PromptBuilt(
            id=event_id,
            ts=ev.now_iso(),
            prompt_id=event_id,
            system=system,
            user=_texts(users[-1]) if users else "",
            tags=x._clean(note.tags, "tags"),
            metadata=x._clean(note.metadata, "metadata"),
            origin=self.source,
            builder=self.source,
            messages=messages,
            tools=tools,
            options=options,
        )

    # --- calls ---------------------------------------------------------------------------

    def call_finished(self, call: OpenCall, status: str, model: str | None) -> ev.Event:
        ok = status == "ok"
        return ev.CallFinished(
            id=ev.new_id(),
            ts=ev.now_iso(),
            call_id=call.call_id,
            status=status,
            attempts=call.attempts,
            backend=call.backend if ok else None,
            model=model if ok else None,
            error_type=None if ok else call.error_type,
            error_message=None if ok else call.error_message,
            latency_ms=round((time.perf_counter() - call.started) * 1000, 3),
        )

    def expired_events(self, *, everything: bool = False) -> list[ev.Event]:
        """``call_finished`` for the calls whose retry did not come in time."""
        return [
            self.call_finished(c, "error", c.model)
            for c in self.open_calls.expired(everything=everything)
        ]

    # --- writing ---------------------------------------------------------------------------

    def write(self, events: Sequence[ev.Event]) -> bool:
        """Commit ``events`` (blocking); False, after a logged error, if the store failed."""
        if self.store is None or not events:
            return True
        try:
            self.store.append(events)
            return True
        except (StoreError, sqlite3.Error, OSError, ValueError) as e:
            self.lost += len(events)
            log.error("llm-events: could not record %d events: %s", len(events), e)
            return False

    def hold(self, events: Sequence[ev.Event]) -> None:
        """Hold an outcome for the next commit (the next request's write-ahead shares its
        transaction) or the flush :meth:`start_expiry` runs every ``interval_s``: the
        client already has its answer, and one commit per request instead of two is what
        lets the proxy keep up with many concurrent clients.  Cheap: no I/O (called on the
        proxy's event loop)."""
        if self.store is None or not events:
            return
        try:
            self.store.defer(events)
        except (StoreError, sqlite3.Error, OSError, ValueError) as e:
            self.lost += len(events)
            log.error("llm-events: could not record %d events: %s", len(events), e)

    def start_expiry(self, interval_s: float = 0.2) -> None:
        """Finish calls whose retry never came, on a daemon thread."""
        if self._expiry is not None or self.store is None:
            return

        ref, wake = weakref.ref(self), self._wake

        def loop() -> None:  # holds the recorder weakly: a dropped client lets it go
            while not wake.wait(interval_s):
                recorder = ref()
                if recorder is None:
                    return
                if len(recorder.open_calls):
                    recorder.write(recorder.expired_events())
                recorder.flush_held()
                del recorder

        self._expiry = threading.Thread(target=loop, name="llm-events-retries", daemon=True)
        self._expiry.start()

    def flush_held(self) -> None:
        """Commit the held outcomes (only that: projections follow on their own schedule;
        a full ``flush`` here caught them up on this thread every interval)."""
        store = self.store
        if store is not None and getattr(store, "_deferred", True):
            try:
                store.flush_events()
            except (StoreError, sqlite3.Error, OSError, ValueError) as e:
                log.error("llm-events: could not record held events: %s", e)

    def close(self) -> None:
        """Finish every call still waiting for a retry, and flush the store."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        if self.store is not None:
            self.write(self.expired_events(everything=True))
            with contextlib.suppress(StoreError, sqlite3.Error, OSError):
                self.store.flush()


def _texts(message: Message) -> str:
    return "".join(p.content for p in message.parts if isinstance(p, TextPart))
