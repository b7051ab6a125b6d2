"""Logs: one structured line per request that Cloud Logging can read, readable text in a terminal."""

from __future__ import annotations

import json
import logging

from shared import logs

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


def test_warnings_keep_their_severity():
    record = logging.LogRecord("shared.cache", logging.WARNING, __file__, 1, "Redis unavailable", None, None)
    assert json.loads(logs.CloudJsonFormatter().format(record))["severity"] == "WARNING"


def test_terminal_lines_are_readable(random_client):
    with captured_logs() as records:
        random_client.get("/?language=de")
    line = logs.ConsoleFormatter().format(_request_records(records)[0])
    assert "GET / -> 200" in line and "[random_fact]" in line and " ms " in line


def test_lines_reach_the_log_within_the_flush_interval(tmp_path):
    import time

    path = tmp_path / "out.log"
    logger = logging.getLogger("facts.test-batching")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    with open(path, "w", buffering=64 * 1024) as stream:
        handler = logs.BatchingStreamHandler(stream, interval_s=0.05)
        handler.setFormatter(logs.CloudJsonFormatter())
        logger.addHandler(handler)
        try:
            logger.info("written by a request")
            deadline = time.monotonic() + 5
            while "written by a request" not in path.read_text() and time.monotonic() < deadline:
                time.sleep(0.01)
            assert json.loads(path.read_text().splitlines()[0])["message"] == "written by a request"
        finally:
            logger.removeHandler(handler)
