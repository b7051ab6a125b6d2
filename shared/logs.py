"""Request logs: Cloud Logging's structured JSON when deployed, readable lines in a terminal."""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import queue
import sys
import threading
import time
from typing import Any, TextIO

_configured = False
_lock = threading.Lock()
_TRACE_FIELD = "logging.googleapis.com/trace"
# How long the writing thread rests after writing what was queued: lines reach the log this late at most.
WRITE_INTERVAL_S = 0.25
# The longest a flush waits for the writing thread (a bound, not a pace: it returns when written).
FLUSH_WAIT_S = 5.0


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


class _WriteWithoutFlush(logging.StreamHandler):
    """A StreamHandler that leaves flushing to its QueueListener, which flushes once the queue is empty."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + self.terminator)
        except Exception:
            self.handleError(record)


class _Writer(logging.handlers.QueueListener):
    """Writes queued records; flushes the stream whenever the queue runs empty, and on request."""

    def __init__(self, pending: queue.SimpleQueue[Any], handler: logging.Handler) -> None:
        super().__init__(pending, handler)
        self._pending = pending
        self._running = False

    def dequeue(self, block: bool) -> Any:
        if self._pending.empty():  # a burst is written: hand it to the stream in one system call
            self.flush_handlers()
            # Then rest: a thread blocked in get() would be woken, and handed the GIL, by every
            # request's put (measured with wrk: 15-25 % more CPU per request than this).
            time.sleep(WRITE_INTERVAL_S)
        return super().dequeue(block)

    def handle(self, record: Any) -> None:
        if isinstance(record, threading.Event):  # OffThreadStreamHandler.flush asking
            self.flush_handlers()
            record.set()
            return
        super().handle(record)

    def flush_handlers(self) -> None:
        for handler in self.handlers:
            handler.flush()

    def start(self) -> None:
        super().start()
        self._running = True

    def stop(self) -> None:
        if self._running:  # close() may come twice: the caller's, then logging.shutdown's at exit
            self._running = False
            super().stop()  # writes what is queued
            self.flush_handlers()


class OffThreadStreamHandler(logging.handlers.QueueHandler):
    """Request threads only queue their record; one QueueListener thread formats and writes it.

    Measured (issue 12, timeit, min of 7): about 5 us of the request thread per line, against 9 us
    for formatting and writing there with a flush deferred to a timer thread (the handler before),
    and 11 us with logging.StreamHandler's write and flush per line. The stdlib's own prepare()
    (format and copy on the request thread) costs 8 us.
    """

    def __init__(self, stream: TextIO, formatter: logging.Formatter) -> None:
        pending: queue.SimpleQueue[Any] = queue.SimpleQueue()
        super().__init__(pending)
        self._writer_handler = _WriteWithoutFlush(stream)
        self._writer_handler.setFormatter(formatter)
        self._start_writer(pending)
        # A forked child (a gunicorn worker) has the queue but not the thread; what the parent
        # queued is the parent's to write.
        os.register_at_fork(after_in_child=lambda: self._start_writer(queue.SimpleQueue()))

    def _start_writer(self, pending: queue.SimpleQueue[Any]) -> None:
        self.queue = pending
        self.listener = _Writer(pending, self._writer_handler)
        self.listener.start()

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # The stdlib formats and copies here, on the request thread, so that a record can cross a
        # process boundary; ours stays in this process and nobody changes it after `handle`.
        return record

    def flush(self) -> None:
        """Return once every line queued so far is written and the stream flushed (or after FLUSH_WAIT_S)."""
        written = threading.Event()
        self.queue.put_nowait(written)
        written.wait(FLUSH_WAIT_S)

    def close(self) -> None:
        self.listener.stop()  # logging.shutdown calls this at exit: nothing queued is lost
        super().close()


def handles_level(logger: logging.Logger) -> bool:
    """Whether a handler on `logger`, or on an ancestor its records propagate to, takes records
    of its level (as flask.logging.has_level_handler): then the host configured logging, and a
    handler of ours would print each line twice."""
    level = logger.getEffectiveLevel()
    current: logging.Logger | None = logger
    while current is not None:
        if any(handler.level <= level for handler in current.handlers):
            return True
        if not current.propagate:
            return False
        current = current.parent
    return False


def configure() -> None:
    """Set the level of the `facts` and `shared` loggers and, where no handler takes their lines,
    add one of ours; once per process.

    FACTS_LOG_FORMAT=json|text chooses; by default JSON unless stderr is a terminal. Under pytest
    (or functions-framework's LOG_EXECUTION_ID) the root logger has handlers, and they get the lines.
    """
    global _configured
    if _configured:  # every request calls this: no lock once done
        return
    with _lock:
        if _configured:
            return
        handler: OffThreadStreamHandler | None = None
        for name in ("facts", "shared"):
            logger = logging.getLogger(name)
            logger.setLevel(os.environ.get("FACTS_LOG_LEVEL", "INFO").upper())
            if not handles_level(logger):
                handler = handler or _our_handler()
                logger.addHandler(handler)
        _configured = True


def _our_handler() -> OffThreadStreamHandler:
    wanted = os.environ.get("FACTS_LOG_FORMAT", "").lower()
    use_json = wanted == "json" or (wanted != "text" and not sys.stderr.isatty())
    return OffThreadStreamHandler(
        sys.stdout if use_json else sys.stderr, CloudJsonFormatter() if use_json else ConsoleFormatter()
    )


def trace_field(header: str | None) -> dict[str, str]:
    """The trace of `X-Cloud-Trace-Context: TRACE/SPAN;o=1`, as Cloud Logging wants it."""
    if not header:
        return {}
    trace_id = header.split("/", 1)[0].strip()
    if not trace_id or not all(c in "0123456789abcdefABCDEF" for c in trace_id) or len(trace_id) > 32:
        return {}
    project = os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("GCP_PROJECT")
    return {_TRACE_FIELD: f"projects/{project}/traces/{trace_id}" if project else trace_id}
