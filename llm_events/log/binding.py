"""Binding ``None`` (SQL NULL) without the sqlite3 module's adaptation lookup.

The standard ``sqlite3`` module binds ``int``, ``float``, ``str`` and ``bytes`` directly, but
passes every other value, ``None`` included, through its adapters: a registry lookup, then
``PrepareProtocol.__adapt__``, which does not exist and costs a formatted ``AttributeError``
(raised and cleared in C), then ``None.__conform__``.  The rows projections write are full of
NULLs (six to eight per ``calls`` row), so a rebuild of 1,000,000 events spent about half a
second of CPU making and dropping those errors.  An adapter registered for ``NoneType``
returns ``None`` at the first step, which is then bound as NULL as before: the same values
stored, and the same for any other code of the process that uses ``sqlite3``.
"""

from __future__ import annotations

import sqlite3

#: ``{}.get(None)`` is ``None``: a C function of one argument with no side effect
_none = {}.get


def register() -> None:
    """Register the ``None`` adapter (idempotent; process-wide, like every adapter)."""
    sqlite3.register_adapter(type(None), _none)


register()
