"""Faults against the worker's real servers: stopped, restarted and flushed by the tests."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest

from shared import runtime
from shared.cache import today_key

from .support.harness_process import harness_server
from .support.logcapture import captured_logs

pytestmark = pytest.mark.usefixtures("fresh_runtime")


def _require_control(services, which):
    server = getattr(services, which)
    if server is None:
        pytest.skip(f"{services.provider} servers are not ours to stop; run with --services=embedded or containers")
    return server


@contextmanager
def stopped(server):
    server.stop()
    try:
        yield
    finally:
        server.start()


def _timed(call):
    began = time.perf_counter()
    response = call()
    return response, time.perf_counter() - began


def _eventually(check, within_s=10.0):
    deadline = time.monotonic() + within_s
    while True:
        if check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {within_s} s")
        time.sleep(0.1)


def test_redis_down_both_functions_answer_fast_with_one_warning(
    services, random_client, today_client, redis_client, db
):
    redis_server = _require_control(services, "redis")
    before = today_client.get("/").get_json()  # the day's choice is made while Redis is up
    with captured_logs() as records, stopped(redis_server):
        for _ in range(5):
            for client in (random_client, today_client):
                response, took = _timed(client.get)
                assert response.status_code == 200, response.get_data(as_text=True)
                assert took < 2.0
            assert today_client.get("/").get_json()["fact_id"] == before["fact_id"]
        warnings = [r for r in records if r.levelno >= logging.WARNING and "Redis" in r.getMessage()]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
    # Back: caching resumes by itself (after the breaker's short pause), no restart of anything.
    key = today_key(services.cache_prefix, "en", datetime.fromisoformat(before["date"]).date())

    def cached_again():
        assert today_client.get("/").status_code == 200
        return redis_client.exists(key) == 1

    _eventually(cached_again)
    views = db.run("SELECT views FROM fact_views WHERE fact_id = :id", id=before["fact_id"])[0][0]
    assert views == today_client.get("/").get_json()["views"] - 1


def test_postgres_down_is_a_fast_503_and_recovers_without_restart(services, random_client, today_client):
    postgres_server = _require_control(services, "postgres")
    assert random_client.get("/").status_code == 200  # the pool now holds a connection that will go stale
    with stopped(postgres_server):
        for client in (random_client, today_client):
            response, took = _timed(client.get)
            assert response.status_code == 503
            assert took < 2.0
            assert response.headers["Retry-After"].isdigit()
            body = response.get_json()
            assert body["error"]["code"] == "database_unavailable"
            assert "password" not in response.get_data(as_text=True).lower()
    # The very next requests succeed: stale pooled connections are replaced transparently.
    assert random_client.get("/").status_code == 200
    assert today_client.get("/").status_code == 200


def test_redis_flushed_mid_day_keeps_the_fact_and_every_view(services, today_client, redis_client):
    first = [today_client.get("/").get_json() for _ in range(3)]
    for key in redis_client.scan_iter(match=f"{services.cache_prefix}:*"):
        redis_client.delete(key)
    after = today_client.get("/").get_json()
    assert after["fact_id"] == first[0]["fact_id"]
    assert after["views"] == 4


def test_harness_restart_keeps_the_fact_and_every_view(services):
    import json
    import urllib.request

    def get(base):
        with urllib.request.urlopen(base + "/today", timeout=10) as response:
            return json.load(response)

    with harness_server(services.environ()) as (base, _):
        before = [get(base) for _ in range(3)]
    with harness_server(services.environ()) as (base, _):
        after = get(base)
    assert after["fact_id"] == before[0]["fact_id"]
    assert after["views"] == 4


def test_day_boundary_changes_the_fact_and_expires_the_cache(services, today_client, redis_client, db):
    last_second = datetime(2031, 3, 14, 23, 59, 59, tzinfo=UTC)
    runtime.set_clock(lambda: last_second)
    old = today_client.get("/").get_json()
    assert old["date"] == "2031-03-14"
    old_key = today_key(services.cache_prefix, "en", last_second.date())
    assert 0 < redis_client.ttl(old_key) <= 1  # expires exactly at midnight

    next_day = last_second + timedelta(seconds=2)
    runtime.set_clock(lambda: next_day)
    new = today_client.get("/").get_json()
    assert new["date"] == "2031-03-15"
    assert new["views"] >= 1
    days = db.run("SELECT CAST(day AS text), fact_id FROM daily_facts WHERE language = 'en' ORDER BY day")
    assert days == [["2031-03-14", old["fact_id"]], ["2031-03-15", new["fact_id"]]]
    new_key = today_key(services.cache_prefix, "en", next_day.date())
    assert 86390 < redis_client.ttl(new_key) <= 86399  # 00:00:01 leaves 86,399 s of the day


def test_hung_postgres_is_a_503_within_two_seconds_and_recovers(services, random_client, today_client):
    postgres_server = _require_control(services, "postgres")
    assert today_client.get("/").status_code == 200
    postgres_server.freeze()  # accepts connections, answers nothing: only timeouts can save a request
    try:
        for client in (random_client, today_client):
            response, took = _timed(client.get)
            assert response.status_code == 503, response.get_data(as_text=True)
            assert took < 2.0
    finally:
        postgres_server.thaw()
    _eventually(lambda: random_client.get("/").status_code == 200)
    assert today_client.get("/").status_code == 200


def test_hung_redis_costs_today_well_under_two_seconds(services, today_client):
    redis_server = _require_control(services, "redis")
    expected = today_client.get("/").get_json()["fact_id"]
    redis_server.freeze()
    try:
        for _ in range(3):
            response, took = _timed(today_client.get)
            assert response.status_code == 200 and took < 2.0
            assert response.get_json()["fact_id"] == expected
    finally:
        redis_server.thaw()
