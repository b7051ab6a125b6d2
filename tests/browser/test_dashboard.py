"""The harness's dashboard in a real browser: every part working against a real harness."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devharness.dashboard import STREAM_S

from ..support.harness_process import harness_server, project_copy
from .conftest import ROOT

pytestmark = pytest.mark.slow  # a real browser

expect = pytest.importorskip("playwright.sync_api", reason="playwright is in requirements-dev.txt").expect
SCREENSHOT = ROOT / "docs" / "dashboard.png"


def _get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return dict(json.loads(response.read()))


def _open(page: Any, base: str) -> None:
    """Open the dashboard, wait for its live log, and clear what earlier tests left in it."""
    page.goto(base + "/")
    expect(page.locator("#log-state")).to_have_text("live")  # after the backlog of earlier requests
    page.click("#log-clear")


def test_the_dashboard_lists_every_function(page: Any, harness: str) -> None:
    _open(page, harness)
    rows = page.locator("#functions-rows tr")
    expect(rows).to_have_count(2)
    expect(page.locator('#functions-rows tr[data-path="/random"]')).to_contain_text("random_fact")
    expect(page.locator('#functions-rows tr[data-path="/random"]')).to_contain_text("functions/random_fact.py")
    expect(page.locator('#functions-rows tr[data-path="/today"]')).to_contain_text("today_fact")
    for row in rows.all():
        expect(row).to_contain_text("loaded")


def test_the_explorer_calls_random_and_the_log_stream_pushes_it(page: Any, harness: str, db: Any) -> None:
    streams: list[float] = []  # when the page opened each live log stream
    page.on("request", lambda request: "/_dashboard/api/events" in request.url and streams.append(time.monotonic()))
    _open(page, harness)
    opened, held_since = len(streams), streams[-1]
    page.select_option("#explorer-path", "/random")
    page.select_option("#explorer-method", "get")
    page.select_option("#param-query-language", "de")
    page.click("#send")
    expect(page.locator("#result-status")).to_have_text("200 OK")
    expect(page.locator("#result-latency")).to_contain_text(" ms")
    expect(page.locator("#result-headers")).to_contain_text("no-store")
    fact = json.loads(page.locator("#result-body").text_content())
    assert fact["language"] == "de"
    stored = db.run(
        "SELECT f.fact, v.views FROM facts f JOIN fact_views v USING (fact_id) WHERE fact_id = :id", id=fact["fact_id"]
    )
    assert stored == [[fact["fact"], fact["views"]]]
    # The request reaches the live log over the stream the page already holds: pushed as it is
    # logged (tests/test_dashboard_server.py times that), not fetched by a reconnect or a poll.
    line = page.locator("#log-rows tr", has_text="random_fact")
    expect(line).to_contain_text("/random")
    expect(line).to_contain_text("200")
    # A stream opened since can only be the held one's end after STREAM_S, never a fetch for the line.
    assert all(at - held_since >= STREAM_S for at in streams[opened:]), [at - held_since for at in streams]
    # The filter hides what does not match and shows it again.
    page.fill("#log-filter", "today_fact")
    expect(line).to_have_count(0)
    page.fill("#log-filter", "random")
    expect(line).to_have_count(1)


def test_the_views_shown_for_todays_fact_grow_after_calls(page: Any, harness: str, db: Any) -> None:
    first = _get(harness + "/today")
    _open(page, harness)
    views = page.locator('#today-rows tr[data-language="en"] td.views')
    expect(views).to_have_text(str(first["views"]))
    expect(page.locator('#today-rows tr[data-language="en"]')).to_contain_text(first["fact"])
    for _ in range(3):
        _get(harness + "/today")
    expect(views).to_have_text(str(first["views"] + 3))
    assert db.run("SELECT views FROM fact_views WHERE fact_id = :id", id=first["fact_id"]) == [[first["views"] + 3]]
    expect(page.locator("#key-rows")).to_contain_text(f"today:en:{first['date']}")
    expect(page.locator("#catalogue-rows")).to_contain_text("7193")
    expect(page.locator("#top-rows")).to_contain_text(first["fact"])


def test_the_servers_show_where_and_health_and_never_a_password(page: Any, harness: str, servers: Any) -> None:
    _open(page, harness)
    listed = page.locator("#servers-list")
    expect(listed).to_contain_text("external")
    expect(listed.locator(".ok")).to_have_count(2)  # Postgres and Redis healthy
    password = servers.database_url.split("@")[0].rsplit(":", 1)[-1]
    assert password and password not in page.content()


def test_a_broken_function_shows_its_error_line_and_recovers_under_reload(
    page: Any, servers: Any, tmp_path: Path
) -> None:
    copy = project_copy(tmp_path)
    source = copy / "functions" / "random_fact.py"
    good = source.read_text()
    with harness_server(servers.environ(), "--reload", root=copy) as (base, _):
        _open(page, base)
        row = page.locator('#functions-rows tr[data-path="/random"]')
        expect(row).to_contain_text("loaded")
        source.write_text(good + "\ndef broken(:\n")
        broken_line = good.count("\n") + 2
        expect(row).to_contain_text("failed to load", timeout=30_000)
        expect(row).to_contain_text("SyntaxError")
        expect(row.locator(".error-where")).to_have_text(f"functions/random_fact.py, line {broken_line}")
        expect(page.locator('#functions-rows tr[data-path="/today"]')).to_contain_text("loaded")
        source.write_text(good)
        expect(row).to_contain_text("loaded", timeout=30_000)
        expect(row).not_to_contain_text("failed")


def _nth_request(url: str, n: int) -> Callable[[Any], bool]:
    """A predicate true for the `n`th request to `url` it is shown."""
    seen = [0]

    def counts(request: Any) -> bool:
        if request.url == url:
            seen[0] += 1
        return seen[0] == n and request.url == url

    return counts


def test_no_console_errors_and_nothing_fetched_beyond_the_harness(
    page: Any, harness: str, console_errors: list[str]
) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    _open(page, harness)
    for path in ("/today", "/random", "/healthz", "/"):
        page.select_option("#explorer-path", path)
        page.click("#send")
        expect(page.locator("#result-status")).to_have_text("200 OK")
    expect(page.locator("#log-rows tr", has_text="/healthz")).to_have_count(1)
    # A full round of every refresh after the calls: each panel asks again only once its last
    # answer is drawn, so the second request of each means the first was drawn, errors and all.
    api = harness + "/_dashboard/api/"
    with page.expect_request(_nth_request(api + "functions", 2)), page.expect_request(_nth_request(api + "servers", 2)):
        pass
    assert console_errors == []
    assert requested and all(url.startswith(harness + "/") for url in requested), requested


# Every control, its accessible name (label, aria-label or text), and a mark to find it by.
_CONTROLS = """() => [...document.querySelectorAll('button, input, select, textarea, a[href], [tabindex]')]
  .filter((node) => node.offsetParent !== null && !(node.matches('[tabindex]:not(button, input, select, textarea, a)')
    && node.tabIndex < 0))
  .map((node, index) => {
    node.dataset.controlMark = String(index);
    const labelled = node.labels && [...node.labels].map((l) => l.textContent.trim()).join(' ');
    const name = node.getAttribute('aria-label') || labelled
      || (node.tagName === 'BUTTON' ? node.textContent.trim() : '');
    return {mark: String(index), tag: node.tagName, id: node.id, name: name || ''};
  })"""


def test_every_control_is_labelled_and_reachable_by_keyboard(page: Any, harness: str) -> None:
    _open(page, harness)
    page.select_option("#explorer-path", "/today")  # the form with the most fields
    expect(page.locator("#param-query-language")).to_be_visible()  # openapi.json has arrived
    page.click("#add-header")  # and a header row: its inputs and its Remove button
    controls = page.evaluate(_CONTROLS)
    assert len(controls) >= 12
    unlabelled = [c for c in controls if not c["name"]]
    assert unlabelled == []
    page.locator("body").focus()
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    reached: set[str] = set()
    for _ in range(3 * len(controls)):
        page.keyboard.press("Tab")
        mark = page.evaluate("() => document.activeElement && document.activeElement.dataset.controlMark")
        if mark is not None:
            reached.add(mark)
        if len(reached) == len(controls):
            break
    missing = [c for c in controls if c["mark"] not in reached]
    assert missing == []
    # And the explorer works from the keyboard alone: focus Send, press Enter.
    page.focus("#send")
    page.keyboard.press("Enter")
    expect(page.locator("#result-status")).to_have_text("200 OK")


def test_the_screenshot_in_the_docs_is_made_here(page: Any, harness: str, tmp_path: Path) -> None:
    """FACTS_UPDATE_SCREENSHOT=1 writes docs/dashboard.png from this very setup."""
    _open(page, harness)
    for path in ("/today", "/today?language=de", "/random?language=de", "/nothing/here"):
        try:
            urllib.request.urlopen(harness + path, timeout=10).close()
        except OSError:
            pass  # the 404 is wanted in the log
    for path in ("/random", "/today"):
        page.select_option("#explorer-path", path)
        page.click("#send")
        expect(page.locator("#result-status")).to_have_text("200 OK")
    # At least these six: a line of an earlier test may still reach the log after the clear. (A
    # locator, not wait_for_function: the dashboard's CSP forbids the eval that one may need.)
    expect(page.locator("#log-rows tr").nth(5)).to_be_attached()
    expect(page.locator('#today-rows tr[data-language="de"] td.views')).not_to_have_text("–")
    # Every panel drawn: the servers' health, the data and the explorer's answer.
    expect(page.locator("#servers-list .ok")).to_have_count(2)
    expect(page.locator("#catalogue-rows")).to_contain_text("7193")
    expect(page.locator("#key-rows")).to_contain_text("today:de:")
    expect(page.locator("#top-rows tr").first).to_be_attached()
    expect(page.locator("#result-body")).to_contain_text("fact_id")
    target = SCREENSHOT if os.environ.get("FACTS_UPDATE_SCREENSHOT") else tmp_path / "dashboard.png"
    page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 20_000


def test_facts_are_shown_as_text_never_as_markup(page: Any, harness: str, db: Any) -> None:
    """Facts may come from an upstream API: markup in one must show as text."""
    markup = '<img src="x" id="injected" onerror="window.injected = 1"><b>bold</b>'
    db.run("SELECT * FROM view_external_fact('00000000000000aa', :fact, 'en', 'test')", fact=markup)
    _open(page, harness)
    expect(page.locator("#top-rows")).to_contain_text(markup)
    assert page.locator("#injected").count() == 0 and page.locator("#top-rows b").count() == 0
    assert page.evaluate("() => window.injected") is None
