"""Datasette plugin (loaded by ``llm-events browse``): the pages of our own and readable tables.

- ``/-/calls/{call_id}``: one call (a unique prefix of the id works too);
- ``/-/replays/{replay_id}``: one replay run, its verdicts and answers side by side;
- ``/-/dashboard``: calls, errors, latency, tokens and cost per day and model;
- ``/-/blobs/{sha256}``: an image a conversation sent (PNG, JPEG, GIF, WebP only), for the
  call page;
- the ``calls`` table opens on the columns a person scans first (``_col=``; every column is
  one click away), and a search of ``prompts`` opens the ranked, highlighted canned query.

The pages read through Datasette's read-only connection (``execute_fn``); what they show
is computed by :mod:`llm_events.browse.call_page`, :mod:`~llm_events.browse.replay_page` and
:mod:`~llm_events.browse.dashboard`; templates and assets ship in the package.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode

from datasette import hookimpl
from datasette.utils.asgi import NotFound, Response

from llm_events.browse import call_page as calls
from llm_events.browse import dashboard as dash
from llm_events.browse import render as fmt
from llm_events.browse import replay_page as replays
from llm_events.cli.timeline import describe
from llm_events.log.queries import QueryError
from llm_events.log.schema import SPARSE_TYPES
from llm_events.log.views import VIEWS

#: What ``calls`` shows first (its primary key, call_id, always comes first).
CALLS_COLUMNS = (
    "started_at",
    "status",
    "model",
    "prompt_preview",
    "response_preview",
    "latency_ms",
    "cost",
    "attempts",
    "tags",
)

#: What ``prompts`` shows first: ``prompt`` repeats ``text`` (the seed's column), the raw
#: completion and the vector scores are for the row page.
PROMPTS_COLUMNS = (
    "timestamp",
    "model",
    "text",
    "response_text",
    "latency_ms",
    "cost",
    "call_id",
)

#: Tables that open on a few columns (every column: "View and edit SQL", or ``?_nocol=``).
DEFAULT_COLUMNS = {
    "calls": CALLS_COLUMNS,
    "prompts": PROMPTS_COLUMNS,
    "events": ("type", "call_id", "ts", "payload"),
    "replays": (
        "started_at",
        "status",
        "against",
        "compare",
        "total",
        "same",
        "changed",
        "error",
        "skipped",
    ),
    "replay_results": (
        "replay_id",
        "verdict",
        "score",
        "reason",
        "source_call_id",
        "replay_call_id",
        "ts",
    ),
}
#: The ``events_<type>`` views of the types every call writes: no index finds their rows, so
#: counting them reads the whole log (0.3 s warm, seconds cold, on 1M events).  They open
#: uncounted (``_nocount=1``); ``?_count=1`` asks for the count.
UNCOUNTED_VIEWS = frozenset(
    name for name, (type_, _sql) in VIEWS.items() if type_ not in SPARSE_TYPES
)

_STATIC = "llm-events"


def _db(datasette: Any) -> Any:
    return datasette.get_database()


#: An event's one-line description on the call page is cut here (a 50 KB prompt is in
#: the conversation, folded; the events table lists what happened).
DETAIL_CHARS = 300


def _cut(text: str) -> str:
    return text if len(text) <= DETAIL_CHARS else text[:DETAIL_CHARS] + "…"


async def _render(datasette: Any, request: Any, template: str, context: dict[str, Any]) -> Any:
    db = _db(datasette)
    context = {
        **context,
        "db_name": db.name,
        "db_url": datasette.urls.database(db.name),
        "base": datasette.setting("base_url") or "/",
        "fmt": fmt,
        "describe": lambda e: _cut(describe(e)[1]),
        "static": f"{datasette.setting('base_url') or '/'}{_STATIC}/",
    }
    html = await datasette.render_template(template, context, request=request)
    return Response.html(html)


async def call_view(datasette: Any, request: Any) -> Any:
    prefix = request.url_vars["call_id"]
    db = _db(datasette)

    def read(conn: Any) -> dict[str, Any]:
        return calls.call_page(conn, calls.find_call(conn, prefix))

    try:
        data = await db.execute_fn(read)
    except QueryError as e:
        raise NotFound(str(e)) from None
    if data["call"]["call_id"] != prefix:
        return Response.redirect(
            f"{datasette.setting('base_url') or '/'}-/calls/{data['call']['call_id']}"
        )
    return await _render(datasette, request, "llm_events_call.html", data)


async def replay_view(datasette: Any, request: Any) -> Any:
    prefix = request.url_vars["replay_id"]
    verdict = request.args.get("verdict")
    try:
        offset = max(0, int(request.args.get("offset") or 0))
    except ValueError:
        offset = 0
    db = _db(datasette)

    def read(conn: Any) -> dict[str, Any]:
        return replays.replay_page(conn, replays.find_replay(conn, prefix), verdict, offset)

    try:
        data = await db.execute_fn(read)
    except QueryError as e:
        raise NotFound(str(e)) from None
    return await _render(datasette, request, "llm_events_replay.html", data)


#: An image from the store is sent as exactly its type, never sniffed, never able to run
#: anything, even opened on its own.
IMAGE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cache-Control": "private, max-age=86400",
}


async def blob_view(datasette: Any, request: Any) -> Any:
    sha256 = request.url_vars["sha256"]
    found = await _db(datasette).execute_fn(lambda conn: calls.stored_image(conn, sha256))
    if found is None:
        raise NotFound(f"no stored image with sha256 {sha256}")
    mime, data = found
    return Response(data, content_type=mime, headers=dict(IMAGE_HEADERS))


def _int_arg(request: Any, name: str, default: int) -> int:
    try:
        return max(0, int(request.args.get(name) or default))
    except ValueError:
        return default


async def dashboard_view(datasette: Any, request: Any) -> Any:
    days = _int_arg(request, "days", 30)
    include = request.args.get("replays") == "1"
    db = _db(datasette)
    data = await db.execute_fn(
        lambda conn: dash.dashboard(conn, days=days, include_replays=include, key=db.path)
    )
    return await _render(
        datasette,
        request,
        "llm_events_dashboard.html",
        {"d": data, "period": days, "include_replays": include},
    )


@hookimpl
def register_routes(datasette: Any) -> list[tuple[str, Any]]:
    return [
        (r"^/-/calls/(?P<call_id>[0-9a-zA-Z_-]+)$", call_view),
        (r"^/-/replays/(?P<replay_id>[0-9a-zA-Z_-]+)$", replay_view),
        (r"^/-/dashboard$", dashboard_view),
        (r"^/-/blobs/(?P<sha256>[0-9a-f]{64})$", blob_view),
    ]


def redirect_for(path: str, query: str, databases: set[str]) -> str | None:
    """Where a table page opens instead: ``calls`` on its readable columns, a ``prompts``
    search on the ranked, highlighted ``search_answers`` query, a view of a dense event type
    uncounted; ``None``: as asked."""
    parts = path.strip("/").split("/")
    if len(parts) != 2 or parts[0] not in databases:
        return None
    db, table = parts
    args = parse_qsl(query, keep_blank_values=True)
    names = {k for k, _ in args}
    if table == "prompts" and "_search" in names and not names & {"_sort", "_sort_desc"}:
        q = next(v for k, v in args if k == "_search")
        return f"/{db}/search_answers?" + urlencode({"q": q})
    columns = DEFAULT_COLUMNS.get(table)
    if columns and not names & {"_col", "_nocol", "_search"}:
        return f"/{db}/{table}?" + urlencode([*args, *(("_col", c) for c in columns)])
    if table in UNCOUNTED_VIEWS and not names & {"_nocount", "_count"}:
        return f"/{db}/{table}?" + urlencode([*args, ("_nocount", "1")])
    return None


@hookimpl
def asgi_wrapper(datasette: Any) -> Any:
    def wrap(app: Any) -> Any:
        async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope.get("type") == "http" and scope.get("method") == "GET":
                target = redirect_for(
                    scope.get("path", ""),
                    scope.get("query_string", b"").decode("latin-1"),
                    set(datasette.databases),
                )
                if target is not None:
                    base = (datasette.setting("base_url") or "/").rstrip("/")
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 302,
                            "headers": [(b"location", (base + target).encode("latin-1"))],
                        }
                    )
                    await send({"type": "http.response.body", "body": b""})
                    return
            await app(scope, receive, send)

        return wrapped

    return wrap


@hookimpl
def extra_css_urls(datasette: Any) -> list[str]:
    return [f"{datasette.setting('base_url') or '/'}{_STATIC}/llm-events.css"]


@hookimpl
def menu_links(datasette: Any) -> list[dict[str, str]]:
    base = datasette.setting("base_url") or "/"
    return [{"href": f"{base}-/dashboard", "label": "llm-events dashboard"}]
