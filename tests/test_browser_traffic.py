"""Headless Chromium on a store that looks like real use: recorded provider responses through
the proxy (tool calls, thinking, a refusal, a 429), a 50 KB prompt, hostile text in metadata
keys, tool names and earlier turns, a replay run; at 1400 px and on a phone (390 px)."""

from __future__ import annotations

import base64
import hashlib
import time
import urllib.error
import urllib.request
from urllib.parse import urlparse

import httpx
import pytest

from tests import corpus
from tests.browser_support import (
    chromium,
    fresh_page,
    needs_chromium,
    no_horizontal_scroll,
    page_scrolls_sideways,
    shot,
)
from tests.cli_support import Browse
from tests.proxy_support import OPENAI_KEY, finished_calls

pytestmark = [pytest.mark.browser, needs_chromium]

XSS = "<script>alert('xss')</script>"
IMG = "<img src=x onerror=\"alert('img')\">"
JS_URL = "javascript:alert('link')"
LONG = "The quarterly report says " + "x" * 51_200
#: recorded exchanges sent through the proxy, in this order (each request gets the next)
CASES = (
    "openai_chat/tool_calls",
    "openai_chat/refusal",
    "anthropic/thinking",
    "openai_chat/multi_turn_tool_result",
    "openai_chat/error_429_rate_limit",
    "openai_chat/plain",
    "anthropic/image_base64_request",
)
#: an SVG holding a script, sent as an image: described on the call page, never served
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert("svg")</script></svg>'


def _request(case: corpus.Case) -> dict:
    body = dict(case.request or {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]})
    body["stream"] = case.stream
    return body


def _through_proxy(store) -> dict[str, str]:
    """Each case of CASES through one proxy, then a 50 KB prompt answered by the last."""
    from llm_events.capture.server import ProxySettings, ProxyThread, build_app

    cases = [corpus.case(c) for c in CASES]
    long_body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": LONG}]}
    sent = [(c.path, _request(c)) for c in cases] + [("/v1/chat/completions", long_body)]
    ids: list[str] = []
    with corpus.serve(*cases) as server:
        s = ProxySettings(upstreams={"openai": server.url + "/v1", "anthropic": server.url})
        headers = {"authorization": f"Bearer {OPENAI_KEY}", "x-stainless-retry-count": "0"}
        with ProxyThread(build_app(s, store)) as proxy:
            for path, body in sent:  # one at a time: each call's id is the newest started
                before = set(_started(store))
                httpx.post(proxy.url + path, json=body, headers=headers, timeout=60)
                deadline = time.monotonic() + 60
                while not (new := set(_started(store)) - before):
                    assert time.monotonic() < deadline, f"the proxy did not record {path}"
                    time.sleep(0.05)
                ids.append(new.pop())
    # the 429's call waits for an SDK retry until the proxy stops, then ends as failed
    deadline = time.monotonic() + 60
    while not set(ids) <= set(finished_calls(store, 0)):
        assert time.monotonic() < deadline, "the proxy's calls did not finish"
        time.sleep(0.05)
    return dict(zip([*CASES, "long_via_proxy"], ids, strict=True))


def _started(store) -> list[str]:
    return [s.event.call_id for s in store.iter_events(types=["call_started"])]


#: a replay candidate that fails every call (its calls are replay traffic)
FAILING = "tests.test_browser_traffic:failing_candidate"


def failing_candidate(prompt) -> str:
    raise ConnectionError("candidate unreachable")


def unpriced_answer(prompt) -> str:
    """A client of the user's own (``module:attr``): no price is known for it."""
    return prompt.user.upper()


def _hostile(store) -> str:
    """An echo call with hostile text where people forget to escape: metadata keys, a tool's
    name and description, earlier turns, tool arguments, tags."""
    from llm_events import ContextBuilder, client_from_spec
    from llm_events.recording.recorder import call_options

    builder = ContextBuilder(store=store)
    with call_options(store=store, tags=["hostile", XSS]) as opts:
        prompt = builder.build_prompt(
            f'{XSS} {IMG} <a href="{JS_URL}">click</a> مرحبا 你好 🎉',
            metadata={XSS: IMG, "url": JS_URL},
            tools=[{"name": f"tool{XSS}", "description": IMG, "parameters": {"type": "object"}}],
            history=[
                {
                    "role": "user",
                    "parts": [
                        {"type": "text", "content": f"earlier {XSS}"},
                        {
                            "type": "blob",
                            "mime_type": "image/svg+xml",
                            "content": base64.b64encode(SVG).decode(),
                        },
                    ],
                },
                {
                    "role": "assistant",
                    "parts": [
                        {
                            "type": "tool_call",
                            "id": "c1",
                            "name": f"get{XSS}",
                            "arguments": {"q": XSS},
                        }
                    ],
                },
                {
                    "role": "tool",
                    "parts": [{"type": "tool_call_response", "id": "c1", "response": {XSS: IMG}}],
                },
            ],
        )
        client_from_spec("echo:echo-1").generate(prompt, context_builder=builder)
    return opts.call_ids[0]


