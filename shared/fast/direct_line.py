"""A request line written straight to the one handler it would reach, without a LogRecord.

`logger.handle(record)` checks the logger's filters, walks the logger and its ancestors for
handlers, and each handler checks its own filters, takes its lock, formats, writes and flushes
(taking the lock again): on every request, for one line to one stream. Where that walk can only
end in one handler of ours (the type logs.configure() adds, a StreamHandler that takes INFO, no
filter on the way, no other handler on the logger or any ancestor it propagates to, records made
by logging.LogRecord), the line is formatted from its parts by the handler's formatter
(`format_fields`, the method its `format` uses) and written and flushed under the handler's lock,
as StreamHandler.emit does. Any other setup (pytest's caplog, a host's handlers, a filter, a record
factory) gets None here, so the stock path.

The choice is kept per logger with the state it was made in (handler lists, filters, propagation,
parents, the handler's level and formatter), compared on every line: a handler added later, or
taken away, makes the next line choose again. shape_difference() checks that a StreamHandler
still writes format(record) + terminator and flushes, under a lock it exposes.
tests/test_request_log_direct.py holds the lines equal to the stock path's.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from typing import Any

from . import _shape

# The methods of StreamHandler whose work is done here; a handler that overrides one gets the stock path.
_STOCK_METHODS = ("handle", "emit", "format", "flush", "filter")


class DirectLine:
    """Writes a logger's INFO lines straight to `handler`'s stream."""

    def __init__(self, logger: logging.Logger, handler: logging.StreamHandler[Any], pathname: str) -> None:
        self.handler = handler
        self.formatter: Any = handler.formatter
        self.name = logger.name
        self.levelname = logging.getLevelName(logging.INFO)
        self.pathname = pathname

    def __call__(self, msg: str, args: tuple[Any, ...], fields: dict[str, Any]) -> bool:
        """Write the line of `logger.info(msg, *args, extra={"fields": fields})`; False: nothing
        written, the caller takes the stock path (fields only a record's own line can carry)."""
        created = time.time()  # as LogRecord.__init__ dates a record (Python < 3.13)
        message = msg % args if args else msg  # as LogRecord.getMessage
        handler = self.handler
        handler.acquire()  # as Handler.handle, around emit
        try:
            text = self.formatter.format_fields(self.levelname, self.name, message, created, fields)
            if text is None:
                return False
            stream = handler.stream
            stream.write(text + handler.terminator)
            if stream and hasattr(stream, "flush"):  # as StreamHandler.flush
                stream.flush()
        except RecursionError:  # as StreamHandler.emit: not reported, raised
            raise
        except Exception:
            handler.handleError(self._record(msg, args, fields, created))
        finally:
            handler.release()
        return True

    def _record(self, msg: str, args: tuple[Any, ...], fields: dict[str, Any], created: float) -> logging.LogRecord:
        """The record handleError reports (made only when a write failed)."""
        record = logging.LogRecord(self.name, logging.INFO, self.pathname, 0, msg, args, None)
        record.created, record.fields = created, fields
        return record


def _chain(logger: logging.Logger) -> list[logging.Logger]:
    """The logger and each ancestor its records propagate to, as Logger.callHandlers walks them."""
    chain: list[logging.Logger] = []
    current: logging.Logger | None = logger
    while current is not None:
        chain.append(current)
        current = current.parent if current.propagate else None
    return chain


class _Choice:
    """The choice for one logger, and the state it was made in, checked again on every line: a
    handler or filter added or taken away (in place or not), a propagation or parent changed, the
    one handler's level, filters or formatter changed, or a record factory set makes the next line
    choose again. (Plain attribute reads and list comparisons, cheap beside what they skip.)"""

    __slots__ = ("factory", "filters", "handler", "handler_state", "links", "logger", "writer")

    def __init__(self, logger: logging.Logger, handler_type: type[logging.StreamHandler[Any]], pathname: str) -> None:
        chain = _chain(logger)
        self.logger, self.filters, self.factory = logger, [*logger.filters], logging.getLogRecordFactory()
        self.links = [(current, [*current.handlers], current.propagate, current.parent) for current in chain]
        handlers = [handler for current in chain for handler in current.handlers]
        self.handler = handlers[0] if len(handlers) == 1 else None
        self.handler_state = self._handler_state()
        self.writer = _writer_for(logger, self.handler, handler_type, pathname)

    def _handler_state(self) -> tuple[Any, ...] | None:
        handler = self.handler  # its filters compare by identity, its formatter is compared as itself
        return None if handler is None else (handler.level, [*handler.filters], handler.formatter)

    def holds(self) -> bool:
        logger = self.logger
        if logger.disabled or logger.filters != self.filters or logging.getLogRecordFactory() is not self.factory:
            return False
        for current, handlers, propagate, parent in self.links:
            if current.handlers != handlers or current.propagate != propagate or current.parent is not parent:
                return False
        return self._handler_state() == self.handler_state


def _writer_for(
    logger: logging.Logger,
    handler: logging.Handler | None,
    handler_type: type[logging.StreamHandler[Any]],
    pathname: str,
) -> DirectLine | None:
    """The direct writer where `handler`, the only one `logger`'s records reach, is ours; else None."""
    if logger.disabled or logger.filters or logging.getLogRecordFactory() is not logging.LogRecord:
        return None
    if handler is None or type(handler) is not handler_type or not isinstance(handler, logging.StreamHandler):
        return None
    if handler.level > logging.INFO or handler.filters:
        return None
    if any(getattr(handler_type, name) is not getattr(logging.StreamHandler, name) for name in _STOCK_METHODS):
        return None
    if not callable(getattr(handler.formatter, "format_fields", None)):
        return None
    return DirectLine(logger, handler, pathname)


_chosen: dict[logging.Logger, _Choice] = {}


def line_writer(
    logger: logging.Logger, handler_type: type[logging.StreamHandler[Any]], pathname: str
) -> Callable[[str, tuple[Any, ...], dict[str, Any]], bool] | None:
    """The direct writer of `logger`'s lines, or None where they must go through logger.handle."""
    choice = _chosen.get(logger)
    if choice is None or not choice.holds():
        choice = _chosen[logger] = _Choice(logger, handler_type, pathname)
    return choice.writer


def forget() -> None:
    _chosen.clear()


class _Flushed(io.StringIO):
    flushes = 0

    def flush(self) -> None:
        self.flushes += 1


def shape_difference() -> str | None:
    """What differs from the logging this was verified with (None: nothing we use)."""
    absent = _shape.first(
        _shape.missing_attributes(logging.StreamHandler, ("acquire", "release", "handleError", "terminator")),
        _shape.missing_attributes(logging, ("getLogRecordFactory", "getLevelName")),
    )
    if absent:
        return absent
    stream = _Flushed()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    probe = logging.Logger("shared.fast.direct_line.probe")  # not in the manager: no ancestors
    probe.addHandler(handler)
    probe.info("probe %s", "line")
    probe_state = vars(probe)
    if stream.getvalue() != "INFO probe line" + handler.terminator or stream.flushes != 1:
        return "a StreamHandler no longer writes format(record) + terminator and flushes once"
    if not all(name in probe_state for name in ("handlers", "filters", "propagate", "parent", "disabled")):
        return "a Logger keeps its handlers, filters, propagate, parent or disabled elsewhere"
    return None
