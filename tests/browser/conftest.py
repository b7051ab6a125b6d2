"""A real browser for the tests that need one: Debian's Chromium, driven by Playwright.

Playwright's own browser download needs the internet, so the browser is the system's
(`apt-get install chromium`; FACTS_CHROMIUM names another binary). Without it the browser tests
are skipped, except in CI (CI is set), where that is a failure. Every failed test leaves a
screenshot of its page in FACTS_TEST_ARTIFACTS (default .test-artifacts/).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("FACTS_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(os.environ.get("FACTS_TEST_ARTIFACTS", ROOT / ".test-artifacts"))
VIEWPORT = {"width": 1400, "height": 1000}
_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed:
        item.stash[_FAILED] = True
    return report


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        message = f"no Chromium at {CHROMIUM}: apt-get install chromium, or set FACTS_CHROMIUM"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in requirements-dev.txt")
    with sync_api.sync_playwright() as playwright:
        # Waits measured on a loaded CI machine, not a quiet one: a first request to a cold function
        # behind the harness took over Playwright's default 5 s while two suites ran beside it.
        sync_api.expect.set_options(timeout=15_000)
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh page (its own cache and cookies); a screenshot of it when the test fails."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    if request.node.stash.get(_FAILED, False):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / (re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)[-150:] + ".png")
        try:
            page.screenshot(path=str(shot), full_page=True)
            print(f"\nscreenshot of the failed test's page: {shot}", file=sys.stderr)
        except Exception as exc:  # a page that crashed cannot be photographed; the failure says why
            print(f"\nno screenshot: {exc}", file=sys.stderr)
    context.close()


@pytest.fixture
def console_errors(page: Any) -> list[str]:
    """Errors the page's scripts logged or threw, collected from here on."""
    errors: list[str] = []
    page.on("console", lambda message: errors.append(f"console: {message.text}") if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    return errors
