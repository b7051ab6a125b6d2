"""serve --like cloud-run's dashboard panel in a real browser, against the real mode with its own
embedded servers (the fault buttons act only on servers the harness started)."""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from ..support.harness_process import harness_server
from .conftest import ROOT

pytestmark = pytest.mark.slow  # a real browser, instances and servers of its own

expect = pytest.importorskip("playwright.sync_api", reason="playwright is in requirements-dev.txt").expect
SCREENSHOT = ROOT / "docs" / "cloudrun-mode.png"
TIMED = re.compile(r"^\d+\.\d\d s$")


def _status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=40) as response:
        response.read()
        return int(response.status)


def test_the_panel_shows_instances_cold_starts_evictions_and_faults(page: Any, tmp_path: Path) -> None:
    env = {"FACTS_DATA_DIR": str(tmp_path / "data")}
    with harness_server(env, "--like", "cloud-run", "--servers", "embedded", "--idle-stop", "300") as (base, _):
        page.goto(base + "/")
        panel = page.locator("#platform")
        expect(panel).to_be_visible()
        expect(page.locator('.service[data-route="random"]')).to_contain_text("no instance")
        assert _status(base + "/random?language=en") == 200  # a cold start
        assert _status(base + "/random?language=de") == 200  # warm
        row = page.locator('.service[data-route="random"] tr[data-instance]')
        expect(row).to_have_count(1)
        expect(row).to_have_attribute("data-state", "frozen")  # no request in flight
        first = row.get_attribute("data-instance")
        cold = page.locator(f'#cold-rows tr[data-instance="{first}"]')
        expect(cold).to_contain_text("served")
        expect(cold.locator("td").nth(6)).to_have_text(TIMED)
        expect(cold.locator("td").nth(5)).to_have_text(TIMED)  # the first connections, once a warm one answered
        # Evict: stopped now, and the next request pays a new cold start.
        row.locator("button.evict").click()
        expect(row).to_have_attribute("data-state", "stopped")
        expect(page.locator("#log-rows tr.platform-event", has_text="evicted")).to_have_count(1)
        # Each request line names the instance that answered it.
        expect(page.locator("#log-rows tr:not(.platform-event)", has_text=str(first))).to_have_count(2)
        assert _status(base + "/random") == 200
        expect(page.locator("#cold-rows tr")).to_have_count(2)
        # A fault and its recovery, in the live log beside the requests.
        redis_row = page.locator('.fault[data-server="redis"]')
        redis_row.locator('button[data-action="freeze"]').click()
        expect(redis_row.locator(".server-state")).to_have_text("frozen")
        redis_row.locator('button[data-action="thaw"]').click()
        expect(redis_row.locator(".server-state")).to_have_text("running")
        expect(page.locator("#log-rows tr.platform-event", has_text="redis frozen")).to_have_count(1)
        expect(page.locator("#log-rows tr.platform-event", has_text="redis running")).to_have_count(1)
        expect(page.locator("#log-rows tr", has_text="random_fact")).to_have_count(3)
        assert _status(base + "/today") == 200
        expect(page.locator('.service[data-route="today"] tr[data-instance]')).to_have_count(1)
        expect(page.locator('#cold-rows tr[data-instance^="today-fact"]')).to_contain_text("served")
        target = SCREENSHOT if os.environ.get("FACTS_UPDATE_SCREENSHOT") else tmp_path / "cloudrun-mode.png"
        page.screenshot(path=str(target), full_page=True)
        assert target.stat().st_size > 20_000


def test_the_buttons_refuse_another_origin_and_a_form_post(page: Any, tmp_path: Path) -> None:
    env = {"FACTS_DATA_DIR": str(tmp_path / "data")}
    with harness_server(env, "--like", "cloud-run", "--servers", "embedded") as (base, _):
        api = base + "/_dashboard/api/platform/fault"
        body = b'{"server": "redis", "action": "stop"}'
        for headers in ({"Content-Type": "application/json", "Origin": "http://evil.example"},
                        {"Content-Type": "application/x-www-form-urlencoded"}):  # fmt: skip
            request = urllib.request.Request(api, body, headers, method="POST")
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=10)
            assert refused.value.code in (400, 403)
        assert _status(base + "/healthz") == 200  # Redis still up
