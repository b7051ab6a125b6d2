"""Logs: one structured line per request that Cloud Logging can read, readable text in a terminal.

Records reach pytest's caplog like any library's (our loggers propagate); the stream our own
handler writes is tested here directly and, through real processes, in test_harness.py and
test_deployment.py (exactly one line per request).
"""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from devservices.ports import free_port
from devservices.waiting import wait_until
from shared import instance, logs


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


class _ThreadRecordingStream(io.StringIO):
    """A stream that remembers which threads wrote to it and whether it was flushed."""

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
def _our_handler(stream) -> Iterator[tuple[logging.Logger, logs.OffThreadStreamHandler]]:
    logger = logging.getLogger("facts-test-handler")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = logs.OffThreadStreamHandler(stream, logs.CloudJsonFormatter())
    logger.addHandler(handler)
    try:
        yield logger, handler
    finally:
        logger.removeHandler(handler)
        handler.close()


def test_request_threads_only_queue_their_lines():
    stream = _ThreadRecordingStream()
    with _our_handler(stream) as (logger, handler):
        logger.info("written by a request")
        handler.flush()
    assert json.loads(stream.getvalue())["message"] == "written by a request"
    assert threading.current_thread().name not in stream.writers, "the request thread wrote the line itself"


def test_flush_returns_once_every_queued_line_is_written_and_flushed():
    stream = _ThreadRecordingStream()
    with _our_handler(stream) as (logger, handler):
        for n in range(200):
            logger.info("line %d", n)
        handler.flush()
        lines = stream.flushed_text.splitlines()
    assert [json.loads(line)["message"] for line in lines] == [f"line {n}" for n in range(200)]


def test_lines_reach_the_stream_without_anyone_flushing():
    stream = _ThreadRecordingStream()
    with _our_handler(stream) as (logger, _):
        logger.info("written by a request")

        def flushed():
            assert json.loads(stream.flushed_text)["message"] == "written by a request"

        # The writing thread flushes once its queue is empty; 5 s is for a loaded machine.
        wait_until(flushed, 5.0, "the line to be flushed")


def test_close_writes_what_is_still_queued():
    stream = _ThreadRecordingStream()
    with _our_handler(stream) as (logger, _):
        for n in range(500):
            logger.info("line %d", n)
    assert len(stream.flushed_text.splitlines()) == 500
