"""The one log line per request: which path, how long, and only the fields that apply."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from flask.testing import FlaskClient

from shared import logs


def _request_line(
    client: FlaskClient, caplog: pytest.LogCaptureFixture, **request: Any
) -> tuple[dict[str, Any], float]:
    """The request's log line as Cloud Logging gets it, and how long the call took from outside (ms)."""
    caplog.clear()
    started = time.perf_counter()
    assert client.get(**request).status_code == 200
    took_ms = (time.perf_counter() - started) * 1000
    [line] = [r for r in caplog.records if r.name == "facts.requests"]
    return json.loads(logs.CloudJsonFormatter().format(line)), took_ms


def test_the_line_names_the_mounted_path_without_its_trailing_slash(
    today_client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    # Behind the harness the function is mounted at /today: the script root, then the function's "/".
    entry, _ = _request_line(today_client, caplog, path="/", base_url="http://localhost/today/")
    assert entry["message"] == "GET /today 200"
    assert (entry["function"], entry["method"], entry["path"], entry["status"]) == ("today_fact", "GET", "/today", 200)


def test_the_line_of_an_unmounted_function_names_the_root(
    random_client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    entry, _ = _request_line(random_client, caplog, path="/")
    assert entry["message"] == "GET / 200"
    assert (entry["function"], entry["path"]) == ("random_fact", "/")


def test_the_latency_is_the_request_s_own_time_in_milliseconds(
    random_client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    entry, took_ms = _request_line(random_client, caplog, path="/")
    latency = entry["latency_ms"]
    assert isinstance(latency, float) and round(latency, 2) == latency
    # A database round trip takes well over 10 µs, and the function's time is part of the call's.
    assert 0.01 <= latency <= took_ms


class _Clock:
    """The `time` of handlers (the start) and logs (the end), reading given start and end
    perf_counter() values: the latency's rounding, exactly. Everything else is the real clock."""

    def __init__(self, *readings: float) -> None:
        self._readings = list(readings)

    def perf_counter(self) -> float:
        return self._readings.pop(0)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@pytest.mark.parametrize(
    ("took_s", "logged_ms"),
    [(0.001234999, 1.23), (0.0012351, 1.24), (0.0, 0.0), (2.0000049, 2000.0), (2.0000051, 2000.01)],
)
def test_the_latency_is_rounded_to_the_nearest_hundredth_of_a_millisecond(
    random_client: FlaskClient,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    took_s: float,
    logged_ms: float,
) -> None:
    from shared import handlers

    clock = _Clock(1000.0, 1000.0 + took_s)
    monkeypatch.setattr(handlers, "time", clock)
    monkeypatch.setattr(logs, "time", clock)
    entry, _ = _request_line(random_client, caplog, path="/")
    assert entry["latency_ms"] == logged_ms


def test_only_today_names_its_cache_outcome(
    random_client: FlaskClient, today_client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    random_entry, _ = _request_line(random_client, caplog, path="/")
    assert "cache" not in random_entry
    today_entry, _ = _request_line(today_client, caplog, path="/")
    assert today_entry["cache"] == "miss"
