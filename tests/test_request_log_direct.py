"""The request line written straight to our handler's stream (shared/fast/direct_line.py): the
same bytes as the stock path's, and the stock path again wherever anything else could see the record.

Our loggers propagate to the root logger, which holds pytest's handlers here: these tests log to a
logger of their own that does not propagate, with our handler on it, as logs.configure() sets up
a deployed instance's.
"""

from __future__ import annotations

import io
import json
import logging
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from shared import fast, logs

from .support.streams import FailsFirstWrite

CREATED = 1_796_398_583.123456  # 2026-12-04T15:36:23.123456Z
REQUESTS = [
    {"function": "random_fact", "method": "GET", "path": "/", "status": 200},
    {"function": "today_fact", "method": "GET", "path": "/today", "status": 200, "cache": "hit"},
    {"function": "today_fact", "method": "HEAD", "path": "/today", "status": 304, "cache": "miss",
     "trace_header": "105445aa7843bc8bf206b12000100000/1;o=1"},
    {"function": "random_fact", "method": "GET", "path": '/caf\u00e9/\u65e5\u672c"\\\n', "status": 404,
     "trace_header": "not/a trace"},
    {"function": "harness", "method": "POST", "path": "/nothing", "status": 405},
]  # fmt: skip


@pytest.fixture
def logger(monkeypatch: pytest.MonkeyPatch) -> Iterator[logging.Logger]:
    """A logger whose records end at its own handlers, at a fixed time, and with a project set."""
    monkeypatch.setattr(time, "time", lambda: CREATED)
    monkeypatch.setattr(time, "perf_counter", lambda: 2.0)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "demo-project")
    logger = logging.getLogger("facts-test-direct")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    yield logger
    logger.handlers.clear()
    logger.filters.clear()
    logger.propagate = True
    fast.reset()


def _mode(monkeypatch: pytest.MonkeyPatch, switch: str) -> None:
    monkeypatch.setenv("FACTS_FAST_PATHS", switch)
    fast.reset()


def _direct(logger: logging.Logger) -> bool:
    return fast.line_writer(logger, logs.LineHandler, logs.__file__) is not None


class _Flushed(io.StringIO):
    """Remembers what it held when last flushed."""

    flushed = ""

    def flush(self) -> None:
        self.flushed = self.getvalue()


class _WriteOnly:
    """A stream with no flush, which a StreamHandler writes to without flushing."""

    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text

    def getvalue(self) -> str:
        return self.text


def _lines(logger: logging.Logger, formatter: logging.Formatter, stream: _Flushed | _WriteOnly) -> str:
    """What our handler writes for REQUESTS, each line flushed before log_request returns where the
    stream can be flushed (on Cloud Run an instance has no CPU once it has answered)."""
    handler = logs.LineHandler(stream, formatter)  # type: ignore[arg-type]
    logger.addHandler(handler)
    try:
        for request in REQUESTS:
            logs.log_request(started=1.9876543, logger=logger, **request)
            assert getattr(stream, "flushed", stream.getvalue()) == stream.getvalue() != ""
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


@pytest.mark.parametrize("stream", [_Flushed, _WriteOnly])
@pytest.mark.parametrize("formatter", [logs.CloudJsonFormatter, logs.ConsoleFormatter])
def test_a_direct_line_is_the_line_the_stock_path_writes(monkeypatch, logger, capsys, formatter, stream) -> None:
    _mode(monkeypatch, "off")
    stock = _lines(logger, formatter(), stream())

    _mode(monkeypatch, "on")
    with monkeypatch.context() as patched:
        # The direct path, or no line: logger.handle (the stock path's door) is not used.
        patched.setattr(logger, "handle", lambda record: pytest.fail(f"the stock path took {record.msg!r}"))
        direct = _lines(logger, formatter(), stream())
    assert direct == stock
    assert capsys.readouterr().err == ""
    if formatter is logs.ConsoleFormatter:  # (which writes a path's newline as it is)
        assert direct.count(" ms [") == len(REQUESTS) and re.match(r"\d\d:\d\d:\d\d GET / -> 200 12.3 ms", direct)
    else:
        assert len(direct.splitlines()) == len(REQUESTS)
        assert '"time":"2026-12-04T15:36:23.123456Z"' in direct and '"latency_ms":12.35' in direct
        assert "projects/demo-project/traces/105445aa7843bc8bf206b12000100000" in direct


