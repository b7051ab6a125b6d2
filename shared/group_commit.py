"""Group commit inside an instance: concurrent views of the same kind share one statement.

While `max_in_flight` statements for a key (say, the day's fact) are on their way, the requests that
arrive for the same key wait together; when one returns, the first of them sends one statement for
all of them (`views + n`), and each gets its own result back. Under load that is one round trip, one
commit and one row update for several views, on the instance and on Postgres; a request that finds
a free slot runs at once. More than one statement in flight keeps the commits overlapping: with a
single one, every view would wait for the previous statement's commit (a disk flush) first.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from .postgres import StoreUnavailable

K = TypeVar("K", bound=Hashable)
R = TypeVar("R")


class _Batch(Generic[R]):
    __slots__ = ("done", "error", "results", "size", "turn")

    def __init__(self) -> None:
        self.size = 0
        self.turn = threading.Event()  # set for the batch's first member when the one before returned
        self.done = threading.Event()  # set when the results (or the error) are in
        self.results: list[R] = []
        self.error: BaseException | None = None


class GroupCommit(Generic[K, R]):
    """`run(key, n)` counts n views in one statement and returns n results, one per request, in order."""

    def __init__(self, run: Callable[[K, int], list[R]], wait_s: float, max_in_flight: int = 2) -> None:
        self._run = run
        self._max_in_flight = max(1, max_in_flight)
        # Longer than any statement may take (its timeouts), so a wait that ends is a broken promise.
        self._wait_s = wait_s
        self._lock = threading.Lock()
        self._in_flight: dict[K, int] = {}
        self._waiting: dict[K, _Batch[R]] = {}

    def submit(self, key: K) -> R:
        with self._lock:
            running = self._in_flight.get(key, 0)
            if running >= self._max_in_flight:
                batch = self._waiting.setdefault(key, _Batch())
                batch.size += 1
                index = batch.size - 1
            else:
                self._in_flight[key] = running + 1
                batch = None
        if batch is None:  # a free slot: run at once, alone (no events to make or wait on)
            try:
                return self._run(key, 1)[0]
            finally:
                self._hand_over(key)
        if index > 0:
            if not batch.done.wait(self._wait_s):
                raise StoreUnavailable("a grouped view statement did not return in time")
            if batch.error is not None:
                raise batch.error
            return batch.results[index]
        # The batch's first member runs it when the statement before it has returned. Should that
        # statement never return, it runs anyway: two statements at once are still exact.
        if not batch.turn.wait(self._wait_s):
            with self._lock:  # no one may join a batch that is running
                if self._waiting.get(key) is batch:
                    del self._waiting[key]
        try:
            batch.results = self._run(key, batch.size)
        except BaseException as exc:
            batch.error = exc
            raise
        finally:
            batch.done.set()
            self._hand_over(key)
        return batch.results[0]

    def _hand_over(self, key: K) -> None:
        """Pass the slot to the batch that gathered meanwhile (its first member runs it), or free it."""
        with self._lock:
            following = self._waiting.pop(key, None)
            if following is None:
                left = self._in_flight[key] - 1
                if left:
                    self._in_flight[key] = left
                else:
                    del self._in_flight[key]
        if following is not None:
            following.turn.set()