def _long_echo(store) -> str:
    from llm_events import ContextBuilder, client_from_spec
    from llm_events.recording.recorder import call_options

    builder = ContextBuilder(store=store)
    with call_options(store=store) as opts:
        client_from_spec("echo:echo-1").generate(
            builder.build_prompt(LONG), context_builder=builder
        )
    return opts.call_ids[0]


def _late_retry(store) -> str:
    """A call whose second attempt started at the very end: the SDK slept 27 s (Retry-After)
    between the two, so that attempt's bar sits at the right edge of the timeline."""
    from llm_events.log import events as ev

    t0 = time.time() - 60
    cid, pid = ev.new_id(), ev.new_id()

    def at(ms: float) -> str:
        return ev.now_iso(t0 + ms / 1000)

    common = {"call_id": cid}
    store.append(
        [
            ev.PromptBuilt(id=pid, ts=at(0), prompt_id=pid, user="late retry", origin="test"),
            ev.CallStarted(
                id=ev.new_id(), ts=at(0), prompt_id=pid, client="proxy:openai", **common
            ),
            ev.AttemptStarted(
                id=ev.new_id(), ts=at(1), attempt=1, backend="openai", model="m", **common
            ),
            ev.AttemptFailed(
                id=ev.new_id(),
                ts=at(5),
                attempt=1,
                backend="openai",
                error_type="RateLimitError",
                message="slow down",
                retryable=True,
                status_code=429,
                latency_ms=4.0,
                retry_after_s=27.0,
                **common,
            ),
            ev.AttemptStarted(
                id=ev.new_id(), ts=at(27_010), attempt=2, backend="openai", model="m", **common
            ),
            ev.AttemptSucceeded(
                id=ev.new_id(),
                ts=at(27_012),
                attempt=2,
                backend="openai",
                model="m",
                text="ok",
                latency_ms=2.0,
                **common,
            ),
            ev.CallFinished(
                id=ev.new_id(),
                ts=at(27_012),
                status="ok",
                attempts=2,
                backend="openai",
                model="m",
                latency_ms=27_012.0,
                **common,
            ),
        ]
    )
    return cid


@pytest.fixture(scope="module")
def traffic(tmp_path_factory):
    import replay
    from llm_events import EventStore
    from llm_events.cli.demo_session import run_demo

    path = tmp_path_factory.mktemp("traffic") / "traffic.db"
    store = EventStore(path)
    try:
        demo = run_demo(store, retry_delay=0.0)
        ids = _through_proxy(store)
        ids["hostile"] = _hostile(store)
        ids["long_echo"] = _long_echo(store)
        ids["late_retry"] = _late_retry(store)
        ids["failed_demo"] = demo.failed_call_id
        store.flush()
        run = replay.run(store, "echo", select={"tags": ["demo"], "limit": 3}, batch=False)
        ids["replay"] = run.replay_id
        failing = replay.run(store, FAILING, select={"tags": ["demo"], "limit": 2}, batch=False)
        ids["failing_replay"] = failing.replay_id
    finally:
        store.close()
    browse = Browse(path).wait()
    yield browse, ids
    browse.stop()


@pytest.fixture(scope="module")
def browser():
    yield from chromium()


@pytest.fixture
def page(browser):
    yield from fresh_page(browser, trap=True)


@pytest.fixture
def phone(browser):
    yield from fresh_page(browser, width=390, height=844, trap=True)


def _open(pg, url: str) -> None:
    pg.goto(url)
    pg.wait_for_load_state("load")
    pg.locator("footer").first.wait_for(state="attached")


