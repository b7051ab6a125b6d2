"""Request logs: Cloud Logging's structured JSON when deployed, readable lines in a terminal."""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
import time
from typing import Any, TextIO, cast

from . import fast
from .json_text import compact_encoder, string
from .request_line import TRACE_KEY, RequestLine, is_request_line

_configured = False
_lock = threading.Lock()
REQUEST_LOG = logging.getLogger("facts.requests")


_JSON_LINE = compact_encoder(default=str)


def rfc3339_utc(created: float) -> str:
    """`created` (seconds since the epoch) as Cloud Logging's `time` field reads it: RFC 3339 in UTC
    with microseconds, "2026-12-04T15:36:23.123456Z" (the microsecond rounded as datetime does)."""
    seconds = int(created)
    micros = round((created - seconds) * 1_000_000)
    if micros == 1_000_000:
        seconds, micros = seconds + 1, 0
    return f"{_utc_second(seconds)}.{micros:06d}Z"


@functools.lru_cache(maxsize=4)
def _utc_second(seconds: int) -> str:
    # The lines of one second share it: formatted once, not for every line.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


class CloudJsonFormatter(logging.Formatter):
    """One JSON object per line with the fields Cloud Logging reads: severity, message, time (when
    the record was made, not when the line reached the log) and trace."""

    _OWN_KEYS = frozenset(("severity", "message", "logger", "time"))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # By level and logger name: the JSON text before and after the message.
        self._around: dict[tuple[str, str], tuple[str, str]] = {}

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        if fields and self._merges(fields):
            return self._format_merged(record, fields)
        message = record.getMessage()
        if record.exc_info:
            message = f"{message}\n{self.formatException(record.exc_info)}"
        return self._line(record.levelname, record.name, message, record.created, fields)

    def format_fields(self, levelname: str, name: str, message: str, created: float, fields: Any) -> str | None:
        """The line `format` writes for a record of these with no traceback, made without the record
        (None: fields that name one of the first four, which only a record's own line merges)."""
        if self._merges(fields):
            return None
        return self._line(levelname, name, message, created, fields)

    def _merges(self, fields: Any) -> bool:
        """Whether `fields` must be merged into the line's first four keys (`_format_merged`)
        rather than spliced in after them: not a plain dict, or naming one of them."""
        return type(fields) is not dict or not self._OWN_KEYS.isdisjoint(fields)

    def _line(self, levelname: str, name: str, message: str, created: float, fields: Any) -> str:
        around = self._around.get((levelname, name))
        if around is None:
            around = self._around[levelname, name] = (
                f'{{"severity":{string(levelname)},"message":',
                f',"logger":{string(name)},"time":"',
            )
        head = around[0] + string(message) + around[1] + rfc3339_utc(created) + '"'
        # The fields' object spliced in after the first four: one dict encoded, not a merged copy.
        return head + "," + _JSON_LINE(fields)[1:] if fields else head + "}"

    def _format_merged(self, record: logging.LogRecord, fields: Any) -> str:
        """Fields that name one of the first four replace it (an unusual record: a slower path)."""
        entry: dict[str, object] = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
            "time": rfc3339_utc(record.created),
        }
        entry.update(fields)
        if record.exc_info:
            entry["message"] = f"{entry['message']}\n{self.formatException(record.exc_info)}"
        return _JSON_LINE(entry)


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        return self.format_fields(record.levelname, record.name, record.getMessage(), record.created, fields)

    def format_fields(self, levelname: str, name: str, message: str, created: float, fields: Any) -> str:
        """The line `format` writes for a record of these, made without the record."""
        # As formatTime(record, "%H:%M:%S") writes the time.
        clock = time.strftime("%H:%M:%S", self.converter(created))
        if is_request_line(fields):
            cache = f" cache={fields['cache']}" if fields.get("cache") else ""
            return (
                f"{clock} {fields['method']} {fields['path']} -> {fields['status']}"
                f" {fields['latency_ms']:.1f} ms [{fields['function']}]{cache}"
            )
        return f"{clock} {levelname.lower()} {message}"


class LineHandler(logging.StreamHandler):
    """Each record written to the stream and flushed on the thread that logs it, before the
    request it belongs to is answered.

    Nothing is kept for later: on Cloud Run with request-based billing an instance gets no CPU
    once it has answered, so a line left for a background thread arrives late or never. (The
    stdlib's StreamHandler does exactly this; the name says why we rely on it.)
    """

    def __init__(self, stream: TextIO, formatter: logging.Formatter) -> None:
        super().__init__(stream)
        self.setFormatter(formatter)


def request_record(
    logger: logging.Logger, msg: str, args: tuple[Any, ...], fields: dict[str, Any]
) -> logging.LogRecord:
    """The record `logger.info(msg, *args, extra={"fields": fields})` makes, with this module as its
    origin (the caller's stack is not walked)."""
    return logger.makeRecord(logger.name, logging.INFO, __file__, 0, msg, args, None, None, {"fields": fields})


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
        handler: LineHandler | None = None
        for name in ("facts", "shared"):
            logger = logging.getLogger(name)
            logger.setLevel(os.environ.get("FACTS_LOG_LEVEL", "INFO").upper())
            if not handles_level(logger):
                handler = handler or _our_handler()
                logger.addHandler(handler)
        _configured = True


def _our_handler() -> LineHandler:
    wanted = os.environ.get("FACTS_LOG_FORMAT", "").lower()
    use_json = wanted == "json" or (wanted != "text" and not sys.stderr.isatty())
    return LineHandler(sys.stdout if use_json else sys.stderr, CloudJsonFormatter() if use_json else ConsoleFormatter())


def trace_id(header: str | None) -> str | None:
    """The trace of `X-Cloud-Trace-Context: TRACE/SPAN;o=1`, as Cloud Logging wants it (None: no
    usable trace in the header)."""
    if not header:
        return None
    trace = header.split("/", 1)[0].strip()
    if not trace or not all(c in "0123456789abcdefABCDEF" for c in trace) or len(trace) > 32:
        return None
    project = os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("GCP_PROJECT")
    return f"projects/{project}/traces/{trace}" if project else trace


def log_request(
    function: str,
    method: str,
    path: str,
    status: int,
    started: float,
    *,
    cache: str | None = None,
    trace_header: str | None = None,
    logger: logging.Logger = REQUEST_LOG,
) -> None:
    """Log the request line of a request answered with `status`, `started` at time.perf_counter():
    the one maker of a line, for the functions and the harness alike."""
    if not logger.isEnabledFor(logging.INFO):
        return
    line: RequestLine = {
        "function": function,
        "method": method,
        "path": path,
        "status": status,
        # Milliseconds in hundredths, as round(x, 2) gives them, with integer arithmetic instead.
        "latency_ms": int((time.perf_counter() - started) * 100_000 + 0.5) / 100,
    }
    if cache:
        line["cache"] = cache
    if trace_header and (trace := trace_id(trace_header)):
        line[TRACE_KEY] = trace
    args, fields = (method, path, status), cast("dict[str, Any]", line)
    write = fast.line_writer(logger, LineHandler, __file__)
    if write is None or not write("%s %s %s", args, fields):
        logger.handle(request_record(logger, "%s %s %s", args, fields))
