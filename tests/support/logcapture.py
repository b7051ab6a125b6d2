"""Collect the records our loggers emit (they do not propagate to the root logger, so caplog misses them)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

OUR_LOGGERS = ("shared", "facts")


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def captured_logs() -> Iterator[list[logging.LogRecord]]:
    handler = _ListHandler()
    for name in OUR_LOGGERS:
        logging.getLogger(name).addHandler(handler)
    try:
        yield handler.records
    finally:
        for name in OUR_LOGGERS:
            logging.getLogger(name).removeHandler(handler)
