"""The breaker: a failure pauses calls for exactly its pause, and an outage logs one warning and one return.

The breaker reads time.monotonic(); a clock the test moves by hand makes every boundary exact.
"""

from __future__ import annotations

import logging

import pytest

from shared import breaker as breaker_module
from shared.breaker import Breaker

from .support.clock import HandClock

PAUSE_S = 2.0


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> HandClock:
    hand = HandClock()
    monkeypatch.setattr(breaker_module, "time", hand)
    return hand


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> logging.Logger:
    caplog.set_level(logging.INFO, logger="tests.breaker")
    return logging.getLogger("tests.breaker")


def _messages(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "tests.breaker"]


def test_a_new_breaker_allows_calls_from_the_first_instant(clock, log):
    assert Breaker("Redis", log, PAUSE_S).allows()


def test_a_failure_pauses_calls_for_exactly_the_pause(clock, log):
    breaker = Breaker("Redis", log, PAUSE_S)
    clock.now = 100.0
    breaker.failed("ConnectionError")
    clock.now = 100.0 + PAUSE_S - 0.001
    assert not breaker.allows()
    clock.now = 100.0 + PAUSE_S
    assert breaker.allows()


def test_each_failure_restarts_the_pause(clock, log):
    breaker = Breaker("Redis", log, PAUSE_S)
    breaker.failed("ConnectionError")
    clock.now = PAUSE_S
    breaker.failed("TimeoutError")
    clock.now = 2 * PAUSE_S - 0.001
    assert not breaker.allows()


def test_an_outage_logs_one_warning_and_one_return(clock, log, caplog):
    breaker = Breaker("Redis", log, PAUSE_S)
    for _ in range(3):
        breaker.failed("ConnectionError")
        clock.now += PAUSE_S
    breaker.succeeded()
    breaker.succeeded()
    assert _messages(caplog) == [
        (logging.WARNING, "Redis unavailable (ConnectionError); carrying on without it until it returns"),
        (logging.WARNING, "Redis is back"),
    ]


def test_success_without_an_outage_logs_nothing(clock, log, caplog):
    Breaker("Redis", log, PAUSE_S).succeeded()
    assert _messages(caplog) == []


def test_the_next_outage_warns_again(clock, log, caplog):
    breaker = Breaker("upstream example.org", log, PAUSE_S)
    breaker.failed("timed out")
    breaker.succeeded()
    breaker.failed("timed out")
    assert [message for _, message in _messages(caplog)] == [
        "upstream example.org unavailable (timed out); carrying on without it until it returns",
        "upstream example.org is back",
        "upstream example.org unavailable (timed out); carrying on without it until it returns",
    ]
