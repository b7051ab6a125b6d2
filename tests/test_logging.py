"""Logs: one structured line per request that Cloud Logging can read, readable text in a terminal.

Records reach pytest's caplog like any library's (our loggers propagate); the stream our own
handler writes is tested here directly and, through real processes, in test_harness.py and
test_deployment.py (exactly one line per request).
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta

import pytest

from devkit.servers.ports import free_port
from shared import instance, logs

from .support.streams import FailsFirstWrite

# Cloud Logging's `time`: RFC 3339, UTC, with microseconds.
_RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def _request_records(records):
    return [r for r in records if r.name == "facts.requests"]


def test_request_line_in_cloud_logging_json(today_client, monkeypatch, caplog):
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "demo-project")
    today_client.get("/", headers={"X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/1;o=1"})
    today_client.get("/")
    first, second = _request_records(caplog.records)
    entry = json.loads(logs.CloudJsonFormatter().format(first))
    assert entry["severity"] == "INFO"
    assert entry["message"] == "GET / 200"
    assert entry["logging.googleapis.com/trace"] == "projects/demo-project/traces/105445aa7843bc8bf206b12000100000"
    assert (entry["function"], entry["status"], entry["cache"]) == ("today_fact", 200, "miss")
    assert isinstance(entry["latency_ms"], float) and entry["latency_ms"] >= 0
    assert json.loads(logs.CloudJsonFormatter().format(second))["cache"] == "hit"


def test_malformed_trace_header_is_left_out(random_client, caplog):
    random_client.get("/", headers={"X-Cloud-Trace-Context": "not/a trace"})
    entry = json.loads(logs.CloudJsonFormatter().format(_request_records(caplog.records)[0]))
    assert "logging.googleapis.com/trace" not in entry


@pytest.mark.usefixtures("fresh_instance")
def test_warnings_keep_their_severity(monkeypatch, servers, today_client, caplog):
    """A real warning (Redis unreachable: nothing listens on its port) is a WARNING in both formats."""
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    instance.reset()
    assert today_client.get("/").status_code == 200
    warnings = [r for r in caplog.records if "Redis unavailable" in r.getMessage()]
    assert len(warnings) == 1
    assert json.loads(logs.CloudJsonFormatter().format(warnings[0]))["severity"] == "WARNING"
    assert logs.ConsoleFormatter().format(warnings[0]).split(" ", 2)[1] == "warning"


def test_terminal_lines_are_readable(random_client, caplog):
    random_client.get("/?language=de")
    line = logs.ConsoleFormatter().format(_request_records(caplog.records)[0])
    assert "GET / -> 200" in line and "[random_fact]" in line and " ms " in line


def test_our_handler_is_added_only_where_no_handler_takes_the_level():
    parent = logging.getLogger("facts-test-handles")
    child = logging.getLogger("facts-test-handles.child")
    parent.propagate = False  # the root logger (pytest's handlers) out of the way
    child.setLevel(logging.INFO)
    try:
        assert not logs.handles_level(child)
        quiet = logging.NullHandler(logging.ERROR)  # takes fewer records than the child emits
        parent.addHandler(quiet)
        assert not logs.handles_level(child)
        parent.addHandler(logging.NullHandler(logging.INFO))
        assert logs.handles_level(child)
        child.propagate = False
        assert not logs.handles_level(child)
    finally:
        parent.handlers.clear()
        parent.propagate = child.propagate = True
    assert logs.handles_level(logging.getLogger("facts")), "pytest's handlers on the root logger take our lines"


class _RecordingStream(io.StringIO):
    """A stream that remembers which threads wrote to it and what it held when last flushed."""

    def __init__(self) -> None:
        super().__init__()
        self.writers: set[str] = set()
        self.flushed_text = ""

    def write(self, text: str) -> int:
        self.writers.add(threading.current_thread().name)
        return super().write(text)

    def flush(self) -> None:
        self.flushed_text = self.getvalue()


@contextmanager
def _our_handler(
    stream, formatter: logging.Formatter | None = None
) -> Iterator[tuple[logging.Logger, logs.LineHandler]]:
    logger = logging.getLogger("facts-test-handler")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = logs.LineHandler(stream, formatter or logs.CloudJsonFormatter())
    logger.addHandler(handler)
    try:
        yield logger, handler
    finally:
        logger.removeHandler(handler)
        handler.close()


def test_a_line_is_written_and_flushed_by_the_logging_thread_before_logging_returns():
    # On Cloud Run an instance has no CPU once it has answered: a line must not wait for anything.
    stream = _RecordingStream()
    threads_before = set(threading.enumerate())
    with _our_handler(stream) as (logger, _):
        for n in range(3):
            logger.info("line %d", n)
            assert [json.loads(line)["message"] for line in stream.flushed_text.splitlines()] == [
                f"line {k}" for k in range(n + 1)
            ]
        started = set(threading.enumerate()) - threads_before
    assert stream.writers == {threading.current_thread().name}
    assert not started, f"the handler started threads: {started}"


def _one_line_through_our_handler(formatter: logging.Formatter, log: Callable[[logging.Logger], None]) -> str:
    """What our handler writes for the records `log` makes on a real logger (the formatter's own output)."""
    stream = io.StringIO()
    with _our_handler(stream, formatter) as (logger, _):
        log(logger)
    return stream.getvalue()


def test_a_json_line_holds_the_fields_cloud_logging_reads_and_nothing_escaped():
    fields = {"status": 200, "day": date(2026, 1, 2)}  # a value JSON has no type for is written as text
    text = _one_line_through_our_handler(
        logs.CloudJsonFormatter(), lambda logger: logger.warning("café %s", "ouvert", extra={"fields": fields})
    )
    assert text.endswith("\n") and text.count("\n") == 1
    assert "café" in text  # UTF-8 as is: Cloud Logging shows \u00e9 escapes literally
    entry = json.loads(text)
    assert _RFC3339_UTC.fullmatch(entry.pop("time"))
    assert entry == {
        "severity": "WARNING",
        "message": "café ouvert",
        "logger": "facts-test-handler",
        "status": 200,
        "day": "2026-01-02",
    }


def test_a_json_line_of_an_error_carries_its_traceback_in_the_message():
    def fail(logger: logging.Logger) -> None:
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            logger.exception("the import failed")

    entry = json.loads(_one_line_through_our_handler(logs.CloudJsonFormatter(), fail))
    assert entry["severity"] == "ERROR"
    first, *rest = entry["message"].splitlines()
    assert first == "the import failed"
    assert rest[0] == "Traceback (most recent call last):" and rest[-1] == "ZeroDivisionError: division by zero"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"method": "GET", "path": "/today", "status": 200, "latency_ms": 3.14159, "function": "today_fact",
             "cache": "hit"},
            "GET /today -> 200 3.1 ms [today_fact] cache=hit",
        ),
        (
            {"method": "HEAD", "path": "/random", "status": 404, "latency_ms": 12.0, "function": "random_fact"},
            "HEAD /random -> 404 12.0 ms [random_fact]",
        ),
        ({"note": "no status: not a request line"}, "warning Redis unavailable"),
    ],
)  # fmt: skip
def test_a_terminal_line_is_the_time_then_the_request_or_the_level_and_message(fields, expected):
    text = _one_line_through_our_handler(
        logs.ConsoleFormatter(), lambda logger: logger.warning("Redis unavailable", extra={"fields": fields})
    )
    assert re.fullmatch(r"\d\d:\d\d:\d\d " + re.escape(expected) + "\n", text), text