def test_call_pages_read_on_a_phone(traffic, phone, tmp_path):
    browse, ids = traffic
    for name in (
        "openai_chat/tool_calls",
        "openai_chat/error_429_rate_limit",
        "hostile",
        "long_echo",
        "late_retry",
        "failed_demo",
    ):
        _open(phone, f"{browse.base}/-/calls/{ids[name]}")
        assert phone.locator("h1").inner_text().startswith("Call"), name
        assert page_scrolls_sideways(phone) == 0, name
        # the facts two by two, each readable (not six squeezed columns)
        boxes = phone.evaluate(
            "() => [...document.querySelectorAll('.le-facts > *')].map(e => {"
            " const r = e.getBoundingClientRect(); return [Math.round(r.top), r.width]; })"
        )
        assert boxes[0][0] == boxes[1][0] < boxes[2][0], (name, boxes)
        assert min(w for _, w in boxes) > 130, (name, boxes)
        # conversation and answer one under the other
        cards = phone.locator(".le-two > section.le-card")
        assert cards.nth(0).bounding_box()["y"] < cards.nth(1).bounding_box()["y"], name
        assert phone.problems == [], (name, phone.problems)  # type: ignore[attr-defined]
    shot(phone, tmp_path, "call-page-phone")


def test_replay_page_and_dashboard_read_on_a_phone(traffic, phone, tmp_path):
    browse, ids = traffic
    _open(phone, f"{browse.base}/-/replays/{ids['replay']}")
    assert phone.locator("section.le-result").count() == 3
    assert page_scrolls_sideways(phone) == 0
    sides = phone.locator("section.le-result").first.locator(".le-side")
    assert sides.nth(0).bounding_box()["y"] < sides.nth(1).bounding_box()["y"]  # stacked
    _open(phone, f"{browse.base}/-/dashboard")
    phone.locator(".le-chart canvas").nth(4).wait_for()
    assert page_scrolls_sideways(phone) == 0
    lefts = phone.evaluate(
        "() => [...document.querySelectorAll('.le-charts > section')].map(e => e.getBoundingClientRect().left)"
    )
    assert len(set(lefts)) == 1, lefts  # one chart a row
    assert phone.problems == [], phone.problems  # type: ignore[attr-defined]
    shot(phone, tmp_path, "dashboard-phone")


@pytest.mark.parametrize("name", ["long_echo", "long_via_proxy"])
def test_a_50kb_prompt_and_answer_fold(traffic, page, name):
    browse, ids = traffic
    _open(page, f"{browse.base}/-/calls/{ids[name]}")
    height = page.evaluate("() => document.documentElement.scrollHeight")
    assert height < 4000, height  # not 30,000 px of one answer and one event row
    conversation = page.locator("section.le-card", has_text="Conversation")
    assert "show all 51,226 characters" in conversation.inner_text()
    if name == "long_echo":  # echo answers with the prompt: the answer folds as well
        answer = page.locator("details.le-answer-fold")
        assert "show all 51,226 characters" in answer.locator("summary").inner_text()
        full = answer.locator("div.le-text")
        assert not full.is_visible()
        answer.locator("summary").click()
        assert full.is_visible() and len(full.inner_text()) == len(LONG)
    details = page.locator("table.le-events td.le-detail").all_inner_texts()
    assert details and max(len(d) for d in details) <= 301, [len(d) for d in details]
    assert page.problems == []  # type: ignore[attr-defined]


def test_a_proxy_calls_request_reads_as_json_and_folds(traffic, page):
    browse, ids = traffic
    _open(page, f"{browse.base}/-/calls/{ids['long_via_proxy']}")
    params = page.locator("li.le-attempt .le-params")
    text = params.inner_text()
    assert 'http={"method": "POST", "path": "/v1/chat/completions"' in text
    assert "{'" not in text  # not Python's repr
    body = params.locator("details", has_text="body=")
    assert body.count() == 1 and not body.locator("pre").is_visible()  # 50 KB folded
    line = body.locator("summary").inner_text()
    assert line.startswith('body={"model": "gpt-4o-mini"') and len(line) < 100
    body.locator("summary").click()
    assert '"role": "user"' in body.locator("pre").inner_text()


def test_a_retry_after_and_a_late_attempt_show(traffic, page):
    browse, ids = traffic
    _open(page, f"{browse.base}/-/calls/{ids['late_retry']}")
    first, second = page.locator("li.le-attempt").all()
    assert "the provider asked to retry after 27.0 s" in first.inner_text()
    track = second.locator(".le-att-bar").bounding_box()
    bar = second.locator(".le-bar").bounding_box()
    assert (
        bar["width"] > 0
        and track["x"] <= bar["x"]
        and bar["x"] + bar["width"] <= track["x"] + track["width"] + 0.5
    )
    assert bar["x"] > track["x"] + track["width"] * 0.9  # at the end, where it started
    # a recorded 429 through the proxy says when the provider asked to come back
    _open(page, f"{browse.base}/-/calls/{ids['openai_chat/error_429_rate_limit']}")
    assert "retry after 27" in page.locator("li.le-attempt").first.inner_text()


