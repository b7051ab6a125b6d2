"""A small circuit breaker: after a failure, leave a dependency alone for a while.

An outage then costs requests nothing, the log gets one warning when it starts and one line
when the dependency is back, and nothing needs restarting.
"""

from __future__ import annotations

import logging
import threading
import time


class Breaker:
    def __init__(self, name: str, log: logging.Logger, pause_s: float) -> None:
        self.name = name
        self._log = log
        self._pause_s = pause_s
        self._closed_at = 0.0
        self._open = False
        self._lock = threading.Lock()

    def allows(self) -> bool:
        return time.monotonic() >= self._closed_at

    def failed(self, reason: str) -> None:
        with self._lock:
            self._closed_at = time.monotonic() + self._pause_s
            if not self._open:
                self._open = True
                self._log.warning(
                    "%s unavailable (%s); %s", self.name, reason, "carrying on without it until it returns"
                )

    def succeeded(self) -> None:
        if self._open:
            with self._lock:
                if self._open:
                    self._open = False
                    self._log.warning("%s is back", self.name)
