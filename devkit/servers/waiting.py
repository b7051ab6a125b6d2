"""Readiness by protocol check with a deadline; no fixed sleeps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

from devkit.servers.protocol import ServerStartError

T = TypeVar("T")


class NotReady(ServerStartError):
    pass


class GiveUp(ServerStartError):
    """Raised by a check when waiting longer cannot help (say, the server answered an error)."""


class ServerExited(GiveUp):
    """Raised by a check when the process it waits for has exited (on start: most likely it lost the
    race for its port; devkit.servers.ports.start_on_free_port tries another)."""


def _pauses(deadline_s: float, interval_s: float | None) -> Iterator[float]:
    """The pauses between checks until `deadline_s` from now: `interval_s` each, or backing off
    from 20 ms to 200 ms (quick when a server is quick, few checks when it is slow)."""
    end = time.monotonic() + deadline_s
    delay = interval_s or 0.02
    while time.monotonic() < end:
        yield delay
        delay = interval_s or min(delay * 1.5, 0.2)


def _failure(error: Exception, what: str, deadline_s: float, describe_failure: Callable[[], str]) -> Exception:
    detail = describe_failure()
    suffix = f"\n{detail}" if detail else ""
    if isinstance(error, GiveUp):
        return type(error)(f"{what}: {error}{suffix}")
    return NotReady(f"{what} not ready after {deadline_s:g} s: {error}{suffix}")


def wait_until(
    check: Callable[[], T],
    deadline_s: float,
    what: str,
    describe_failure: Callable[[], str] = lambda: "",
    interval_s: float | None = None,
) -> T:
    """Call `check` until it returns without raising, or raise NotReady after `deadline_s`; a check
    that raises GiveUp ends the wait at once. `interval_s`: a fixed pause (a measurement's resolution)."""
    pauses = _pauses(deadline_s, interval_s)
    while True:
        try:
            return check()
        except Exception as exc:
            pause = None if isinstance(exc, GiveUp) else next(pauses, None)
            if pause is None:
                raise _failure(exc, what, deadline_s, describe_failure) from None
        time.sleep(pause)


async def wait_until_async(check: Callable[[], Awaitable[T]], deadline_s: float, what: str) -> T:
    """wait_until for a coroutine check, pausing without blocking the event loop."""
    pauses = _pauses(deadline_s, None)
    while True:
        try:
            return await check()
        except Exception as exc:
            pause = None if isinstance(exc, GiveUp) else next(pauses, None)
            if pause is None:
                raise _failure(exc, what, deadline_s, lambda: "") from None
        await asyncio.sleep(pause)
