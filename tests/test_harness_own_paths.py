"""The harness's own paths answered in-process (devharness/dispatcher.py): the route table at /, the
health at /healthz, the contract at /openapi.json, a 404 that lists the routes, 405s that say which
methods a path takes, every answer readable from any page (CORS) and pretty for curl; the dashboard's
page only for a browser navigating to /."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from werkzeug.test import Client

from devharness.dispatcher import OPENAPI_FILE, Dispatcher
from devharness.routes import Route
from shared import logs

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


class DashboardStandIn:
    """What the dispatcher asks of the dashboard: its page, and everything under /_dashboard/."""

    def __init__(self, functions: Any) -> None:
        self.functions = functions

    def page(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/html")])
        return [b"the page"]

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"dashboard " + environ["PATH_INFO"].encode()]


def _client(dashboard: bool = False) -> Client:
    stand_in: Any = DashboardStandIn if dashboard else None
    return Client(Dispatcher([], health=lambda: (503, {"status": "degraded"}), dashboard=stand_in))


def _pretty(body: Any) -> bytes:
    return (json.dumps(body, ensure_ascii=False, indent=2) + "\n").encode()


def _error(code: str, message: str, **more: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **more}}


INDEX = {"routes": [], "health": "/healthz", "openapi": "/openapi.json"}


@pytest.mark.parametrize(
    ("method", "path", "status", "body", "headers"),
    [
        ("GET", "/", 200, INDEX, {"Vary": "Accept"}),
        ("GET", "/healthz", 503, {"status": "degraded"}, {}),
        ("GET", "/openapi.json", 200, json.loads(OPENAPI_FILE.read_text(encoding="utf-8")), {}),
        ("GET", "/nowhere", 404, _error("not_found", "no function at /nowhere", routes=[]), {}),
        ("GET", "/" + "a" * 100, 404, _error("not_found", "no function at /" + "a" * 79, routes=[]), {}),
        ("POST", "/", 405, _error("method_not_allowed", "/ answers GET and HEAD only"), {"Allow": "GET, HEAD"}),
        (
            "PUT",
            "/healthz",
            405,
            _error("method_not_allowed", "/healthz answers GET and HEAD only"),
            {"Allow": "GET, HEAD"},
        ),
        (
            "DELETE",
            "/openapi.json",
            405,
            _error("method_not_allowed", "/openapi.json answers GET and HEAD only"),
            {"Allow": "GET, HEAD"},
        ),
    ],
)
def test_each_own_path_answers_whole(method: str, path: str, status: int, body: Any, headers: dict[str, str]) -> None:
    answer = _client().open(path, method=method)
    expected = _pretty(body) if status != 405 else json.dumps(body, ensure_ascii=False).encode()
    assert (answer.status_code, answer.get_data()) == (status, expected)
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert answer.headers["Content-Type"].startswith("application/json")
    assert {name: answer.headers.get(name) for name in headers} == headers


def test_head_answers_the_get_s_headers_without_a_body() -> None:
    for path in ("/", "/healthz", "/openapi.json"):
        head, get = _client().head(path), _client().get(path)
        assert (head.status_code, head.get_data()) == (get.status_code, b"")
        assert head.headers["Content-Length"] == get.headers["Content-Length"]


def test_an_empty_path_is_the_root() -> None:
    dispatcher = Dispatcher([], health=lambda: (200, {}))
    answered: list[str] = []
    body = b"".join(dispatcher({"REQUEST_METHOD": "GET"}, lambda status, headers: answered.append(status)))
    assert (answered, json.loads(body)) == (["200 OK"], INDEX)


def test_only_a_browser_navigating_to_the_root_gets_the_dashboard_page() -> None:
    client = _client(dashboard=True)
    assert client.get("/", headers=HTML).get_data() == b"the page"
    assert client.head("/", headers=HTML).status_code == 200
    assert json.loads(client.get("/").get_data()) == INDEX  # curl's */*: the route table
    assert client.post("/", headers=HTML).status_code == 405
    assert client.get("/nowhere", headers=HTML).status_code == 404
    assert client.get("/_dashboard/api/functions").get_data() == b"dashboard /_dashboard/api/functions"


def test_an_own_path_logs_the_harness_s_request_line_with_its_path_cut_at_200(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logs.configure()
    long_path = "/" + "b" * 300
    _client().get(long_path)
    [record] = [r for r in caplog.records if getattr(r, "fields", {}).get("function") == "harness"]
    assert record.name == "facts.harness" and record.levelno == logging.INFO
    assert (record.fields["path"], record.fields["status"]) == (long_path[:200], 404)  # type: ignore[attr-defined]


def test_the_route_table_lists_each_function_with_its_target_and_source(tmp_path: Any) -> None:
    source = tmp_path / "alpha.py"
    source.write_text("import functions_framework\n\n@functions_framework.http\ndef alpha(request):\n    return 'ok'\n")
    dispatcher = Dispatcher([Route("/a", "alpha", source)], health=lambda: (200, {}))
    assert dispatcher.index()["routes"] == [{"path": "/a", "target": "alpha", "source": "functions/alpha.py"}]
    assert json.loads(Client(dispatcher).get("/nowhere").get_data())["error"]["routes"] == ["/a"]


def test_head_of_the_root_from_a_browser_is_the_page_s_head() -> None:
    head = _client(dashboard=True).head("/", headers=HTML)
    assert (head.status_code, head.headers["Content-Type"]) == (200, "text/html")
