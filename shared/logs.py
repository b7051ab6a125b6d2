"""Request logs: Cloud Logging's structured JSON when deployed, readable lines in a terminal."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from typing import Any, TextIO

from .json_text import compact_encoder, string

_configured = False
_lock = threading.Lock()
_TRACE_FIELD = "logging.googleapis.com/trace"
# How often the kept lines are written: they reach the log this late at most.
WRITE_INTERVAL_S = 0.25
# The longest a flush waits for another writer (one stuck on a full pipe, say).
FLUSH_WAIT_S = 5.0


_JSON_LINE = compact_encoder(default=str)


class CloudJsonFormatter(logging.Formatter):
    """One JSON object per line with the fields Cloud Logging reads (severity, message, trace)."""

    _OWN_KEYS = frozenset(("severity", "message", "logger"))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # By level and logger name: the JSON text before and after the message.
        self._around: dict[tuple[str, str], tuple[str, str]] = {}

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        if fields and (type(fields) is not dict or not self._OWN_KEYS.isdisjoint(fields)):
            return self._format_merged(record, fields)
        message = record.getMessage()
        if record.exc_info:
            message = f"{message}\n{self.formatException(record.exc_info)}"
        around = self._around.get((record.levelname, record.name))
        if around is None:
            around = self._around[record.levelname, record.name] = (
                f'{{"severity":{string(record.levelname)},"message":',
                f',"logger":{string(record.name)}',
            )
        head = around[0] + string(message) + around[1]
        # The fields' object spliced in after the first three: one dict encoded, not a merged copy.
        return head + "," + _JSON_LINE(fields)[1:] if fields else head + "}"

    def _format_merged(self, record: logging.LogRecord, fields: Any) -> str:
        """Fields that name one of the first three replace it (an unusual record: a slower path)."""
        entry: dict[str, object] = {"severity": record.levelname, "message": record.getMessage(), "logger": record.name}
        entry.update(fields)
        if record.exc_info:
            entry["message"] = f"{entry['message']}\n{self.formatException(record.exc_info)}"
        return _JSON_LINE(entry)


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


class BufferedStreamHandler(logging.StreamHandler):
    """Each line is formatted on the thread that logs it and kept in memory; a flushing thread
    writes what was kept to the stream every WRITE_INTERVAL_S, in one write and one flush.

    A request thread never writes to the stream itself, so a slow or stuck log pipe never holds up
    an answer, and a burst of requests costs one system call, not one each. Measured under load
    (bench/README.md, "The request line formatted where it is logged"): handing each record to a
    thread that formats it (the stdlib's QueueHandler and QueueListener, this handler's
    predecessor) cost more CPU per request than formatting here: the formatting thread's bursts,
    each holding the GIL for milliseconds, kept the request threads waiting and switching.
    """

    def __init__(self, stream: TextIO, formatter: logging.Formatter) -> None:
        super().__init__(stream)
        self.setFormatter(formatter)
        self._start_flushing()
        # A forked child (a gunicorn worker) has the lines but not the thread: what the parent kept
        # is the parent's to write, and a lock the parent's flusher held would stay held.
        os.register_at_fork(after_in_child=self._start_flushing)

    def _start_flushing(self) -> None:
        self._pending: list[str] = []
        self._writing = threading.Lock()  # one writer at a time, so lines keep their order
        self._stop_flushing = threading.Event()
        threading.Thread(target=self._flush_periodically, name="log-flusher", daemon=True).start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        self._pending.append(line)  # under the handler's lock (Handler.handle), like the swap in flush

    def flush(self) -> None:
        """Write and flush every line kept so far; gives up after FLUSH_WAIT_S if another writer is stuck."""
        if not self._writing.acquire(timeout=FLUSH_WAIT_S):
            return
        try:
            with self.lock:  # type: ignore[union-attr]
                lines, self._pending = self._pending, []
            if lines:
                self.stream.write("".join(lines))
            self.stream.flush()
        finally:
            self._writing.release()

    def _flush_periodically(self) -> None:
        while not self._stop_flushing.wait(WRITE_INTERVAL_S):
            if self._pending:
                try:
                    self.flush()
                except Exception:  # a closed or broken stream: say so on stderr, as logging does, and go on
                    self.handleError(logging.makeLogRecord({"msg": "writing the log lines failed"}))

    def close(self) -> None:
        # logging.shutdown calls this at exit: nothing kept is lost. It may come twice.
        self._stop_flushing.set()
        with contextlib.suppress(ValueError):  # a stream already closed by its owner
            self.flush()
        super().close()


# Per logger: the attributes of its request records that are the same for every request. A forked
# worker starts without them and makes its own (its process's id and name).
_templates: dict[str, dict[str, Any]] = {}
os.register_at_fork(after_in_child=_templates.clear)


def request_record(
    logger: logging.Logger, msg: str, args: tuple[Any, ...], fields: dict[str, Any]
) -> logging.LogRecord:
    """The record `logger.info(msg, *args, extra={"fields": fields})` makes, for a fraction of its
    cost: logger.info walks the stack for its caller, and LogRecord.__init__ splits the file name and
    looks up the level's and the process's names, on every call. Here those come from a template
    made once per logger and process; the time, the thread and the arguments are the record's own.

    A record factory set by the host (logging.setLogRecordFactory) makes every record itself.
    """
    if logging.getLogRecordFactory() is not logging.LogRecord:
        return logger.makeRecord(logger.name, logging.INFO, __file__, 0, msg, args, None, None, {"fields": fields})
    template = _templates.get(logger.name)
    if template is None:
        made = logging.LogRecord(logger.name, logging.INFO, __file__, 0, msg, (), None)
        template = _templates[logger.name] = vars(made)
    attributes = template.copy()  # a copy, then assigned: building the dict key by key costs twice as much
    now = time.time()
    attributes["created"] = now
    attributes["msecs"] = int((now - int(now)) * 1000) + 0.0
    attributes["relativeCreated"] = (now - logging._startTime) * 1000  # type: ignore[attr-defined]
    if logging.logThreads:
        attributes["thread"] = threading.get_ident()
        attributes["threadName"] = threading.current_thread().name
    attributes["msg"] = msg
    attributes["args"] = args
    attributes["fields"] = fields
    record = logging.LogRecord.__new__(logging.LogRecord)
    record.__dict__ = attributes
    return record


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
        handler: BufferedStreamHandler | None = None
        for name in ("facts", "shared"):
            logger = logging.getLogger(name)
            logger.setLevel(os.environ.get("FACTS_LOG_LEVEL", "INFO").upper())
            if not handles_level(logger):
                handler = handler or _our_handler()
                logger.addHandler(handler)
        _configured = True


def _our_handler() -> BufferedStreamHandler:
    wanted = os.environ.get("FACTS_LOG_FORMAT", "").lower()
    use_json = wanted == "json" or (wanted != "text" and not sys.stderr.isatty())
    return BufferedStreamHandler(
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