def test_a_handler_a_filter_or_a_record_factory_added_later_gets_the_stock_path_and_its_removal_the_direct(
    monkeypatch, logger
) -> None:
    _mode(monkeypatch, "on")
    stream = io.StringIO()
    logger.addHandler(logs.LineHandler(stream, logs.CloudJsonFormatter()))
    seen: list[logging.LogRecord] = []

    def log() -> None:
        logs.log_request("random_fact", "GET", "/", 200, 1.9, logger=logger)

    log()
    assert _direct(logger) and not seen
    other = logging.Handler()
    other.emit = seen.append  # type: ignore[method-assign]
    logger.addHandler(other)
    log()
    assert not _direct(logger) and [r.getMessage() for r in seen] == ["GET / 200"]
    logger.removeHandler(other)
    assert _direct(logger)

    logger.addFilter(lambda record: seen.append(record) or True)
    log()
    assert not _direct(logger) and len(seen) == 2
    logger.filters.clear()
    logger.handlers[0].addFilter(lambda record: seen.append(record) or True)  # on the handler itself
    log()
    assert not _direct(logger) and len(seen) == 3
    logger.handlers[0].filters.clear()

    base = logging.getLogRecordFactory()

    def marking(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        seen.append(record)
        return record

    logging.setLogRecordFactory(marking)
    try:
        log()
        assert not _direct(logger) and len(seen) == 4
    finally:
        logging.setLogRecordFactory(base)
    log()
    assert _direct(logger) and len(seen) == 4
    assert stream.getvalue().count("\n") == 6  # every line written once, by whichever path


def test_records_that_reach_an_ancestors_handler_or_a_quieter_handler_get_the_stock_path(monkeypatch, logger) -> None:
    _mode(monkeypatch, "on")
    handler = logs.LineHandler(io.StringIO(), logs.CloudJsonFormatter())
    logger.addHandler(handler)
    assert _direct(logger)
    logger.propagate = True  # the root logger holds pytest's handlers
    assert not _direct(logger)
    logger.propagate = False
    handler.setLevel(logging.WARNING)
    assert not _direct(logger)
    handler.setLevel(logging.INFO)  # takes the request lines still
    assert _direct(logger)
    handler.setLevel(logging.NOTSET)
    assert _direct(logger)
    assert not fast.line_writer(logs.REQUEST_LOG, logs.LineHandler, logs.__file__), "caplog's handlers see our lines"


def test_a_failing_stream_is_reported_as_the_stock_path_reports_it_and_the_next_line_goes_out(
    monkeypatch, logger, capsys
) -> None:
    """handleError is logging's place to report a failed write: it gets the stock path's record
    from either path, its origin (this module's file, as logger.info's) included."""

    def reported(switch: str) -> logging.LogRecord:
        _mode(monkeypatch, switch)
        stream, records = FailsFirstWrite(), []
        handler = logs.LineHandler(stream, logs.CloudJsonFormatter())

        def handle_error(record: logging.LogRecord) -> None:
            records.append(record)
            logging.Handler.handleError(handler, record)  # which reports it on stderr

        handler.handleError = handle_error  # type: ignore[method-assign]
        logger.addHandler(handler)
        try:
            assert _direct(logger) is (switch == "on")
            logs.log_request("random_fact", "GET", "/lost", 200, 1.9, logger=logger)
            report = capsys.readouterr().err
            logs.log_request("random_fact", "GET", "/written", 200, 1.9, logger=logger)
        finally:
            logger.removeHandler(handler)
        assert "--- Logging error ---" in report and "OSError: disk full" in report
        assert "Message: '%s %s %s'\nArguments: ('GET', '/lost', 200)" in report
        assert [json.loads(line)["message"] for line in stream.getvalue().splitlines()] == ["GET /written 200"]
        [record] = records
        return record

    seen = ("name", "levelno", "pathname", "filename", "module", "lineno", "funcName", "msg", "args", "fields",
            "created", "exc_info", "stack_info")  # fmt: skip
    stock, direct = reported("off"), reported("on")
    assert stock.pathname == logs.__file__ and stock.module == "logs"
    assert {name: getattr(direct, name) for name in seen} == {name: getattr(stock, name) for name in seen}


def _json_lines_of(logger: logging.Logger) -> io.StringIO:
    """The stream of our JSON handler, added to `logger`."""
    stream = io.StringIO()
    logger.addHandler(logs.LineHandler(stream, logs.CloudJsonFormatter()))
    return stream


def test_fields_only_a_records_line_can_carry_are_left_to_the_stock_path_with_nothing_written(
    monkeypatch, logger
) -> None:
    _mode(monkeypatch, "on")
    stream = _json_lines_of(logger)
    write = fast.line_writer(logger, logs.LineHandler, logs.__file__)
    assert write is not None
    assert write("%s %s %s", ("GET", "/", 200), {"message": "a field that replaces the message"}) is False
    assert stream.getvalue() == ""
    assert write("%s %s %s", ("GET", "/", 200), {"status": 200}) is True
    assert json.loads(stream.getvalue())["message"] == "GET / 200"


def test_the_writer_is_chosen_once_and_kept_until_the_handlers_formatter_changes(monkeypatch, logger) -> None:
    _mode(monkeypatch, "on")
    stream = io.StringIO()
    handler = logs.LineHandler(stream, logs.CloudJsonFormatter())
    logger.addHandler(handler)
    first = fast.line_writer(logger, logs.LineHandler, logs.__file__)
    assert first is not None
    for _ in range(3):
        logs.log_request("random_fact", "GET", "/", 200, 1.9, logger=logger)
        assert fast.line_writer(logger, logs.LineHandler, logs.__file__) is first
    handler.setFormatter(logs.ConsoleFormatter())
    again = fast.line_writer(logger, logs.LineHandler, logs.__file__)
    assert again is not None and again is not first
    logs.log_request("random_fact", "GET", "/console", 200, 1.9, logger=logger)
    assert stream.getvalue().splitlines()[-1].endswith("GET /console -> 200 100.0 ms [random_fact]")


class _Teeing(logging.StreamHandler):  # type: ignore[type-arg]
    """A host's StreamHandler of its own type, whose emit does more than write."""

    def __init__(self, stream: io.StringIO, seen: list[logging.LogRecord]) -> None:
        super().__init__(stream)
        self.seen = seen

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(record)
        super().emit(record)


def test_a_handler_of_another_type_or_a_formatter_without_fields_gets_the_stock_path(monkeypatch, logger) -> None:
    _mode(monkeypatch, "on")
    stream, seen = io.StringIO(), []
    tee = _Teeing(stream, seen)
    tee.setFormatter(logs.CloudJsonFormatter())
    logger.addHandler(tee)
    logs.log_request("random_fact", "GET", "/", 200, 1.9, logger=logger)
    assert not _direct(logger) and [record.getMessage() for record in seen] == ["GET / 200"]
    logger.removeHandler(tee)

    plain = logs.LineHandler(stream, logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(plain)
    logs.log_request("random_fact", "GET", "/plain", 200, 1.9, logger=logger)
    assert not _direct(logger) and stream.getvalue().splitlines()[-1] == "INFO GET /plain 200"
