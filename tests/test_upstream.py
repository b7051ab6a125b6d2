"""random with FACTS_UPSTREAM_URL: facts from an upstream API, saved, with a fallback to the catalogue."""

from __future__ import annotations

import logging
import time

import pytest

from shared import instance
from shared.catalogue import fact_id

from .support.clock import hand_clock_for_breakers
from .support.upstream_stub import upstream_stub

UPSTREAM_PAUSE_S = 5.0  # README: after a failure the upstream is left alone for 5 s


# fault_log: every record logged (caplog) is searched for the servers' passwords after each test.
pytestmark = pytest.mark.usefixtures("fault_log")


@pytest.fixture
def upstream(servers, monkeypatch):
    with upstream_stub() as (url, state):
        monkeypatch.setenv("FACTS_UPSTREAM_URL", url)
        monkeypatch.setenv("FACTS_UPSTREAM_TIMEOUT", "0.5")
        instance.reset()
        yield state
    instance.reset()


def test_upstream_fact_is_saved_and_counted(upstream, random_client, db, seeded_counts):
    first = random_client.get("/", query_string={"language": "de"}).get_json()
    assert first["fact"] == upstream.text
    assert first["fact_id"] == fact_id(upstream.text)
    assert (first["source"], first["views"], first["language"]) == ("stub-upstream", 1, "de")
    second = random_client.get("/", query_string={"language": "de"}).get_json()
    assert second["fact_id"] == first["fact_id"] and second["views"] == 2
    rows = db.run(
        "SELECT views, seq FROM facts JOIN fact_views USING (fact_id) WHERE fact_id = :id", id=first["fact_id"]
    )
    assert rows == [[2, seeded_counts["de"] + 1]]  # numbered after the catalogue: selection stays uniform
    assert db.run("SELECT n FROM fact_counts WHERE language = 'de'") == [[seeded_counts["de"] + 1]]


@pytest.mark.parametrize("mode", ["error", "garbage", "slow"])
def test_failing_or_slow_upstream_falls_back_to_the_catalogue(upstream, random_client, db, mode, caplog):
    upstream.mode = mode
    upstream.delay_s = 20.0  # slow: far beyond the 0.5 s timeout, so a wait for the answer shows
    began = time.perf_counter()
    responses = [random_client.get("/") for _ in range(3)]
    took = time.perf_counter() - began
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert all(r.get_json()["fact"] != upstream.text for r in responses)
    assert took < 0.5 + 3.0  # one 0.5 s timeout at most, then the breaker skips it; 3 s for a loaded machine
    assert upstream.requests == 1, "the upstream was asked again during its pause"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "falling back to the catalogue" in warnings[0]
    assert db.run("SELECT count(*) FROM facts WHERE fact_id = :id", id=fact_id(upstream.text)) == [[0]]


def test_a_failed_upstream_is_left_alone_for_exactly_the_promised_pause(upstream, random_client, monkeypatch):
    clock = hand_clock_for_breakers(monkeypatch)  # the pause's edges exactly, without sleeping through it
    upstream.mode = "error"
    failed_at = clock.now
    assert random_client.get("/").status_code == 200  # from the catalogue
    upstream.mode = "ok"

    clock.now = failed_at + UPSTREAM_PAUSE_S - 0.001
    assert random_client.get("/").get_json()["fact"] != upstream.text, "asked again before the pause was over"
    assert upstream.requests == 1

    clock.now = failed_at + UPSTREAM_PAUSE_S
    assert random_client.get("/").get_json()["fact"] == upstream.text, "not asked again once the pause was over"
    assert upstream.requests == 2  # the failed call and the one after the pause, none in between
