"""How a recording reaches its store: opening it once per path, writing events to it,
and what a failure does (raise :class:`RecordingError`, or warn and let the answer through).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import warnings
import weakref
from collections.abc import Sequence

from ..log import events as ev
from ..log.interrupted import record_interrupted
from ..log.store import EventStore, StoreError
from .config import open_store, resolve_db_path, settings


class RecordingError(StoreError):
    """An event could not be recorded, so the call was stopped (``on_store_error="raise"``)."""


class RecordingLostWarning(UserWarning):
    """An event could not be recorded; the answer went through (``on_store_error="warn"``)."""


StoreSpec = str | EventStore | None


def emit(
    store: EventStore,
    events: Sequence[ev.Event],
    on_store_error: str,
    *,
    what: str = "",
    defer: bool = False,
) -> bool:
    """Append (or, with ``defer``, hold for the next append) events; on failure raise
    :class:`RecordingError` or warn (returns False)."""
    try:
        if defer:
            if store.readonly:
                raise StoreError(f"event store {store.path} is open read-only")
            store.defer(events)
        else:
            store.append(events)
        return True
    except (StoreError, sqlite3.Error, OSError) as e:
        message = f"could not record {what or 'events'} to {store.path or 'the store'}: {e}"
        if on_store_error == "warn":
            warnings.warn(message, RecordingLostWarning, stacklevel=3)
            return False
        raise RecordingError(message) from e


#: (path as resolved by config, batch flag, cwd for a relative path) -> the store opened for it.
_resolved: dict[tuple[str, bool, str], EventStore] = {}


#: What a store path is resolved from (see ``_resolution_inputs``) -> (path, is it relative).
_paths: dict[tuple, tuple[str, bool]] = {}
_PATH_ENV = ("LLM_EVENTS_DB", "LLM_EVENTS_HOME", "XDG_CONFIG_HOME", "HOME")


def _resolved_key(explicit: StoreSpec) -> tuple[str, bool, str] | None:
    if isinstance(explicit, EventStore):
        return None
    current = settings()
    if explicit is None and current.store is not None:
        return None
    # everything resolve_db_path reads: building Paths on every call cost a tenth of it
    if explicit is not None or current.db is not None:
        inputs: tuple = (explicit, current.db)
    else:
        inputs = tuple(map(os.environ.get, _PATH_ENV))
    try:
        path, relative = _paths[inputs]
    except (KeyError, TypeError):  # TypeError: an unhashable os.PathLike
        resolved = resolve_db_path(explicit)
        path, relative = str(resolved), not resolved.is_absolute()
        with contextlib.suppress(TypeError):
            if len(_paths) >= 64:
                _paths.clear()
            _paths[inputs] = (path, relative)
    return (path, current.batch, os.getcwd() if relative else "")


def resolve_store(explicit: StoreSpec, on_store_error: str) -> EventStore | None:
    """Open the store for a recording; ``None`` (after a warning) if it cannot be opened.

    Every recorded call resolves its store twice (builder, then client); ``open_store``
    resolves the path on the filesystem each time (``Path.resolve``: a syscall per path
    component, a tenth of a recorded call's cost).  The path that the configuration names
    is computed without touching the filesystem, and the store opened for it is reused
    while it stays open.
    """
    key = _resolved_key(explicit)
    if key is not None:
        store = _resolved.get(key)
        if store is not None and not store._closed:
            return store
    try:
        store = open_store(explicit)
        if key is not None:
            if len(_resolved) >= 64:
                _resolved.clear()
            _resolved[key] = store
    except (StoreError, sqlite3.Error, OSError) as e:
        if on_store_error == "warn":
            warnings.warn(f"not recording: {e}", RecordingLostWarning, stacklevel=3)
            return None
        if isinstance(e, StoreError):
            raise RecordingError(str(e)) from e
        raise RecordingError(f"cannot open event store: {e}") from e
    if store not in _swept:
        _swept.add(store)
        # once per store and process; housekeeping never stops a recording (a store that
        # cannot be written fails again, clearly, in the recording's own write)
        with contextlib.suppress(StoreError, sqlite3.Error, OSError, ValueError):
            record_interrupted(store)
    return store


#: Stores already searched for the calls of ended processes (``record_interrupted``).
_swept: weakref.WeakSet[EventStore] = weakref.WeakSet()
