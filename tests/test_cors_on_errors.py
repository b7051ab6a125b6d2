"""Every error answer carries the CORS headers, as every success does: without them a page on
another origin sees only "Failed to fetch", never the error's code, message or Retry-After.

tests/browser/test_cors.py proves the headers work in Chromium; these hold every error status
(400, 404, 405, 503) to them in the plain suite, from the functions and from the harness."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import functions_framework
import pytest
from flask.testing import FlaskClient

from devkit.servers.ports import free_port
from shared import instance

from .support.harness_process import FUNCTIONS
from .support.plain_http import get as http_get

ORIGIN = {"Origin": "https://front.example"}


def _readable_error(status: int, headers: Any, body: Any, expected_status: int, code: str) -> None:
    """An error another origin's script may read: its status, its JSON body and the headers it needs."""
    assert (status, body["error"]["code"]) == (expected_status, code), body
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["Content-Type"] == "application/json; charset=utf-8"


def _function_error(response: Any, status: int, code: str) -> None:
    _readable_error(response.status_code, response.headers, response.get_json(), status, code)
    # A script reads Retry-After (and ETag) only when the answer exposes them.
    assert {"ETag", "Retry-After"} <= set(response.headers["Access-Control-Expose-Headers"].split(", "))


@pytest.fixture(params=["random_fact", "today_fact"])
def function(request: pytest.FixtureRequest, random_client: FlaskClient, today_client: FlaskClient) -> FlaskClient:
    return {"random_fact": random_client, "today_fact": today_client}[request.param]


@pytest.fixture
def fresh_function(request: pytest.FixtureRequest, servers: Any) -> Iterator[FlaskClient]:
    """A function whose instance is made after the test changes the environment, and forgotten after."""
    instance.reset()
    yield functions_framework.create_app(request.param, str(FUNCTIONS / f"{request.param}.py")).test_client()
    instance.reset()


@pytest.mark.parametrize(
    ("query", "code"), [("language=xx", "unsupported_language"), ("language=en&language=de", "invalid_parameter")]
)
def test_a_400_carries_the_cors_headers(function: FlaskClient, query: str, code: str) -> None:
    _function_error(function.get("/?" + query, headers=ORIGIN), 400, code)


@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_a_405_carries_the_cors_headers(function: FlaskClient, method: str) -> None:
    response = function.open("/", method=method, headers=ORIGIN)
    _function_error(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS"


@pytest.mark.parametrize("fresh_function", ["random_fact", "today_fact"], indirect=True)
def test_a_404_carries_the_cors_headers(fresh_function: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACTS_LANGUAGES", "en,de,fr")  # supported, and no French facts stored
    monkeypatch.delenv("FACTS_UPSTREAM_URL", raising=False)
    _function_error(fresh_function.get("/?language=fr", headers=ORIGIN), 404, "no_facts")


@pytest.mark.parametrize("fresh_function", ["random_fact", "today_fact"], indirect=True)
def test_a_503_for_an_unreachable_database_carries_the_cors_headers(
    fresh_function: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"postgresql://facts:secret@127.0.0.1:{free_port()}/facts")  # refused
    response = fresh_function.get("/", headers=ORIGIN)
    _function_error(response, 503, "database_unavailable")
    assert response.headers["Retry-After"] == "2"


@pytest.mark.parametrize("fresh_function", ["random_fact", "today_fact"], indirect=True)
def test_a_503_for_a_misconfiguration_carries_the_cors_headers(
    fresh_function: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "not a url")
    response = fresh_function.get("/", headers=ORIGIN)
    _function_error(response, 503, "misconfigured")
    assert response.headers["Retry-After"] == "30"


# --- through the harness, over HTTP: its own answers as well as the functions' ---------------------


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/random?language=xx", 400, "unsupported_language"),
        ("GET", "/today?language=en&language=de", 400, "invalid_parameter"),
        ("GET", "/no/function/here", 404, "not_found"),
        ("POST", "/today", 405, "method_not_allowed"),
        ("POST", "/healthz", 405, "method_not_allowed"),
    ],
)
def test_the_harness_error_answers_carry_the_cors_headers(
    harness: str, method: str, path: str, status: int, code: str
) -> None:
    answer_status, headers, body = http_get(harness + path, method=method, headers=ORIGIN)
    _readable_error(answer_status, headers, json.loads(body), status, code)
