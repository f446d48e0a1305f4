"""Headless Chromium (Debian's package) driven by Playwright, for pages the project writes."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

#: Debian's package (this machine, .ci/run); None: the Chromium Playwright installed itself (CircleCI's test job).
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)

# Without the background-networking flags Chromium keeps trying to reach Google on this closed network.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def require_browser() -> None:
    """Skip when there is no browser here, unless CI said one must be (MODELOPS_REQUIRE_BROWSER=1): then fail."""
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install -e '.[dev]')")
    if CHROMIUM is None and not missing and not _playwright_chromium():
        missing.append("Debian's chromium (apt-get install chromium), or `python -m playwright install chromium`")
    if missing:
        message = f"no headless browser: install {' and '.join(missing)}"
        if os.environ.get("MODELOPS_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)


def _playwright_chromium() -> bool:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        return os.path.exists(playwright.chromium.executable_path)


@contextmanager
def browser_page(width: int = 1280, height: int = 900) -> Iterator:
    """A fresh Chromium page; console errors and failed requests are collected on ``page.problems``."""
    from playwright.sync_api import sync_playwright

    require_browser()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)  # None: Playwright's own
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.problems = []
            page.on("console", lambda m: m.type == "error" and page.problems.append(f"console: {m.text}"))
            page.on("requestfailed", lambda r: page.problems.append(f"request failed: {r.url}"))
            page.on("response", lambda r: r.status >= 400 and page.problems.append(f"HTTP {r.status}: {r.url}"))
            yield page
        finally:
            browser.close()
