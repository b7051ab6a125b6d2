"""Property-based run of openapi.json against the real harness: no 5xx, and every answer as documented.

Schemathesis loads the document the harness itself serves at /openapi.json, generates requests for
every operation (valid and invalid `language` values, arbitrary `If-None-Match` headers, the 405
methods), sends them to the harness on 127.0.0.1 and checks each answer against the document.
Views counted by the fuzzer do not matter: the autouse `clean_state` fixture resets the worker's
database around every test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests  # a schemathesis dependency
import schemathesis  # required (requirements-dev.txt): a broken install fails here instead of skipping the fuzzing
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
REQUEST_TIMEOUT_S = 10
OPENAPI_FILE = Path(__file__).resolve().parents[1] / "openapi.json"


def _loopback_only(base: str) -> str:
    parts = urlsplit(base)
    assert parts.scheme == "http" and parts.hostname == "127.0.0.1", (
        f"the fuzzer only targets the local harness, not {base}"
    )
    return base


@pytest.fixture(scope="session")
def harness_schema(harness: str):
    base = _loopback_only(harness)
    # An explicit config: a schemathesis.toml found on the way up must not redirect or widen the run.
    schema = schemathesis.openapi.from_url(
        f"{base}/openapi.json", config=SchemathesisConfig(), timeout=REQUEST_TIMEOUT_S
    )
    schema.config.update(base_url=base)
    return schema


@pytest.fixture(scope="session")
def http_session() -> Iterator[requests.Session]:
    session = requests.Session()
    session.trust_env = False  # never through a proxy from the environment
    yield session
    session.close()


schema = schemathesis.pytest.from_fixture("harness_schema")


# Examples per operation: a few in the default lane (every operation and check still runs), the
# full strength in the slow lane. derandomize: the same examples every run, so a failure repeats.
QUICK_EXAMPLES = 8
FULL_EXAMPLES = 50
_SETTINGS = {
    "deadline": None,
    "derandomize": True,
    "print_blob": True,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
}


def _conforms(case, base: str, http_session: requests.Session) -> None:
    response = case.call_and_validate(base_url=base, session=http_session, checks=CHECKS, timeout=REQUEST_TIMEOUT_S)
    assert b"Traceback" not in response.content


@schema.parametrize()
@settings(max_examples=QUICK_EXAMPLES, **_SETTINGS)
def test_harness_conforms_to_openapi(case, harness: str, http_session: requests.Session) -> None:
    _conforms(case, _loopback_only(harness), http_session)


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=FULL_EXAMPLES, **_SETTINGS)
def test_harness_conforms_to_openapi_at_full_strength(case, harness: str, http_session: requests.Session) -> None:
    _conforms(case, _loopback_only(harness), http_session)


def test_the_harness_serves_openapi_json(harness: str, http_session: requests.Session) -> None:
    """The dispatcher serves the repository's openapi.json at /openapi.json (the fuzzer skips that route)."""
    response = http_session.get(f"{_loopback_only(harness)}/openapi.json", timeout=REQUEST_TIMEOUT_S)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.json() == json.loads(OPENAPI_FILE.read_text(encoding="utf-8"))
    index = http_session.get(f"{harness}/", timeout=REQUEST_TIMEOUT_S).json()
    assert index["openapi"] == "/openapi.json"
