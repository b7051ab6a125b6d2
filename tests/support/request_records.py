"""Request lines as LogRecords: one as the functions log it, for the live log's ring (devharness/livelog.py),
and the Cloud Run platform's own lines among captured records."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any


def request_record(n: int, logger: str = "facts.requests", **fields: Any) -> logging.LogRecord:
    record = logging.LogRecord(logger, logging.INFO, __file__, 1, "GET /random 200", None, None)
    record.fields = {"function": "random_fact", "method": "GET", "path": f"/random?n={n}", "status": 200,
                     "latency_ms": float(n), **fields}  # fmt: skip
    return record


def cloud_run_events(records: Iterable[logging.LogRecord]) -> list[tuple[str, str]]:
    """The platform's own lines among `records` (function "cloud-run"): each one's kind and text."""
    fields = [getattr(record, "fields", {}) for record in records]
    return [(line["method"], line["path"]) for line in fields if line.get("function") == "cloud-run"]