@pytest.mark.parametrize(
    ("header", "environ", "expected"),
    [
        ("105445aa7843bc8bf206b12000100000/1;o=1", {"GOOGLE_CLOUD_PROJECT": "demo"},
         "projects/demo/traces/105445aa7843bc8bf206b12000100000"),
        ("0AF7651916CD43DD8448EB211C80319C/1", {"GCP_PROJECT": "legacy"},  # the older runtimes' variable
         "projects/legacy/traces/0AF7651916CD43DD8448EB211C80319C"),
        ("0af7651916cd43dd8448eb211c80319c/1/2", {}, "0af7651916cd43dd8448eb211c80319c"),  # no project: the id alone
        ("0af7651916cd43dd8448eb211c80319c0/1", {}, None),  # 33 digits: longer than a trace id
        ("XX/1", {}, None),
        ("/1;o=1", {}, None),
        ("", {}, None),
    ],
)  # fmt: skip
def test_the_trace_field_comes_from_the_cloud_trace_header(monkeypatch, header, environ, expected):
    for name in ("GOOGLE_CLOUD_PROJECT", "GCP_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert logs.trace_id(header) == (expected or None)


class _Terminal(io.StringIO):
    def __init__(self, is_terminal: bool) -> None:
        super().__init__()
        self.is_terminal = is_terminal

    def isatty(self) -> bool:
        return self.is_terminal


@pytest.fixture
def unconfigured(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Our loggers as a fresh process finds them, and put back after. (The test itself takes the
    root logger's handlers away: pytest adds its own to it when the test's call begins.)"""
    monkeypatch.setattr(logs, "_configured", False)
    ours = [logging.getLogger(name) for name in ("facts", "shared")]
    saved = [(logger, logger.handlers[:], logger.level) for logger in ours]
    yield
    for logger, handlers, level in saved:
        for handler in logger.handlers:
            if handler not in handlers:
                handler.close()
        logger.handlers[:] = handlers
        logger.setLevel(level)


def _as_a_fresh_process(monkeypatch: pytest.MonkeyPatch, stderr_is_terminal: bool) -> tuple[_Terminal, _Terminal]:
    """No handler on the root logger (nobody configured logging), and stdout and stderr to read back."""
    monkeypatch.setattr(logging.root, "handlers", [])
    out, err = _Terminal(False), _Terminal(stderr_is_terminal)
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.setattr("sys.stderr", err)
    return out, err


@pytest.mark.usefixtures("unconfigured")
@pytest.mark.parametrize(
    ("wanted", "stderr_is_terminal", "json_on_stdout"),
    [("json", True, True), ("JSON", True, True), ("text", False, False), ("", False, True), ("", True, False)],
)
def test_configure_adds_one_handler_for_our_loggers_in_the_format_asked_for_once(
    monkeypatch, wanted, stderr_is_terminal, json_on_stdout
):
    out, err = _as_a_fresh_process(monkeypatch, stderr_is_terminal)
    monkeypatch.setenv("FACTS_LOG_FORMAT", wanted)
    monkeypatch.setenv("FACTS_LOG_LEVEL", "warning")
    logs.configure()
    facts, shared = logging.getLogger("facts"), logging.getLogger("shared")
    assert facts.level == shared.level == logging.WARNING
    [handler] = facts.handlers
    assert shared.handlers == [handler]

    monkeypatch.setenv("FACTS_LOG_LEVEL", "error")
    logs.configure()  # once per process: nothing changes
    assert facts.handlers == [handler] and facts.level == logging.WARNING

    logging.getLogger("facts.requests").info("below the level: not written")
    logging.getLogger("shared.web").warning("database unavailable")
    written, untouched = (out, err) if json_on_stdout else (err, out)
    assert untouched.getvalue() == ""
    if json_on_stdout:
        entry = json.loads(written.getvalue())
        assert _RFC3339_UTC.fullmatch(entry.pop("time"))
        assert entry == {
            "severity": "WARNING",
            "message": "database unavailable",
            "logger": "shared.web",
        }
    else:
        assert re.fullmatch(r"\d\d:\d\d:\d\d warning database unavailable\n", written.getvalue())


def test_closing_twice_is_harmless():
    # logging.shutdown closes every handler at exit, after whoever closed it before.
    stream = _RecordingStream()
    with _our_handler(stream) as (logger, handler):
        logger.info("before the close")
        handler.close()
        written = stream.getvalue()
        handler.close()
    assert [json.loads(line)["message"] for line in written.splitlines()] == ["before the close"]
    assert stream.getvalue() == written, "a close wrote something"


def test_a_failing_stream_is_reported_on_stderr_and_the_next_lines_still_go_out(capsys):
    class _FailingOnce(FailsFirstWrite, _RecordingStream):
        pass

    stream = _FailingOnce()
    with _our_handler(stream) as (logger, _):
        logger.info("lost with the failed write")
        assert stream.failed
        reported = capsys.readouterr().err
        logger.info("written after it")
        assert [json.loads(line)["message"] for line in stream.flushed_text.splitlines()] == ["written after it"]
    assert "--- Logging error ---" in reported and "OSError: disk full" in reported
    assert "Message: 'lost with the failed write'" in reported


# A gunicorn worker is a fork of a process with threads: Python 3.12 warns of it; the test means it.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded, use of fork:DeprecationWarning")
def test_a_forked_child_writes_its_own_lines_and_only_those():
    # gunicorn forks its workers from the process that imported the app: nothing the parent logged
    # may be written again by a child.
    read_end, write_end = os.pipe()
    with open(write_end, "w", encoding="utf-8") as pipe, _our_handler(pipe) as (logger, _):
        logger.info("written by the parent")
        child = os.fork()
        if child == 0:  # pragma: no cover - the child process
            logger.info("written in the child")
            os._exit(0)  # no flush, no close: the line is out already
        _, status = os.waitpid(child, 0)
    with open(read_end, encoding="utf-8") as pipe:
        lines = pipe.read().splitlines()
    assert os.waitstatus_to_exitcode(status) == 0
    assert [json.loads(line)["message"] for line in lines] == ["written by the parent", "written in the child"]


@pytest.mark.usefixtures("unconfigured")
def test_configure_with_nothing_set_writes_info_and_up_as_json_when_stderr_is_no_terminal(monkeypatch):
    out, err = _as_a_fresh_process(monkeypatch, stderr_is_terminal=False)
    monkeypatch.delenv("FACTS_LOG_FORMAT", raising=False)
    monkeypatch.delenv("FACTS_LOG_LEVEL", raising=False)
    logs.configure()
    facts = logging.getLogger("facts")
    assert facts.level == logging.INFO
    logging.getLogger("facts.requests").info("GET / 200")
    assert json.loads(out.getvalue())["message"] == "GET / 200"
    assert err.getvalue() == ""


def _made_by_logging(logger: logging.Logger, args: tuple, fields: dict) -> logging.LogRecord:
    return logger.makeRecord(
        logger.name, logging.INFO, logs.__file__, 0, "%s %s %s", args, None, None, {"fields": fields}
    )


# A moment whose milliseconds a rounding error would change (700.4 ms), as logging reads the time:
# time.time() before Python 3.13, time.time_ns() since.
FROZEN_NS = 1_700_000_000_700_400_000


def _freeze_the_clock(monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setattr(time, "time_ns", lambda: FROZEN_NS)
    monkeypatch.setattr(time, "time", lambda: FROZEN_NS / 1e9)
    return FROZEN_NS / 1e9


def test_a_request_record_is_the_record_logger_info_would_make(monkeypatch):
    now = _freeze_the_clock(monkeypatch)  # both records made at one moment: their times compare exactly
    logger = logging.getLogger("facts.requests")
    fields, args = {"status": 200}, ("GET", "/", 200)
    made: dict[str, logging.LogRecord] = {}

    def on_a_named_thread() -> None:
        made["ours"], made["theirs"] = (
            logs.request_record(logger, "%s %s %s", args, fields),
            _made_by_logging(logger, args, fields),
        )

    thread = threading.Thread(target=on_a_named_thread, name="request-thread-7")
    thread.start()
    thread.join(10)
    ours, theirs = made["ours"], made["theirs"]
    assert type(ours) is logging.LogRecord and ours.getMessage() == "GET / 200"
    assert vars(ours) == vars(theirs)  # every attribute, times, thread and process included, the same
    assert ours.threadName == "request-thread-7" and ours.fields is fields
    assert (ours.created, ours.msecs) == (now, 700)


def test_a_record_factory_the_host_set_makes_the_request_records():
    base = logging.getLogRecordFactory()

    made: list[logging.LogRecord] = []

    def marking(*args: object, **kwargs: object) -> logging.LogRecord:
        record = base(*args, **kwargs)
        record.marked_by_host = True
        made.append(record)
        return record

    logging.setLogRecordFactory(marking)
    try:
        record = logs.request_record(logging.getLogger("facts.requests"), "%s", ("x",), {"status": 200})
    finally:
        logging.setLogRecordFactory(base)
    assert made == [record]  # the host's factory made it, once, and it is the one returned
    assert record.marked_by_host and record.fields == {"status": 200} and record.getMessage() == "x"
    assert (record.name, record.levelno, record.pathname) == ("facts.requests", logging.INFO, logs.__file__)


# A gunicorn worker is a fork of a process with threads: Python 3.12 warns of it; the test means it.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded, use of fork:DeprecationWarning")
def test_a_forked_worker_makes_request_records_of_its_own_process():
    logger = logging.getLogger("facts.requests")
    assert logs.request_record(logger, "%s", ("parent",), {}).process == os.getpid()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        try:
            os.write(write, str(logs.request_record(logger, "%s", ("child",), {}).process).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        reported = pipe.read()
    os.waitpid(child, 0)
    assert int(reported) == child


@pytest.mark.parametrize(
    "fields",
    [
        None,
        {},
        {"function": "random_fact", "path": '/é"\\\n', "status": 200, "latency_ms": 1.5, "day": date(2024, 2, 29)},
        {"message": "a field named like the line's own", "n": 1},  # the field wins, as it always did
        {"time": "a field named like the line's time"},
        [("pairs", "not a dict")],
    ],
)
def test_a_json_line_is_severity_message_logger_then_the_records_fields(fields):
    record = logging.makeLogRecord(
        {"name": "facts.test", "levelno": logging.WARNING, "levelname": "WARNING", "msg": "m %s", "args": ("é",)}
    )
    if fields is not None:
        record.fields = fields
    line = logs.CloudJsonFormatter().format(record)
    stamp = logs.rfc3339_utc(record.created)
    expected = {"severity": "WARNING", "message": "m é", "logger": "facts.test", "time": stamp, **dict(fields or {})}
    parsed = json.loads(line)
    assert parsed == json.loads(json.dumps(expected, default=str))
    assert list(parsed) == list(expected)  # in that order
    assert line.count('"message":') == line.count('"time":') == 1  # each key once: JSON readers differ on repeated keys
    assert "\n" not in line


@pytest.mark.parametrize(
    ("fields", "first_line"),
    [({"status": 500}, "failed"), ({"status": 500, "message": "a field's message"}, "a field's message")],
)
def test_a_json_line_with_fields_and_an_error_carries_the_traceback(fields, first_line):
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        record = logging.getLogger("facts.test").makeRecord(
            "facts.test", logging.ERROR, __file__, 1, "failed", (), sys.exc_info(), None, {"fields": fields}
        )
    entry = json.loads(logs.CloudJsonFormatter().format(record))
    assert entry["status"] == 500
    assert entry["message"].startswith(first_line + "\nTraceback") and entry["message"].endswith("division by zero")


def test_one_json_formatter_names_each_records_own_logger_and_severity():
    formatter = logs.CloudJsonFormatter()
    seen = []
    for name, level in [("facts.a", "INFO"), ("facts.b", "INFO"), ("facts.a", "WARNING"), ("facts.a", "INFO")]:
        record = logging.makeLogRecord({"name": name, "levelname": level, "msg": "m"})
        entry = json.loads(formatter.format(record))
        seen.append((entry["logger"], entry["severity"]))
    assert seen == [("facts.a", "INFO"), ("facts.b", "INFO"), ("facts.a", "WARNING"), ("facts.a", "INFO")]


# The milliseconds are cut, never rounded (a rounded .9995 would read 1000, the next second's).
@pytest.mark.parametrize(("now", "msecs"), [(1_700_000_000.0, 0), (1_700_000_000.7004, 700), (1_700_000_000.9995, 999)])
def test_a_request_records_milliseconds_are_those_of_its_time(monkeypatch, now, msecs):
    monkeypatch.setattr(logs.time, "time", lambda: now)
    record = logs.request_record(logging.getLogger("facts.requests"), "%s", ("x",), {})
    assert record.created == now
    assert record.msecs == msecs


def test_a_json_line_carries_the_time_its_record_was_made(monkeypatch):
    """Cloud Logging dates a line by its `time` field; without it, by when the line arrived."""
    made: list[logging.LogRecord] = []
    stream = io.StringIO()
    with _our_handler(stream) as (logger, handler):
        handler.addFilter(lambda record: made.append(record) or True)
        logger.info("dated")
        time.sleep(0.05)  # a line dated when written would be this much later
        logger.info("dated too")
    for line, record in zip(stream.getvalue().splitlines(), made, strict=True):
        stamp = json.loads(line)["time"]
        assert _RFC3339_UTC.fullmatch(stamp), stamp
        parsed = datetime.fromisoformat(stamp)
        assert parsed.utcoffset() == timedelta(0)
        assert parsed == datetime.fromtimestamp(record.created, UTC)  # to the microsecond


@pytest.mark.parametrize(
    ("created", "expected"),
    [
        (0.0, "1970-01-01T00:00:00.000000Z"),
        (1_796_398_583.123456, "2026-12-04T15:36:23.123456Z"),
        (1_796_398_583.9999997, "2026-12-04T15:36:24.000000Z"),  # rounds up into the next second
        (1_796_398_583.0000004, "2026-12-04T15:36:23.000000Z"),
        (951_782_400.5, "2000-02-29T00:00:00.500000Z"),
    ],
)
def test_the_time_field_is_rfc3339_in_utc_rounded_to_the_microsecond_as_datetime_does(created, expected):
    assert logs.rfc3339_utc(created) == expected
    assert datetime.fromisoformat(expected) == datetime.fromtimestamp(created, UTC)
