"""The API's browser contract, from a page on another origin calling the harness with fetch."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

pytestmark = pytest.mark.slow  # a real browser

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
# fetch() from the page: the answer's status, readable headers and body, or the error it threw.
_FETCH = """async ([url, headers]) => {
  try {
    const response = await fetch(url, { headers });
    return { status: response.status, etag: response.headers.get("ETag"), body: await response.json() };
  } catch (error) {
    return { error: String(error) };
  }
}"""


class _FrontEnd(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!doctype html><html><head><link rel=icon href='data:,'><title>front end</title></head></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def front_end() -> Iterator[str]:
    """A page on another origin (another loopback port) than the harness."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FrontEnd)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    "headers",
    [
        {"traceparent": TRACEPARENT},
        {"X-Requested-With": "XMLHttpRequest"},
        {"Authorization": "Bearer local-test-token"},
        {"traceparent": TRACEPARENT, "tracestate": "vendor=1", "X-Any-Header-At-All": "yes", "If-None-Match": '"x"'},
    ],
    ids=["traceparent", "x-requested-with", "authorization", "several"],
)
@pytest.mark.parametrize("path", ["/random", "/today"])
def test_a_cross_origin_fetch_with_custom_headers_succeeds(
    page: Any, harness: str, front_end: str, path: str, headers: dict[str, str]
) -> None:
    page.goto(front_end + "/")
    answer = page.evaluate(_FETCH, [harness + path, headers])
    assert answer.get("error") is None, answer
    assert answer["status"] == 200 and answer["body"]["views"] == 1  # the database is reset before each test
    if path == "/today":
        assert answer["etag"] == f'W/"{answer["body"]["fact_id"]}-{answer["body"]["date"]}"'  # readable


def test_revalidation_counts_a_view_but_the_script_sees_the_cached_body(
    page: Any, harness: str, front_end: str, db: Any
) -> None:
    """What docs/dashboard.md and the README say: a 304 is a view, yet JS gets the cached body."""
    page.goto(front_end + "/")
    first = page.evaluate(_FETCH, [harness + "/today", {}])
    second = page.evaluate(_FETCH, [harness + "/today", {}])  # the browser revalidates: If-None-Match
    assert first["status"] == second["status"] == 200
    assert second["body"] == first["body"]  # the cached body, views included
    fact_id = first["body"]["fact_id"]
    assert db.run("SELECT views FROM fact_views WHERE fact_id = :id", id=fact_id) == [[first["body"]["views"] + 1]]


def test_another_origin_cannot_read_the_dashboard(page: Any, harness: str, front_end: str) -> None:
    page.goto(front_end + "/")
    answer = page.evaluate(_FETCH, [harness + "/_dashboard/api/servers", {}])
    assert "error" in answer and "Failed to fetch" in answer["error"]
