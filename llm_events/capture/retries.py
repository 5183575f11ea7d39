"""Telling an SDK's retry from a new call, so its attempts belong to one call.

The SDKs retry on their own (429, 5xx, a refused connection) with the same body.  A retry
is recognised by, in order: the same ``Idempotency-Key``; ``x-stainless-retry-count`` above
zero (the OpenAI and Anthropic SDKs send it; 0 means a first attempt) with the same body
from the same client; or, for other clients, the same body from the same client within a
few seconds of a failure that a retry could mend.  A call whose attempt failed that way is
kept open for its retry (``call_finished`` waits); when none comes in time it is finished
as failed.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field

#: How long a call that failed retryably waits for the SDK's retry (the SDKs wait at most a
#: minute, honouring ``retry-after``), and for a client that does not say it retries.
SDK_WINDOW_S = 65.0
PLAIN_WINDOW_S = 10.0


@dataclass
class OpenCall:
    """A call whose last attempt failed retryably, waiting for a retry."""

    call_id: str
    attempts: int
    backend: str
    model: str | None
    started: float
    deadline: float
    keys: tuple[str, ...] = field(default=())
    error_type: str | None = None
    error_message: str | None = None


def request_keys(
    client: str, method: str, path: str, body: bytes, headers: dict[str, str]
) -> tuple[tuple[str, ...], bool | None]:
    """(keys that identify a retry of this request, whether it says it is one).

    The second item is True for a declared retry, False for a declared first attempt,
    None when the client says nothing.
    """
    digest = hashlib.blake2b(body, digest_size=16).hexdigest()
    keys = [f"body:{client}:{method}:{path}:{digest}"]
    idem = headers.get("idempotency-key")
    if idem:
        keys.insert(0, f"idem:{idem}")
    count = headers.get("x-stainless-retry-count")
    declared: bool | None = None
    if count is not None:
        try:
            declared = int(count) > 0
        except ValueError:
            declared = None
    return tuple(keys), declared


class OpenCalls:
    """Calls waiting for a retry, found by request key; thread-safe."""

    def __init__(self) -> None:
        self._by_key: dict[str, OpenCall] = {}
        self._lock = threading.Lock()

    def claim(self, keys: tuple[str, ...], declared: bool | None) -> OpenCall | None:
        """The open call this request retries (removed from the waiting ones), if any."""
        if declared is False:
            return None
        now = time.monotonic()
        with self._lock:
            for key in keys:
                call = self._by_key.get(key)
                if call is not None and call.deadline >= now:
                    for k in call.keys:
                        self._by_key.pop(k, None)
                    return call
        return None

    def wait(self, call: OpenCall, *, sdk: bool) -> None:
        """Keep ``call`` open for a retry (longer for an SDK that says it retries)."""
        window = SDK_WINDOW_S if sdk else PLAIN_WINDOW_S
        call.deadline = time.monotonic() + window
        with self._lock:
            for key in call.keys:
                self._by_key[key] = call

    def forget(self, call: OpenCall) -> None:
        """Stop waiting for a retry of ``call`` (it has been finished otherwise)."""
        with self._lock:
            for k in call.keys:
                if self._by_key.get(k) is call:
                    del self._by_key[k]

    def expired(self, *, everything: bool = False) -> list[OpenCall]:
        """Remove and return the calls whose wait is over (all of them with ``everything``)."""
        now = time.monotonic()
        with self._lock:
            gone = {id(c): c for c in self._by_key.values() if everything or c.deadline < now}
            for call in gone.values():
                for k in call.keys:
                    if self._by_key.get(k) is call:
                        del self._by_key[k]
        return list(gone.values())

    def __len__(self) -> int:
        with self._lock:
            return len({id(c) for c in self._by_key.values()})
