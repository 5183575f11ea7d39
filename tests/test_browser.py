"""A real browser (headless Chromium) on ``llm-events browse``: the path a new user takes to find
failed calls and fallbacks, and a prompt holding a script tag that must never run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_support import XSS, Browse, make_sample_store

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"
    ),
]

DB = "events"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    sample = make_sample_store(tmp_path_factory.mktemp("browser") / f"{DB}.db")
    browse = Browse(sample.path).wait()
    yield browse, sample
    browse.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright  # a test dependency: missing is a failure

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    dialogs: list[str] = []
    pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    pg.dialogs = dialogs  # type: ignore[attr-defined]
    yield pg
    context.close()


def test_calls_table_facet_and_a_failed_calls_timeline(server, page, tmp_path):
    browse, sample = server
    page.goto(f"{browse.base}/{DB}/calls")
    assert "calls" in page.title()
    assert page.locator("table.rows-and-columns tbody tr").count() == 10
    # the status facet, as a user clicks it
    facet = page.locator(".facet-info[data-column=status] a", has_text="error")
    facet.first.click()
    page.wait_for_url("**status=error**")
    rows = page.locator("table.rows-and-columns tbody tr")
    assert rows.count() == 1
    assert sample.failed_call_id in rows.first.inner_text()
    # failed calls -> one click -> the call's timeline
    page.goto(f"{browse.base}/{DB}/failed_calls")
    page.locator(f"a[href*='call_timeline?call_id={sample.failed_call_id}']").first.click()
    page.wait_for_url("**call_timeline?call_id=**")
    text = page.locator("table.rows-and-columns").inner_text()
    for event_type in ("prompt_built", "attempt_failed", "fallback_taken", "call_finished"):
        assert event_type in text
    assert "ContentRefused" in text
    page.screenshot(path=str(tmp_path / "timeline.png"), full_page=True)
    assert (tmp_path / "timeline.png").stat().st_size > 10_000


def test_fallbacks_are_one_query_away(server, page):
    browse, sample = server
    page.goto(f"{browse.base}/{DB}")
    page.get_by_role("link", name="Calls that fell back").click()
    page.wait_for_url("**/fallback_calls**")
    text = page.locator("table.rows-and-columns").inner_text()
    assert sample.fallback_call_id in text
    assert "remote-sim:large-2025 -> local-sim:small-q4" in text


def test_a_script_in_a_prompt_shows_as_text_and_never_runs(server, page, tmp_path):
    browse, sample = server
    for path in (
        f"/{DB}/prompts",
        f"/{DB}/calls",
        f"/{DB}/events_prompt_built",
        f"/{DB}/call_timeline?call_id={sample.xss_call_id}",
        f"/{DB}/prompts?_search=pricing",
    ):
        page.goto(browse.base + path)
        page.wait_for_load_state("load")
        assert XSS in page.locator("body").inner_text(), path
        assert page.evaluate("() => document.querySelectorAll('td script').length") == 0
    assert page.dialogs == []  # type: ignore[attr-defined]
    page.screenshot(path=str(tmp_path / "xss.png"), full_page=True)


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
