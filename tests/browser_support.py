"""What the browser tests share: Debian's Chromium through Playwright, a page that records
what a user would notice going wrong (console errors, uncaught exceptions, failed requests,
dialogs a script opened), sideways scrolling, screenshots."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"
)

#: Screenshots go here (a tmp dir per run; the best are copied into docs/images/ by hand).
SHOTS = "LLM_EVENTS_SCREENSHOTS"

#: Run before any page script: a hostile script that got to run would call one of these.
TRAP = """
window.__ran = [];
for (const name of ["alert", "confirm", "prompt"]) {
  window[name] = (m) => { window.__ran.push(name + ":" + m); };
}
"""


def chromium():
    """Headless Chromium for a module's ``browser`` fixture (``yield from chromium()``)."""
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


def open_page(browser, width: int = 1400, height: int = 900, trap: bool = False):
    """A new page of ``width`` px; ``page.problems`` collects console errors, uncaught
    exceptions, responses >= 400 and failed requests, ``page.dialogs`` every dialog."""
    context = browser.new_context(viewport={"width": width, "height": height})
    if trap:
        context.add_init_script(TRAP)
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    dialogs: list[str] = []
    problems: list[str] = []
    pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    pg.on("console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None)
    pg.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
    pg.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
    pg.on(
        "response",
        lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None,
    )
    pg.dialogs = dialogs  # type: ignore[attr-defined]
    pg.problems = problems  # type: ignore[attr-defined]
    return pg


def fresh_page(browser, **kwargs):
    """A page for a test's ``page`` fixture (``yield from fresh_page(browser)``), closed after."""
    pg = open_page(browser, **kwargs)
    yield pg
    pg.context.close()


def shot(page, tmp_path, name: str, full_page: bool = True) -> Path:
    target = Path(os.environ.get(SHOTS) or tmp_path) / f"{name}.png"
    page.screenshot(path=str(target), full_page=full_page)
    assert target.stat().st_size > 10_000
    return target


def card(page, title: str):
    """The section of one of our pages whose heading starts with ``title``."""
    return page.locator("section.le-card").filter(has=page.locator("h2", has_text=title)).first


def no_horizontal_scroll(page) -> None:
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth,"
        " ...[...document.querySelectorAll('.table-wrapper')].map(e => e.scrollWidth - e.clientWidth)]"
    )
    assert widths[0] <= widths[1], f"page scrolls sideways: {widths}"
    assert all(w <= 0 for w in widths[2:]), f"a table scrolls sideways: {widths}"


def page_scrolls_sideways(page) -> int:
    """How many px the page itself scrolls sideways (0: none)."""
    return page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
