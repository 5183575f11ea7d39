"""Which store records, and how: ``configure()``, ``LLM_EVENTS_DB``, the user default.

Resolution order for the store: an explicit argument > ``configure(db=...)`` > the
``LLM_EVENTS_DB`` environment variable > ``<app dir>/events.db`` (``llm-events path``).
Stores are opened once per path and process and shared by every client.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ..log.redaction import Redactor

if TYPE_CHECKING:  # imported where used: resolving a path must not load the store
    from ..log.store import EventStore

OnStoreError = Literal["raise", "warn"]


@dataclass
class Settings:
    db: str | None = None
    store: EventStore | None = None
    on_store_error: OnStoreError = "raise"
    redactor: Redactor = field(default_factory=Redactor)
    batch: bool = False
    enabled: bool = True
    store_blobs: bool = True


_settings = Settings()
_stores: dict[tuple[str, bool], EventStore] = {}
_lock = threading.Lock()


def settings() -> Settings:
    return _settings


def configure(
    db: str | os.PathLike[str] | EventStore | None = None,
    *,
    on_store_error: OnStoreError | None = None,
    redact: Iterable[str | Callable[[str], str]] | Redactor | None = None,
    redact_defaults: bool = True,
    batch: bool | None = None,
    enabled: bool | None = None,
    store_blobs: bool | None = None,
) -> None:
    """Set process-wide recording options.

    ``db``: a path or an :class:`EventStore` to record into.  ``on_store_error``: ``"raise"``
    (default: no answer without its record) or ``"warn"`` (the answer goes through and the
    loss is reported).  ``redact``: extra regex patterns and/or callables ``str -> str``
    applied to every recorded string (the default secret patterns stay unless
    ``redact_defaults=False``).  ``batch``: group commits in the background (bulk work).
    ``enabled=False`` turns recording off.  ``store_blobs=False``: inline images and files
    are recorded by digest, media type and size only, their bytes left out of the store
    (a replay cannot re-send them then).
    """
    if on_store_error is not None:
        if on_store_error not in ("raise", "warn"):
            raise ValueError("on_store_error must be 'raise' or 'warn'")
        _settings.on_store_error = on_store_error
    from ..log.store import EventStore

    if isinstance(db, EventStore):
        _settings.store, _settings.db = db, None
    elif db is not None:
        _settings.store, _settings.db = None, os.fspath(db)
    if redact is not None:
        if isinstance(redact, Redactor):
            _settings.redactor = redact
        else:
            items = list(redact)
            _settings.redactor = Redactor(
                [p for p in items if isinstance(p, str)],
                [c for c in items if callable(c)],
                include_defaults=redact_defaults,
            )
    elif not redact_defaults:
        _settings.redactor = Redactor(include_defaults=False)
    if batch is not None:
        _settings.batch = batch
    if enabled is not None:
        _settings.enabled = enabled
    if store_blobs is not None:
        _settings.store_blobs = bool(store_blobs)


def reset() -> None:
    """Back to defaults and close every store opened through :func:`open_store` (tests)."""
    global _settings
    _settings = Settings()
    with _lock:
        for store in _stores.values():
            with contextlib.suppress(Exception):
                store.close()
        _stores.clear()


def flush() -> None:
    """Commit everything queued or held by this process's open stores (batch mode,
    deferred prompts) and bring their projections up to date (also done at close and at
    exit, and by the stores' background threads a few milliseconds after appends)."""
    from ..log.store import open_stores

    with _lock:
        stores = list(_stores.values())
    if _settings.store is not None:
        stores.append(_settings.store)
    stores += [s for s in open_stores() if s not in stores]
    for store in stores:
        if not store._closed:
            store.flush()


def app_dir() -> Path:
    """The per-user directory, as click computes it (like ``llm``'s logs.db location)."""
    override = os.environ.get("LLM_EVENTS_HOME")
    if override:
        return Path(override)
    import click

    return Path(click.get_app_dir("llm-events"))


def default_db_path() -> Path:
    return app_dir() / "events.db"


def resolve_db_path(db: str | os.PathLike[str] | None = None) -> Path:
    """The store path after applying the resolution order (no file is opened)."""
    if db is not None:
        return Path(db)
    if _settings.db is not None:
        return Path(_settings.db)
    env = os.environ.get("LLM_EVENTS_DB")
    if env:
        return Path(env)
    return default_db_path()


def open_store(
    db: str | os.PathLike[str] | EventStore | None = None, *, batch: bool | None = None
) -> EventStore:
    """The shared store for ``db`` (resolved as above), opened on first use."""
    from ..log.store import EventStore

    if isinstance(db, EventStore):
        return db
    if db is None and _settings.store is not None:
        return _settings.store
    path = resolve_db_path(db)
    use_batch = _settings.batch if batch is None else batch
    if db is None and _settings.db is None and not os.environ.get("LLM_EVENTS_DB"):
        path.parent.mkdir(parents=True, exist_ok=True)
    key = (str(path.resolve()) if str(path) != ":memory:" else ":memory:", use_batch)
    with _lock:
        store = _stores.get(key)
        if store is None or store._closed:
            store = EventStore(path, batch=use_batch)
            _stores[key] = store
        return store
