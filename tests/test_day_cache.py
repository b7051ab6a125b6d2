"""DayCache against a live Redis, a refused port and a silent one: one short attempt, then a 2 s pause.

A Redis that accepts connections and never answers is what a hung server looks like from here; a
listening socket that the test never reads from is one, on loopback, and it counts the attempts.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from datetime import date

import pytest

from devkit.servers.ports import free_port
from shared import breaker as breaker_module
from shared.cache import DayCache, today_key

from .support.unanswered import unanswered_connect

DAY = date(2026, 11, 26)
VALUE = {"fact_id": "0123456789abcdef", "fact": "Ein Oktopus hat drei Herzen.", "language": "de"}


@contextlib.contextmanager
def silent_redis() -> Iterator[tuple[str, socket.socket]]:
    """A loopback port that completes TCP handshakes (the kernel does) and never answers a byte."""
    with socket.create_server(("127.0.0.1", 0), backlog=16) as listener:
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0", listener


def connections_made(listener: socket.socket) -> int:
    """How many connections reached the silent port (each waits in its backlog until accepted here)."""
    listener.setblocking(False)
    count = 0
    while True:
        try:
            connection, _ = listener.accept()
        except BlockingIOError:
            return count
        connection.close()
        count += 1


class HandClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def test_a_silent_redis_costs_one_short_attempt_then_none(caplog):
    with silent_redis() as (url, listener):
        cache = DayCache(url)
        try:
            began = time.monotonic()
            assert cache.get("en", DAY) is None
            took = time.monotonic() - began
            cache.put("en", DAY, VALUE, 60)  # within the pause: not even tried
            assert cache.get("en", DAY) is None
        finally:
            cache.close()
        # One connection, no retry: redis-py's own retry policy would make four, with back-off.
        assert connections_made(listener) == 1
    # The default timeout is 0.25 s, once; the connection count above shows there was no retry, so
    # this bound only needs to catch a wait far longer than the timeout (with room for a loaded machine).
    assert took < 0.25 + 2.0
    assert [r.getMessage() for r in caplog.records if r.name == "shared.cache"] == [
        "Redis unavailable (TimeoutError); carrying on without it until it returns"
    ]


def test_a_redis_that_never_completes_a_connect_costs_one_short_attempt():
    """The connect has the cache's short timeout too, not redis-py's default of several seconds."""
    with unanswered_connect() as port:
        cache = DayCache(f"redis://127.0.0.1:{port}/0")
        try:
            began = time.monotonic()
            assert cache.get("en", DAY) is None
            took = time.monotonic() - began
        finally:
            cache.close()
    # 0.25 s is the timeout; the room above it is for a loaded machine, far below redis-py's 5 s.
    assert took < 0.25 + 2.0


def test_a_refused_redis_is_a_miss_and_pings_false():
    cache = DayCache(f"redis://127.0.0.1:{free_port()}/0")
    try:
        assert cache.ping() is False
        assert cache.get("en", DAY) is None
    finally:
        cache.close()


def test_a_live_redis_pings_true(servers):
    cache = DayCache(servers.redis_url, servers.cache_prefix)
    try:
        assert cache.ping() is True
    finally:
        cache.close()


# Longer than redis-py's shortest health-check interval (1 s): a connection idle this long would be
# PINGed before its next command if health checks were on. The idle time is what is tested, not a wait.
IDLE_S = 1.2


def _pings(redis_client) -> int:
    return int(redis_client.info("commandstats").get("cmdstat_ping", {}).get("calls", 0))


def test_a_read_after_an_idle_spell_is_one_round_trip_with_no_health_check(servers, redis_client):
    """A request's cache read costs one round trip: no PING first, however long the connection idled."""
    if servers.kind == "external":
        pytest.skip("the external Redis is shared by every worker: its PING count is not this test's alone")
    cache = DayCache(servers.redis_url, servers.cache_prefix)
    try:
        cache.get("en", date(2024, 1, 1))  # connects
        before = _pings(redis_client)
        time.sleep(IDLE_S)
        assert cache.get("en", date(2024, 1, 1)) is None
        assert _pings(redis_client) == before
    finally:
        cache.close()


def test_caching_resumes_two_seconds_after_a_failure(servers, monkeypatch):
    clock = HandClock()
    monkeypatch.setattr(breaker_module, "time", clock)
    cache = DayCache(servers.redis_url, servers.cache_prefix)
    try:
        cache.put("de", DAY, VALUE, 60)
        cache.breaker.failed("ConnectionError")
        clock.now += 1.999
        assert cache.get("de", DAY) is None  # still pausing: Redis is not asked
        clock.now += 0.001
        assert cache.get("de", DAY) == VALUE
    finally:
        cache.close()


@pytest.mark.parametrize(("ttl_s", "lowest", "highest"), [(0, 1, 1), (-5, 1, 1), (90, 89, 90)])
def test_the_entry_lives_for_its_ttl_and_at_least_a_second(servers, redis_client, ttl_s, lowest, highest):
    cache = DayCache(servers.redis_url, servers.cache_prefix)
    try:
        cache.put("en", DAY, VALUE, ttl_s)
    finally:
        cache.close()
    # Redis rounds a remaining TTL to whole seconds, so a 90 s entry may already read 89.
    assert lowest <= redis_client.ttl(today_key(servers.cache_prefix, "en", DAY)) <= highest


@pytest.mark.parametrize("foreign", ['{"fact": "no id"}', '"fact_id"', '["fact_id"]', "not JSON", ""])
def test_a_foreign_value_under_the_key_is_a_miss(servers, redis_client, foreign):
    redis_client.set(today_key(servers.cache_prefix, "en", DAY), foreign)
    cache = DayCache(servers.redis_url, servers.cache_prefix)
    try:
        assert cache.get("en", DAY) is None
    finally:
        cache.close()
