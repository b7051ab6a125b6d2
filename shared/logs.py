"""Request logs: Cloud Logging's structured JSON when deployed, readable lines in a terminal."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading

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
        handler = logging.StreamHandler(sys.stdout if use_json else sys.stderr)
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
