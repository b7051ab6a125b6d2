"""A request line as the functions log it, as a LogRecord for the live log's ring (devharness/livelog.py)."""

from __future__ import annotations

import logging
from typing import Any


def request_record(n: int, logger: str = "facts.requests", **fields: Any) -> logging.LogRecord:
    record = logging.LogRecord(logger, logging.INFO, __file__, 1, "GET /random 200", None, None)
    record.fields = {"function": "random_fact", "method": "GET", "path": f"/random?n={n}", "status": 200,
                     "latency_ms": float(n), **fields}  # fmt: skip
    return record