def _links(pg, base: str) -> set[str]:
    hrefs = pg.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => a.href)")
    host = urlparse(base).netloc
    return {h.split("#")[0] for h in hrefs if urlparse(h).netloc == host and "_facet" not in h}


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_every_link_of_every_page_answers(traffic, page):
    """Every call id links to a call page that exists (a replay run's own events link to the
    run's page), every table, query and back link answers: no 404, no 500."""
    browse, ids = traffic
    db = browse.db.stem
    pages = [
        "/",
        f"/{db}",
        f"/{db}/calls",
        f"/{db}/events",
        f"/{db}/events?type=replay_compared",
        f"/{db}/prompts",
        f"/{db}/tool_calls",
        f"/{db}/replays",
        f"/{db}/replay_results",
        f"/{db}/failed_calls",
        "/-/dashboard",
        f"/-/replays/{ids['replay']}",
        *(f"/-/calls/{ids[n]}" for n in ("openai_chat/tool_calls", "hostile", "failed_demo")),
    ]
    links: dict[str, str] = {}
    for path in pages:
        _open(page, browse.base + path)
        for link in _links(page, browse.base):
            links.setdefault(link, path)
    replay_links = [u for u in links if f"/-/replays/{ids['replay']}" in u]
    assert replay_links, "the replay run is linked"
    bad = [(s, u, links[u]) for u in sorted(links) if (s := _status(u)) >= 400]
    assert bad == [], bad
    assert page.problems == []  # type: ignore[attr-defined]


def test_hostile_text_shows_as_text_and_never_runs(traffic, page):
    browse, ids = traffic
    db = browse.db.stem
    for path in (
        f"/-/calls/{ids['hostile']}",
        f"/{db}/calls",
        f"/{db}/prompts",
        f"/{db}/events",
        f"/{db}/events_prompt_built",
        f"/{db}/call_timeline?call_id={ids['hostile']}",
        f"/{db}/search_answers?q=click",
        "/-/dashboard",
    ):
        _open(page, browse.base + path)
        assert page.evaluate("() => window.__ran") == [], path
        hrefs = page.evaluate(
            "() => [...document.querySelectorAll('[href]')].map(a => a.getAttribute('href'))"
        )
        assert not [h for h in hrefs if h.strip().lower().startswith("javascript:")], path
        assert (
            page.evaluate(
                "() => document.querySelectorAll('td img, .le-card img, td script, .le-card script').length"
            )
            == 0
        ), path
        if path != "/-/dashboard":
            assert XSS in page.evaluate("() => document.body.textContent"), path
    _open(page, f"{browse.base}/-/calls/{ids['hostile']}")
    text = page.locator("section.content").inner_text()
    for shown in (f"tool call get{XSS}", f"earlier {XSS}", IMG, "مرحبا 你好"):
        assert shown in text, shown
    assert page.dialogs == []  # type: ignore[attr-defined]
    assert page.problems == []  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def unpriced(tmp_path_factory):
    """A store of calls no price is known for, and an empty store."""
    from llm_events import ContextBuilder, EventStore, client_from_spec
    from llm_events.recording.recorder import call_options

    base = tmp_path_factory.mktemp("unpriced")
    store = EventStore(base / "echoes.db")
    try:
        builder = ContextBuilder(store=store)
        with call_options(store=store):
            for text in ("one", "two", "three"):
                prompt = builder.build_prompt(text)
                client = client_from_spec("tests.test_browser_traffic:unpriced_answer")
                client.generate(prompt, context_builder=builder)
    finally:
        store.close()
    EventStore(base / "nothing.db").close()
    servers = [Browse(base / "echoes.db"), Browse(base / "nothing.db")]
    yield [s.wait() for s in servers]
    for s in servers:
        s.stop()


