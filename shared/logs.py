"""Request logs: Cloud Logging's structured JSON when deployed, readable lines in a terminal."""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import sys
import threading
import time
from typing import TextIO

_configured = False
_lock = threading.Lock()
_TRACE_FIELD = "logging.googleapis.com/trace"


class CloudJsonFormatter(logging.Formatter):
    """One JSON object per line with the fields Cloud Logging reads (severity, message, trace)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["message"] = f"{entry['message']}\n{self.formatException(record.exc_info)}"
        return json.dumps(entry, ensure_ascii=False, default=str)


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        if fields and "status" in fields:
            cache = f" cache={fields['cache']}" if fields.get("cache") else ""
            return (
                f"{self.formatTime(record, '%H:%M:%S')} {fields['method']} {fields['path']} -> {fields['status']}"
                f" {fields['latency_ms']:.1f} ms [{fields['function']}]{cache}"
            )
        return f"{self.formatTime(record, '%H:%M:%S')} {record.levelname.lower()} {record.getMessage()}"


class BatchingStreamHandler(logging.StreamHandler):
    """Writes lines into the stream's buffer; one thread flushes it every `interval_s`.

    A request thread then never waits on a write system call (nor hands the GIL around for one),
    which the per-record flush of logging.StreamHandler costs at every request. Lines reach the
    log within `interval_s`, or sooner when the buffer fills, and at exit.
    """

    def __init__(self, stream: TextIO, interval_s: float = 0.25) -> None:
        super().__init__(stream)
        self._interval_s = interval_s
        threading.Thread(target=self._flush_periodically, name="log-flush", daemon=True).start()
        atexit.register(self.flush_now)

    def flush(self) -> None:
        """Deferred to the flushing thread."""

    def flush_now(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            with contextlib.suppress(ValueError, OSError):  # a closed stream at interpreter exit
                self.stream.flush()

    def _flush_periodically(self) -> None:
        while True:
            time.sleep(self._interval_s)
            self.flush_now()


def configure() -> None:
    """Install one handler on the `facts` and `shared` loggers, once per process.

    FACTS_LOG_FORMAT=json|text chooses; by default JSON unless stderr is a terminal.
    """
    global _configured
    if _configured:  # every request calls this: no lock once done
        return
    with _lock:
        if _configured:
            return
        wanted = os.environ.get("FACTS_LOG_FORMAT", "").lower()
        use_json = wanted == "json" or (wanted != "text" and not sys.stderr.isatty())
        handler = BatchingStreamHandler(sys.stdout if use_json else sys.stderr)
        handler.setFormatter(CloudJsonFormatter() if use_json else ConsoleFormatter())
        for name in ("facts", "shared"):
            logger = logging.getLogger(name)
            logger.addHandler(handler)
            logger.setLevel(os.environ.get("FACTS_LOG_LEVEL", "INFO").upper())
            logger.propagate = False
        _configured = True


def trace_field(header: str | None) -> dict[str, str]:
    """The trace of `X-Cloud-Trace-Context: TRACE/SPAN;o=1`, as Cloud Logging wants it."""
    if not header:
        return {}
    trace_id = header.split("/", 1)[0].strip()
    if not trace_id or not all(c in "0123456789abcdefABCDEF" for c in trace_id) or len(trace_id) > 32:
        return {}
    project = os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("GCP_PROJECT")
    return {_TRACE_FIELD: f"projects/{project}/traces/{trace_id}" if project else trace_id}
