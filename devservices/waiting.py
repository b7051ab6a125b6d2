"""Readiness by protocol check with a deadline; no fixed sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from .servers import ProviderError

T = TypeVar("T")


class NotReady(ProviderError):
    pass


def wait_until(
    check: Callable[[], T], deadline_s: float, what: str, describe_failure: Callable[[], str] = lambda: ""
) -> T:
    """Call `check` until it returns without raising, or raise NotReady after `deadline_s`."""
    end = time.monotonic() + deadline_s
    delay = 0.02
    while True:
        try:
            return check()
        except Exception as exc:
            if time.monotonic() >= end:
                detail = describe_failure()
                raise NotReady(
                    f"{what} not ready after {deadline_s:.0f} s: {exc}" + (f"\n{detail}" if detail else "")
                ) from None
        time.sleep(delay)
        delay = min(delay * 1.5, 0.2)
