"""Logs: one structured line per request that Cloud Logging can read, readable text in a terminal."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from devservices.ports import free_port
from devservices.waiting import wait_until
from shared import instance, logs

from .support.logcapture import captured_logs


def _request_records(records):
    return [r for r in records if r.name == "facts.requests"]


def test_request_line_in_cloud_logging_json(today_client, monkeypatch):
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "demo-project")
    with captured_logs() as records:
        today_client.get("/", headers={"X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/1;o=1"})
        today_client.get("/")
    first, second = _request_records(records)
    entry = json.loads(logs.CloudJsonFormatter().format(first))
    assert entry["severity"] == "INFO"
    assert entry["message"] == "GET / 200"
    assert entry["logging.googleapis.com/trace"] == "projects/demo-project/traces/105445aa7843bc8bf206b12000100000"
    assert (entry["function"], entry["status"], entry["cache"]) == ("today_fact", 200, "miss")
    assert isinstance(entry["latency_ms"], float) and entry["latency_ms"] >= 0
    assert json.loads(logs.CloudJsonFormatter().format(second))["cache"] == "hit"


def test_malformed_trace_header_is_left_out(random_client):
    with captured_logs() as records:
        random_client.get("/", headers={"X-Cloud-Trace-Context": "not/a trace"})
    entry = json.loads(logs.CloudJsonFormatter().format(_request_records(records)[0]))
    assert "logging.googleapis.com/trace" not in entry


@pytest.mark.usefixtures("fresh_instance")
def test_warnings_keep_their_severity(monkeypatch, servers, today_client):
    """A real warning (Redis unreachable: nothing listens on its port) is a WARNING in both formats."""
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    instance.reset()
    with captured_logs() as records:
        assert today_client.get("/").status_code == 200
    warnings = [r for r in records if "Redis unavailable" in r.getMessage()]
    assert len(warnings) == 1
    assert json.loads(logs.CloudJsonFormatter().format(warnings[0]))["severity"] == "WARNING"
    assert logs.ConsoleFormatter().format(warnings[0]).split(" ", 2)[1] == "warning"


def test_terminal_lines_are_readable(random_client):
    with captured_logs() as records:
        random_client.get("/?language=de")
    line = logs.ConsoleFormatter().format(_request_records(records)[0])
    assert "GET / -> 200" in line and "[random_fact]" in line and " ms " in line


@contextmanager
def _batching_logger(path: Path, interval_s: float) -> Iterator[tuple[logging.Logger, logs.BatchingStreamHandler]]:
    logger = logging.getLogger("facts.test-batching")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    with open(path, "w", buffering=64 * 1024) as stream:
        handler = logs.BatchingStreamHandler(stream, interval_s=interval_s)
        handler.setFormatter(logs.CloudJsonFormatter())
        logger.addHandler(handler)
        try:
            yield logger, handler
        finally:
            logger.removeHandler(handler)


def test_request_threads_only_buffer_their_lines(tmp_path):
    path = tmp_path / "out.log"
    with _batching_logger(path, interval_s=3600) as (logger, handler):
        logger.info("written by a request")
        handler.flush()  # what logging calls after every record: deferred to the flushing thread
        assert path.read_text() == "", "the request thread wrote the line itself"
        handler.flush_now()
        assert json.loads(path.read_text())["message"] == "written by a request"


def test_lines_reach_the_log_within_the_flush_interval(tmp_path):
    interval_s = 0.5
    margin_s = 1.5  # the flushing thread's wake-up on a loaded machine
    path = tmp_path / "out.log"
    with _batching_logger(path, interval_s) as (logger, _):
        logger.info("written by a request")

        def written():
            assert json.loads(path.read_text().splitlines()[0])["message"] == "written by a request"

        wait_until(written, interval_s + margin_s, "the line to reach the file")
