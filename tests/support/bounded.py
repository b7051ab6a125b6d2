"""A call that must answer within a limit: a hang fails the test at the limit instead of blocking it."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any


def answer_within(call: Callable[[], Any], limit_s: float) -> Any:
    """`call()`, run aside so that a hang fails the test after `limit_s` instead of blocking it."""
    executor = ThreadPoolExecutor(1)
    try:
        return executor.submit(call).result(timeout=limit_s)
    except FutureTimeout:
        raise AssertionError(f"no answer within {limit_s} s: nothing bounds the request") from None
    finally:
        executor.shutdown(wait=False)  # a hung call finishes once the test thaws the server
