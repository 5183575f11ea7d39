"""SQL views that flatten the JSON payload of each main event type into columns.

Why views and not projections: they cost nothing at append time, never go stale and need no
rebuild, and they make the raw log browsable as ordinary tables in Datasette (facets, sorting,
filters) without anyone writing ``json_extract``.  "Newest first" pages stay fast on large
stores: the sparse types (failures, retries, fallbacks, routes, replays) are read through the
partial ``events_type`` index, and the five types every call writes are met at once by a scan
in ``seq`` order.

This module depends on nothing else of ours: the store creates the views with its schema
(:data:`VIEW_SQL`), and :func:`ensure_views` brings a file made by an older version up to date.
"""

from __future__ import annotations

import sqlite3


def _j(field: str, alias: str | None = None) -> str:
    return f"json_extract(payload, '$.{field}') AS {alias or field}"


def _view(name: str, type_: str, columns: list[str], key: str = "call_id") -> str:
    cols = ",\n    ".join(["seq", "ts", f"call_id AS {key}", *columns])
    return (
        f"CREATE VIEW IF NOT EXISTS {name} AS SELECT\n    {cols}\n"
        f"FROM events WHERE type = '{type_}'"
    )


#: view name -> (event type, the SQL that creates it)
VIEWS: dict[str, tuple[str, str]] = {
    "events_prompt_built": (
        "prompt_built",
        "CREATE VIEW IF NOT EXISTS events_prompt_built AS SELECT\n    seq, ts, id AS prompt_id,\n    "
        + ",\n    ".join(
            [
                _j("system"),
                _j("user"),
                _j("examples"),
                _j("tags"),
                _j("metadata"),
                _j("vector_confidence"),
                _j("origin"),
                _j("builder"),
                _j("fingerprint"),
                "json_array_length(payload, '$.context') AS context_items",
                "json_array_length(payload, '$.messages') AS messages",
                "(SELECT group_concat(json_extract(t.value, '$.name'), ', ') "
                "FROM json_each(payload, '$.tools') t) AS tools",
                _j("options"),
            ]
        )
        + "\nFROM events WHERE type = 'prompt_built'",
    ),
    "events_call_started": (
        "call_started",
        _view(
            "events_call_started",
            "call_started",
            [
                _j("prompt_id"),
                _j("client"),
                _j("model"),
                _j("parent_call_id"),
                _j("tags"),
                _j("host"),
                _j("pid"),
                _j("source"),
            ],
        ),
    ),
    "events_route_chosen": (
        "route_chosen",
        _view(
            "events_route_chosen",
            "route_chosen",
            [_j("chosen"), _j("reason"), _j("candidates"), _j("estimated_tokens")],
        ),
    ),
    "events_attempt_started": (
        "attempt_started",
        _view(
            "events_attempt_started",
            "attempt_started",
            [_j("attempt"), _j("backend"), _j("model"), _j("params")],
        ),
    ),
    "events_attempt_failed": (
        "attempt_failed",
        _view(
            "events_attempt_failed",
            "attempt_failed",
            [
                _j("attempt"),
                _j("backend"),
                _j("error_type"),
                _j("message"),
                _j("retryable"),
                _j("status_code"),
                _j("latency_ms"),
                _j("error_code"),
                _j("provider_error_type"),
                _j("request_id"),
                _j("retry_after_s"),
                _j("partial_text"),
            ],
        ),
    ),
    "events_retry_scheduled": (
        "retry_scheduled",
        _view(
            "events_retry_scheduled",
            "retry_scheduled",
            [_j("attempt"), _j("delay_s"), _j("error_type")],
        ),
    ),
    "events_fallback_taken": (
        "fallback_taken",
        _view(
            "events_fallback_taken",
            "fallback_taken",
            [_j("from_backend"), _j("to_backend"), _j("reason")],
        ),
    ),
    "events_attempt_succeeded": (
        "attempt_succeeded",
        _view(
            "events_attempt_succeeded",
            "attempt_succeeded",
            [
                _j("attempt"),
                _j("backend"),
                _j("model"),
                _j("text"),
                _j("input_tokens"),
                _j("output_tokens"),
                _j("tokens_estimated"),
                _j("cost"),
                _j("latency_ms"),
                _j("ttft_ms"),
                _j("finish_reason"),
                "(SELECT group_concat(json_extract(c.value, '$.name'), ', ') "
                "FROM json_each(payload, '$.tool_calls') c) AS tool_calls",
                _j("refusal"),
                _j("cached_tokens"),
                _j("cache_write_tokens"),
                _j("reasoning_tokens"),
                _j("response_id"),
                _j("response_model"),
                _j("request_id"),
            ],
        ),
    ),
    "events_call_finished": (
        "call_finished",
        _view(
            "events_call_finished",
            "call_finished",
            [
                _j("status"),
                _j("attempts"),
                _j("backend"),
                _j("model"),
                _j("error_type"),
                _j("error_message"),
                _j("latency_ms"),
            ],
        ),
    ),
}

#: The statements the store runs when it creates its schema.
VIEW_SQL: list[str] = [sql for _type, sql in VIEWS.values()]


def stale_views(conn: sqlite3.Connection) -> list[str]:
    """The views missing from a store, or defined as an older version defined them."""
    have = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'view'"))
    return [
        name
        for name, (_type, sql) in VIEWS.items()
        if have.get(name) != sql.replace("CREATE VIEW IF NOT EXISTS", "CREATE VIEW", 1)
    ]


def ensure_views(conn: sqlite3.Connection) -> list[str]:
    """(Re)create the views that are missing or out of date; returns their names.

    Views hold no data, so a file made by an older version gets the current columns by a
    drop and create, without a store schema change that older versions would refuse.
    """
    stale = stale_views(conn)
    for name in stale:
        conn.execute(f"DROP VIEW IF EXISTS {name}")
        conn.execute(VIEWS[name][1])
    return stale
