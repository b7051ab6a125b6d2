"""Group commit inside an instance: concurrent views of the same kind share one statement.

While a statement for a key (say, the day's fact) is on its way, the requests that arrive for the
same key wait together; when it returns, the first of them sends one statement for all of them
(`views + n`), and each gets its own result back. Under load that is one round trip, one commit and
one row update for several views, on the instance and on Postgres; alone, a request runs at once.
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

    def __init__(self, run: Callable[[K, int], list[R]], wait_s: float) -> None:
        self._run = run
        # Longer than any statement may take (its timeouts), so a wait that ends is a broken promise.
        self._wait_s = wait_s
        self._lock = threading.Lock()
        self._running: set[K] = set()
        self._waiting: dict[K, _Batch[R]] = {}

    def submit(self, key: K) -> R:
        with self._lock:
            if key in self._running:
                batch = self._waiting.setdefault(key, _Batch())
                batch.size += 1
                index = batch.size - 1
            else:
                self._running.add(key)
                batch = None
        if batch is None:  # nothing on its way: run at once, alone (no events to make or wait on)
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
        """Wake the first member of the batch that gathered meanwhile, or mark the key idle."""
        with self._lock:
            following = self._waiting.pop(key, None)
            if following is None:
                self._running.discard(key)
        if following is not None:
            following.turn.set()
