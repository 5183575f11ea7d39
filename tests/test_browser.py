"""A real browser (headless Chromium) on ``llm-events browse``: the path a new user takes to find
failed calls and fallbacks, and a prompt holding a script tag that must never run."""

from __future__ import annotations

import pytest

from tests.browser_support import (
    card,
    chromium,
    fresh_page,
    needs_chromium,
    no_horizontal_scroll,
    shot,
)
from tests.cli_support import XSS, Browse, make_sample_store

pytestmark = [pytest.mark.browser, needs_chromium]

DB = "events"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    sample = make_sample_store(tmp_path_factory.mktemp("browser") / f"{DB}.db", rich=True)
    browse = Browse(sample.path).wait()
    yield browse, sample
    browse.stop()


@pytest.fixture(scope="module")
def browser():
    yield from chromium()


@pytest.fixture
def page(browser):
    yield from fresh_page(browser)


def test_calls_table_reads_at_1400px_and_a_failed_call_is_one_click_away(server, page, tmp_path):
    browse, sample = server
    page.goto(f"{browse.base}/{DB}/calls")
    assert "calls" in page.title()
    rows = page.locator("table.rows-and-columns tbody tr")
    assert rows.count() == 14
    headers = page.locator("table.rows-and-columns th").all_inner_texts()
    assert [h.replace("\xa0", " ").strip() for h in headers[:6]] == [
        "call_id",
        "started_at ▲",
        "status",
        "model",
        "prompt_preview",
        "response_preview",
    ]
    no_horizontal_scroll(page)
    # one line a row: ids and times never wrap
    heights = page.evaluate(
        "() => [...document.querySelectorAll('table.rows-and-columns tbody tr')]"
        ".map(r => r.getBoundingClientRect().height)"
    )
    assert max(heights) < 40, heights
    # replay calls are marked
    assert page.locator("tbody .le-badge.le-replay").count() == len(sample.replay_call_ids)
    shot(page, tmp_path, "calls", full_page=False)
    # the status facet, as a user clicks it
    page.locator(".facet-info[data-column=status] a", has_text="error").first.click()
    page.wait_for_url("**status=error**")
    assert rows.count() == 1
    # a call id -> the call's page
    rows.first.locator("a.le-id").first.click()
    page.wait_for_url(f"**/-/calls/{sample.failed_call_id}")
    text = page.locator("section.content").inner_text()
    assert "ContentRefused" in text and "fallback to" in text
    assert "failed; last tried" in text  # not "answered by" for a failed call


def test_call_page_of_a_retried_then_fallen_back_call(server, page, tmp_path):
    browse, sample = server
    # a unique prefix of the id is enough: it redirects to the full id
    page.goto(f"{browse.base}/-/calls/{sample.agent_call_id[:18]}")
    page.wait_for_url(f"**/-/calls/{sample.agent_call_id}")
    attempts = page.locator("li.le-attempt")
    assert attempts.count() == 3
    first, second, third = (attempts.nth(i).inner_text() for i in range(3))
    assert "remote-sim / large-2025" in first and "RateLimited" in first
    assert "HTTP 429" in first and "rate_limit_exceeded" in first and "118ms" in first
    assert "ServiceUnavailable" in second and "HTTP 503" in second
    assert "answered" in third and XSS in third  # the model's name, as text
    between = page.locator("li.le-between").all_inner_texts()
    assert between == ["↻ retry after 0.25 s", "⤵ fallback to local-sim (ServiceUnavailable)"]
    # latency bars: each starts where its attempt started, failed ones red
    bars = page.evaluate(
        "() => [...document.querySelectorAll('.le-bar')].map(b => "
        "[b.getBoundingClientRect().left, b.getBoundingClientRect().width])"
    )
    assert bars[0][0] < bars[1][0] < bars[2][0] and bars[2][1] > bars[0][1]
    conversation = card(page, "Conversation").inner_text()
    for text in ("You book trips", "What is the weather in Paris?", "get_weather", '"temp_c": 18'):
        assert text in conversation
    answer = card(page, "Answer")
    assert "18 °C and clear in Paris" in answer.inner_text()
    thinking = answer.locator("details.le-thinking")
    assert not thinking.locator(".le-text").is_visible()  # folded until asked
    thinking.locator("summary").click()
    assert "The tool said 18 C" in thinking.inner_text()
    facts = page.locator(".le-facts").inner_text()
    assert "212 / 31" in facts and "128 cached" in facts and "req_local_3" in facts
    assert "pid 4242" in facts
    assert page.locator(".le-tags .le-chip").all_inner_texts() == ["agent", XSS]
    assert page.locator("table.le-events tbody tr").count() == 11
    no_horizontal_scroll(page)
    shot(page, tmp_path, "call-page")


def test_call_page_lists_the_replays_of_a_call(server, page):
    browse, sample = server
    page.goto(f"{browse.base}/-/calls/{sample.replay_call_ids[0]}")
    note = page.locator(".le-note").inner_text()
    assert "Replay of" in note and "changed" in note
    page.locator(".le-note a").first.click()  # the recorded call
    replays = card(page, "Replays of this call")
    assert sample.replay_id[:18] in replays.inner_text()
    assert "echo" in replays.inner_text() and "changed" in replays.inner_text()


