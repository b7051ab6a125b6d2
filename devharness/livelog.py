"""The dashboard's live log: this worker's request lines, in a ring in its own memory.

The harness serves one gunicorn worker unless asked for more (`serve --workers N`), so one
process sees every request and no line has to cross a process boundary. With N workers each keeps
its own ring, and the dashboard says that it shows one worker's lines.

A request only appends to a bounded deque under a lock: nothing here can slow it down noticeably.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from shared.request_line import REQUEST_LINE_KEYS, is_request_line

# Lines kept for a newly opened tab or a reader that fell behind.
CAPACITY = 1000
# The longest text kept of each field (a hostile path may be long).
MAX_FIELD_CHARS = 200
# The loggers whose request lines are shown: the functions' and the harness's own paths.
LOGGERS = ("facts.requests", "facts.harness")
# What the harness adds to a line it logs itself (annotated()): the Cloud Run instance that answered.
HARNESS_KEYS = ("instance",)
_annotations = threading.local()


@contextmanager
def annotated(**extra: str) -> Iterator[None]:
    """The request lines this thread logs inside the block carry `extra` (HARNESS_KEYS) in the live log."""
    _annotations.extra = {key: value for key, value in extra.items() if key in HARNESS_KEYS}
    try:
        yield
    finally:
        _annotations.extra = {}


def _shown(value: Any) -> Any:
    return value[:MAX_FIELD_CHARS] if isinstance(value, str) else value


class RequestLog(logging.Handler):
    """A ring of the last `capacity` request lines, each numbered (`seq`) for readers to resume after."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        super().__init__()
        self._lines: deque[dict[str, Any]] = deque(maxlen=capacity)
        self._last = 0
        self._changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        fields: Any = getattr(record, "fields", None)  # Any: is_request_line narrows it, also under mutmut
        if not is_request_line(fields):
            return  # other records of these loggers (a function failing to load, say)
        line: dict[str, Any] = dict(fields)
        shown = {key: _shown(line[key]) for key in REQUEST_LINE_KEYS if key in line}
        shown.update(getattr(_annotations, "extra", {}))
        with self._changed:
            self._last += 1
            self._lines.append({"time": record.created, **shown, "seq": self._last})
            self._changed.notify_all()

    def read(self, after: int, wait_s: float) -> dict[str, Any]:
        """The lines after `after` (waiting up to `wait_s` for one), the last line's number, and how
        many lines this reader missed because the ring dropped them before it asked."""
        with self._changed:
            if after > self._last:
                after = 0  # a reader from before the harness restarted: start again
            self._changed.wait_for(lambda: self._last > after, timeout=wait_s)
            lines = [line for line in self._lines if line["seq"] > after]
            oldest = lines[0]["seq"] if lines else self._last + 1
            return {"events": lines, "last": self._last, "missed": max(0, oldest - after - 1) if after > 0 else 0}

    def attach(self) -> RequestLog:
        """Collect this process's request lines from now on."""
        for name in LOGGERS:
            logging.getLogger(name).addHandler(self)
        return self

    def detach(self) -> None:
        for name in LOGGERS:
            logging.getLogger(name).removeHandler(self)
