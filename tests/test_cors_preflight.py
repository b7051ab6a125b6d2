"""The CORS preflight allows whatever headers the browser asks for (tests/browser/test_cors.py
proves it in Chromium; these pin the answer itself)."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

PREFLIGHT = {"Origin": "https://front.example", "Access-Control-Request-Method": "GET"}


@pytest.mark.parametrize(
    ("requested", "allowed"),
    [
        ("traceparent", "traceparent"),
        ("authorization,traceparent,x-requested-with", "authorization,traceparent,x-requested-with"),
        ("If-None-Match, X-Custom", "If-None-Match, X-Custom"),
        (None, "*"),
        ("bad header(name)", "*"),  # not a header list: the wildcard, never the text echoed
        ("x" * 3000, "*"),
    ],
)
def test_the_preflight_allows_the_requested_headers(
    random_client: FlaskClient, requested: str | None, allowed: str
) -> None:
    headers = {**PREFLIGHT, **({"Access-Control-Request-Headers": requested} if requested else {})}
    response = random_client.options("/", headers=headers)
    assert response.status_code == 204 and response.get_data() == b""
    assert response.headers["Access-Control-Allow-Headers"] == allowed
    assert response.headers["Access-Control-Max-Age"] == "86400"
    assert response.headers["Vary"] == "Access-Control-Request-Headers"
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_actual_answers_are_unchanged(random_client: FlaskClient) -> None:
    response = random_client.get("/", headers={"Origin": "https://front.example", "traceparent": "00-1-2-01"})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Access-Control-Expose-Headers"] == "ETag, Retry-After"
    assert "Access-Control-Allow-Headers" not in response.headers and "Vary" not in response.headers
