"""Browsing a store in Datasette: the shipped metadata, the views, the ``datasette`` command.

Why a module of its own: ``llm-events browse``, the tests and the benchmarks all need the same
metadata (renamed for the store's file name) and the same Datasette arguments.  It does not
import Datasette; it only builds the command that runs it.

Read-only: Datasette opens a file given to ``datasette serve`` (without ``-i``) through
``file:...?mode=ro`` connections and writes only for plugins that ask to; none here do.  It
still sees rows appended while it runs, which ``--immutable`` would not (immutable also tells
SQLite the file never changes, which is wrong for a live store).
"""

from __future__ import annotations

import copy
import json
import os
import sqlite3
import stat
import sys
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

#: The database key used in datasette-metadata.json (the default store is events.db).
METADATA_DB_NAME = "events"
PLUGINS_DIR = Path(__file__).parent / "plugins"
#: Our pages' templates (and ``_table.html``, which links primary-key call ids to call pages).
TEMPLATES_DIR = Path(__file__).parent / "templates"
#: CSS, the charting library (uPlot, vendored with its license) and the dashboard's script,
#: served at ``/llm-events/``: no page loads anything from the network.
STATIC_DIR = Path(__file__).parent / "static"
STATIC_MOUNT = "llm-events"

#: Datasette settings ``browse`` uses: pages stay fast on stores of millions of events.
SETTINGS: dict[str, str] = {
    "suggest_facets": "off",
    "default_page_size": "50",
    "truncate_cells_html": "400",
    "sql_time_limit_ms": "3000",
    "facet_time_limit_ms": "200",
}


@lru_cache(maxsize=1)
def _shipped_metadata_text() -> str:
    from importlib.resources import files

    return (files("llm_events") / "datasette-metadata.json").read_text(encoding="utf-8")


def load_metadata() -> dict[str, Any]:
    """The metadata shipped inside the package (same as the repo's datasette-metadata.json)."""
    return json.loads(_shipped_metadata_text())


def database_name(db_path: str | Path) -> str:
    """The name Datasette gives a database file: its name without the extension."""
    return Path(db_path).stem


#: Past this many events the ``events`` table opens without its ``type`` facet: counting
#: types reads the whole log (seconds on 1M events), so Datasette's facet only timed out.
TYPE_FACET_MAX_EVENTS = 200_000


def metadata_for(db_path: str | Path) -> dict[str, Any]:
    """The metadata with its database entry renamed for this file (Datasette keys by name),
    and the ``type`` facet of ``events`` left out on a large store."""
    meta = copy.deepcopy(load_metadata())
    name = database_name(db_path)
    dbs = meta.get("databases", {})
    if name != METADATA_DB_NAME and METADATA_DB_NAME in dbs:
        dbs[name] = dbs.pop(METADATA_DB_NAME)
        html = dbs[name].get("description_html")
        if html:  # its links name the database's pages
            dbs[name]["description_html"] = html.replace(
                f'href="/{METADATA_DB_NAME}/', f'href="/{name}/'
            )
    events = dbs.get(name, {}).get("tables", {}).get("events")
    if events is not None and _event_count(db_path) > TYPE_FACET_MAX_EVENTS:
        events.pop("facets", None)
        events["description"] += (
            " (No type facet on a store this large: counting types reads the whole log; the"
            " events_<type> views list each type, ?_facet=type counts anyway.)"
        )
    return meta


def _event_count(db_path: str | Path) -> int:
    """About how many events the file holds (its highest seq); 0 if it cannot be read."""
    import sqlite3

    try:
        conn = sqlite3.connect(f"{Path(db_path).resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return 0
    try:
        return conn.execute("SELECT ifnull(max(seq), 0) FROM events").fetchone()[0]
    except sqlite3.Error:
        return 0
    finally:
        conn.close()


def write_metadata(db_path: str | Path, directory: str | Path) -> Path:
    """Write :func:`metadata_for` as a new file in ``directory`` (which must be private).

    The file is created exclusively (``O_EXCL``, no symlink followed): it never overwrites
    what another user planted there.  ``browse`` passes a directory of :func:`private_dir`.
    """
    target = Path(directory) / f"llm-events-{database_name(db_path)}-metadata.json"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(target, flags, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(metadata_for(db_path), f, indent=2)
    return target


class UnsafePathError(OSError):
    """A path ``browse`` would use is not private to the user running it."""


def check_private(path: str | Path) -> None:
    """Refuse a directory that is a symlink, another user's, or open to others."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise UnsafePathError(f"{path} is not a directory of its own (a symlink?): refusing it")
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise UnsafePathError(f"{path} belongs to uid {st.st_uid}, not to you: refusing it")
    if st.st_mode & 0o077:
        raise UnsafePathError(f"{path} is open to other users: refusing it")


def private_dir() -> Path:
    """A new directory only this user can enter, at an unpredictable name in the temp dir.

    ``mkdtemp`` creates it exclusively (mode 0700), so nothing another local user planted in
    the shared temp directory (a symlink, a swapped metadata file) is ever read or written.
    """
    path = Path(tempfile.mkdtemp(prefix="llm-events-browse-"))
    check_private(path)
    return path


def metadata_fd(db_path: str | Path) -> int | None:
    """The metadata in an anonymous in-memory file (Linux ``memfd``), inheritable, or
    ``None`` where there is none: Datasette reads it as ``/dev/fd/N``, no path to attack."""
    if not hasattr(os, "memfd_create") or not os.path.isdir("/dev/fd"):
        return None
    fd = os.memfd_create("llm-events-metadata", 0)
    os.write(fd, json.dumps(metadata_for(db_path), indent=2).encode("utf-8"))
    os.lseek(fd, 0, os.SEEK_SET)
    os.set_inheritable(fd, True)
    return fd


def ensure_views(db_path: str | Path) -> list[str]:
    """Add or update the payload views of a store made by an older version; returns those.

    Opening the store writable to create views is the only write ``browse`` makes, and only
    when needed; a file we cannot write is browsed with the views it has.
    """
    from ..log.views import ensure_views as create
    from ..log.views import stale_views

    conn = sqlite3.connect(f"file:{Path(db_path).resolve()}?mode=ro", uri=True)
    try:
        if not stale_views(conn):
            return []
    finally:
        conn.close()
    conn = sqlite3.connect(str(db_path), timeout=30, isolation_level=None)
    try:
        return create(conn)
    except sqlite3.Error:
        return []
    finally:
        conn.close()


def datasette_command(
    db_path: str | Path,
    metadata_path: str | Path,
    *,
    port: int = 8001,
    open_browser: bool = False,
    python: str | None = None,
) -> list[str]:
    """The ``datasette serve`` command line that browses ``db_path`` read-only on 127.0.0.1."""
    cmd = [
        python or sys.executable,
        "-P",  # no working directory on sys.path: a secrets.py there is not imported
        "-m",
        "datasette",
        "serve",
        str(db_path),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--metadata",
        str(metadata_path),
        "--plugins-dir",
        str(PLUGINS_DIR),
        "--template-dir",
        str(TEMPLATES_DIR),
        "--static",
        f"{STATIC_MOUNT}:{STATIC_DIR}",
    ]
    for key, value in SETTINGS.items():
        cmd += ["--setting", key, value]
    if open_browser:
        cmd.append("--open")
    return cmd
