"""The one log line per request: which path, how long, and only the fields that apply."""

from __future__ import annotations

import json
import time
from typing import Any

from flask.testing import FlaskClient

from shared import logs

from .support.logcapture import captured_logs


def _request_line(client: FlaskClient, **request: Any) -> tuple[dict[str, Any], float]:
    """The request's log line as Cloud Logging gets it, and how long the call took from outside (ms)."""
    with captured_logs() as records:
        started = time.perf_counter()
        assert client.get(**request).status_code == 200
        took_ms = (time.perf_counter() - started) * 1000
    [line] = [r for r in records if r.name == "facts.requests"]
    return json.loads(logs.CloudJsonFormatter().format(line)), took_ms


def test_the_line_names_the_mounted_path_without_its_trailing_slash(today_client: FlaskClient) -> None:
    # Behind the harness the function is mounted at /today: the script root, then the function's "/".
    entry, _ = _request_line(today_client, path="/", base_url="http://localhost/today/")
    assert entry["message"] == "GET /today 200"
    assert (entry["function"], entry["method"], entry["path"], entry["status"]) == ("today_fact", "GET", "/today", 200)


def test_the_line_of_an_unmounted_function_names_the_root(random_client: FlaskClient) -> None:
    entry, _ = _request_line(random_client, path="/")
    assert entry["message"] == "GET / 200"
    assert (entry["function"], entry["path"]) == ("random_fact", "/")


def test_the_latency_is_the_request_s_own_time_in_milliseconds(random_client: FlaskClient) -> None:
    entry, took_ms = _request_line(random_client, path="/")
    latency = entry["latency_ms"]
    assert isinstance(latency, float) and round(latency, 2) == latency
    # A database round trip takes well over 10 µs, and the function's time is part of the call's.
    assert 0.01 <= latency <= took_ms


def test_only_today_names_its_cache_outcome(random_client: FlaskClient, today_client: FlaskClient) -> None:
    random_entry, _ = _request_line(random_client, path="/")
    assert "cache" not in random_entry
    today_entry, _ = _request_line(today_client, path="/")
    assert today_entry["cache"] == "miss"