def test_dashboard_of_a_store_without_prices_or_calls(unpriced, page):
    echoes, nothing = unpriced
    _open(page, f"{echoes.base}/-/dashboard")
    cost = page.locator(".le-facts > div", has_text="Cost").inner_text()
    assert "–" in cost and "price unknown" in cost and "$0" not in cost
    chart = page.locator("section.le-card", has_text="Cost per day")
    assert "No cost recorded" in chart.inner_text() and chart.locator("canvas").count() == 0
    page.locator(".le-chart canvas").nth(3).wait_for()  # the other four charts are drawn
    assert page.locator(".le-chart canvas").count() == 4
    per_model = page.locator("section.le-card", has_text="Per model").locator("tbody tr").first
    assert per_model.locator("td").last.inner_text() == "–"
    resp = page.goto(f"{nothing.base}/-/dashboard")
    assert resp.status == 200
    assert "No calls in this period." in page.locator("section.content").inner_text()
    assert page.problems == []  # type: ignore[attr-defined]


def test_unknown_ids_answer_404_with_a_clear_message(traffic, page):
    browse, _ids = traffic
    for path, says in (
        ("/-/calls/0000dead", "no call with id '0000dead'"),
        ("/-/replays/0000dead", "no replay run with id '0000dead'"),
    ):
        resp = page.goto(browse.base + path)
        assert resp.status == 404
        assert says in page.locator("body").inner_text()


def test_json_cells_stay_one_line(traffic, page):
    """A raw provider request in a table cell is one capped line, not a page of JSON."""
    browse, _ids = traffic
    _open(page, f"{browse.base}/{browse.db.stem}/events_attempt_started")
    heights = page.evaluate(
        "() => [...document.querySelectorAll('table.rows-and-columns tbody td')].map(t => t.getBoundingClientRect().height)"
    )
    assert heights and max(heights) < 60, max(heights)


def test_canned_queries_leave_replay_calls_out_and_fit_1400px(traffic, page):
    """Real model names and provider error messages still fit one screen; a replay that
    failed every call does not fill "Failed calls" (its run's page lists them)."""
    browse, ids = traffic
    db = browse.db.stem
    for query in (
        "failed_calls",
        "retried_calls",
        "fallback_calls",
        "slowest_calls",
        "cost_per_model_per_day",
        f"replay_regressions?replay_id={ids['replay']}",
    ):
        _open(page, f"{browse.base}/{db}/{query}")
        no_horizontal_scroll(page)
        table = page.locator("table.rows-and-columns")
        assert table.count() == 1, query
        if not query.startswith(("replay_", "cost_")):  # (replays cost money: counted)
            assert FAILING not in table.inner_text(), query
    _open(page, f"{browse.base}/{db}/failed_calls")
    shown = page.locator("td.col-call_id a").evaluate_all("els => els.map(a => a.title)")
    assert ids["failed_demo"] in shown and ids["openai_chat/error_429_rate_limit"] in shown
    _open(page, f"{browse.base}/-/replays/{ids['failing_replay']}")
    assert "candidate unreachable" in page.locator("section.le-result").first.inner_text()
    _open(page, f"{browse.base}/{db}/replay_regressions?replay_id={ids['replay']}")
    scores = page.locator("td.col-score").all_inner_texts()
    assert scores and all(len(t) == 4 and t[1] == "." for t in scores if t.strip()), scores


def test_a_sent_image_shows_inline_and_an_svg_never(traffic, page):
    """The image a request sent (stored once by sha256) is drawn on the call page from the
    store, with no network; an SVG (which can hold a script) is only described."""
    browse, ids = traffic
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    _open(page, f"{browse.base}/-/calls/{ids['anthropic/image_base64_request']}")
    image = page.locator("section.le-card", has_text="Conversation").locator("img.le-image")
    assert image.count() == 1
    page.wait_for_function("() => document.querySelector('img.le-image').complete")
    assert image.evaluate("i => i.naturalWidth") > 0  # the bytes were served and decoded
    assert "image (image/png" in page.locator(".le-attachment").first.inner_text()
    assert all(u.startswith(browse.base) for u in requests), requests
    with urllib.request.urlopen(browse.base + image.get_attribute("src"), timeout=60) as r:
        headers = r.headers
    assert headers["Content-Type"] == "image/png"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    _open(page, f"{browse.base}/-/calls/{ids['hostile']}")
    assert page.locator("img").count() == 0
    assert "image (image/svg+xml" in page.locator(".le-attachment").first.inner_text()
    svg = hashlib.sha256(SVG).hexdigest()
    assert _status(f"{browse.base}/-/blobs/{svg}") == 404
    assert _status(f"{browse.base}/-/blobs/{'0' * 64}") == 404
    assert page.evaluate("() => window.__ran") == []
    assert page.problems == []  # type: ignore[attr-defined]
