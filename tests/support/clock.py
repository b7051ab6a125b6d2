"""A clock the test moves by hand, for the breakers' pauses (shared/breaker.py reads time.monotonic()).

Pauses are then checked at their exact edges, without sleeping through them."""

from __future__ import annotations

import time

import pytest

from shared import breaker


class HandClock:
    """Stands in for the `time` module inside shared.breaker: monotonic() is whatever the test set."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now


def hand_clock_for_breakers(monkeypatch: pytest.MonkeyPatch) -> HandClock:
    """Every breaker's clock, for this test: a hand clock set to the real monotonic time now."""
    hand = HandClock(time.monotonic())
    monkeypatch.setattr(breaker, "time", hand)
    return hand