def test_replay_page_shows_counts_and_word_diffs(server, page, tmp_path):
    browse, sample = server
    page.goto(f"{browse.base}/-/replays/{sample.replay_id[:13]}")
    counts = page.locator(".le-verdicts").inner_text()
    assert "CHANGED OR FAILED\n3" in counts.upper()
    results = page.locator("section.le-result")
    assert results.count() == 3
    first = results.first
    assert first.locator(".le-prompt").inner_text().startswith("PROMPT")
    # recorded and new side by side, with the words that differ marked
    assert first.locator(".le-side").count() == 2
    assert first.locator("del").count() >= 1 and first.locator("ins").count() >= 1
    assert "[large]" in first.locator(".le-side").first.inner_text() or "[small]" in (
        first.locator(".le-side").first.inner_text()
    )
    no_horizontal_scroll(page)
    shot(page, tmp_path, "replay-page", full_page=False)
    page.locator(".le-verdicts a", has_text="same").click()
    page.wait_for_url("**verdict=same**")
    assert results.count() == 0
    assert "No same answers" in page.locator("section.content").inner_text()


def test_dashboard_draws_its_charts_offline(server, page, tmp_path):
    browse, sample = server
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(f"{browse.base}/{DB}")
    page.get_by_role("link", name="Dashboard").first.click()
    page.wait_for_url("**/-/dashboard")
    page.wait_for_load_state("load")
    assert page.locator(".le-chart canvas").count() == 5  # uPlot drew every chart
    facts = page.locator(".le-facts").inner_text()
    assert "CALLS\n11" in facts.upper()  # application calls only: the replay's are left out
    assert "most calls: " in facts  # the busiest model, said as such
    assert (
        sample.failed_call_id[:18]
        in page.locator("section.le-card", has_text="Newest failures").inner_text()
    )
    assert all(u.startswith(browse.base) for u in requests), requests  # no network
    no_horizontal_scroll(page)
    shot(page, tmp_path, "dashboard")
    page.get_by_role("link", name="include replay calls").click()
    page.wait_for_url("**replays=1**")
    page.wait_for_load_state("load")
    assert "CALLS\n14" in page.locator(".le-facts").inner_text().upper()


def test_tables_and_queries_fit_1400px(server, page):
    """The tables people open first and every canned query, without sideways scrolling
    (the events_<type> views, one column per field, are wider by nature)."""
    browse, sample = server
    for path in (
        f"/{DB}/calls",
        f"/{DB}/prompts",
        f"/{DB}/events",
        f"/{DB}/replays",
        f"/{DB}/replay_results",
        f"/{DB}/failed_calls",
        f"/{DB}/retried_calls",
        f"/{DB}/fallback_calls",
        f"/{DB}/slowest_calls",
        f"/{DB}/cost_per_model_per_day",
        f"/{DB}/call_timeline?call_id={sample.agent_call_id}",
        f"/{DB}/replay_regressions?replay_id={sample.replay_id}",
        f"/{DB}/search_answers?q=refund",
    ):
        page.goto(browse.base + path)
        page.wait_for_load_state("load")
        assert page.locator("table.rows-and-columns tbody tr").count() > 0, path
        no_horizontal_scroll(page)


def test_fallbacks_are_one_query_away(server, page):
    browse, sample = server
    page.goto(f"{browse.base}/{DB}")
    page.get_by_role("link", name="Calls that fell back").click()
    page.wait_for_url("**/fallback_calls**")
    text = page.locator("table.rows-and-columns").inner_text()
    assert sample.fallback_call_id[:18] in text
    assert "remote-sim:large-2025 -> local-sim:small-q4" in text
    assert not page.locator("pre#sql-query").is_visible()  # SQL on demand only
    assert page.locator(".show-hide-sql a").inner_text() == "show"


def test_a_script_shows_as_text_and_never_runs(server, page, tmp_path):
    """In a prompt, a tool argument, a model name and a tag, on every page."""
    browse, sample = server
    for path in (
        f"/{DB}/prompts",
        f"/{DB}/calls",
        f"/{DB}/calls?_nocol=last_seq",
        f"/{DB}/events_prompt_built",
        f"/{DB}/events",
        f"/{DB}/call_timeline?call_id={sample.xss_call_id}",
        f"/{DB}/prompts?_search=pricing",
        f"/-/calls/{sample.xss_call_id}",
        f"/-/calls/{sample.agent_call_id}",
        f"/-/replays/{sample.replay_id}",
        "/-/dashboard",
        f"/{DB}/replay_regressions?replay_id={sample.replay_id}",
    ):
        page.goto(browse.base + path)
        page.wait_for_load_state("load")
        assert (
            page.evaluate("() => document.querySelectorAll('section.content script').length") <= 3
        ), path
        assert (
            page.evaluate("() => document.querySelectorAll('td script, .le-card script').length")
            == 0
        )
        if "replay" not in path and "dashboard" not in path:
            # as text (folded JSON cells hold it too: textContent counts them)
            assert XSS in page.evaluate("() => document.body.textContent"), path
    # on the dashboard the script tag is a model name in a chart legend and the table
    page.goto(f"{browse.base}/-/dashboard")
    assert XSS in page.locator("body").inner_text()
    assert page.dialogs == []  # type: ignore[attr-defined]


def test_rows_come_first_and_column_notes_fold(server, page):
    browse, _sample = server
    page.goto(f"{browse.base}/{DB}/calls")
    folded = page.locator("details.column-descriptions-folded")
    assert folded.count() == 1
    assert folded.locator("summary").inner_text() == "What the 28 columns mean"
    assert not page.locator("dl.column-descriptions").is_visible()  # closed until asked
    # the first row is on the first screen (900 px), not below a page of descriptions
    first_row = page.locator("table.rows-and-columns tbody tr").first.bounding_box()
    assert first_row is not None and first_row["y"] < 900
    status = page.locator("th[data-column=status]").get_attribute("title")
    assert status is not None and status.startswith("ok (answered)")
    folded.locator("summary").click()
    assert page.locator("dl.column-descriptions").is_visible()
