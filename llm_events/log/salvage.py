"""Reading events that do not match their schema, instead of failing on them.

Events are immutable: one written with a value of the wrong type (by an older version, by
hand, by a forger with the algorithm) stays in the log for ever.  ``rebuild``, ``export``,
the listings and every recording process must still read the log, so a field that does not
decode is read leniently (``"12"`` as 12) or, failing that, as its default, and an event
whose required fields are unreadable is read as an unknown event, which projections skip.
Each such event is noted in :data:`REPORTED`, which ``rebuild`` prints.

Nothing here imports the event classes: :mod:`.events` passes them in.
"""

from __future__ import annotations

import collections
import re
from typing import Any

import msgspec

#: The most recent events read leniently or skipped: ``(event id, what was wrong)``.
REPORTED: collections.deque[tuple[str, str]] = collections.deque(maxlen=1000)

_AT = re.compile(r"at `\$\.([A-Za-z_][A-Za-z0-9_]*)")
_KEPT = frozenset({"type", "id", "ts", "v"})


def report(event_id: str, what: str) -> None:
    REPORTED.append((event_id, what))


def drain() -> list[tuple[str, str]]:
    """What was reported since the last call (and forget it)."""
    out = list(REPORTED)
    REPORTED.clear()
    return out


def salvage(loose: dict[str, Any], cls: type, error: Exception) -> Any | None:
    """``loose`` as a ``cls`` with the fields that do not decode read leniently or dropped
    to their defaults; ``None`` if a required field is unreadable."""
    required = {
        f.name
        for f in msgspec.structs.fields(cls)
        if f.default is msgspec.NODEFAULT and f.default_factory is msgspec.NODEFAULT
    }
    data = dict(loose)
    event_id = str(data.get("id", ""))
    dropped: list[str] = []
    for _ in range(len(data) + 1):
        try:
            event = msgspec.convert(data, cls, strict=False)
        except msgspec.ValidationError as e:
            error = e
        else:
            what = (
                f"read leniently ({error})"
                if not dropped
                else (f"unreadable field(s) {', '.join(dropped)} read as defaults ({error})")
            )
            report(event_id, what)
            return event
        found = _AT.search(str(error))
        field = found.group(1) if found else None
        if field is None or field not in data or field in _KEPT or field in required:
            report(event_id, f"skipped: {error}")
            return None
        dropped.append(field)
        del data[field]
    report(event_id, f"skipped: {error}")
    return None
