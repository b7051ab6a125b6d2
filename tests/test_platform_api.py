"""The dashboard's Cloud Run panel answered in-process (devharness/platform_api.py), every answer
whole: status, JSON body, and the headers that keep it the page's own (nosniff, never cached), as
its buttons' script reads them. And the harness's JSON answers themselves (json_response.py)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from devharness import platform_api
from devharness.json_response import json_response
from shared.web import JSON_TYPE

HOST = "127.0.0.1:8080"


class Platform:
    """The platform's three calls, recorded; one instance and one fault it knows."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def view(self) -> dict[str, Any]:
        return {"mode": "cloud-run", "instances": []}

    def evict(self, name: str) -> bool:
        self.calls.append(("evict", name))
        return name == "random-fact-00001#0"

    def fault(self, server: str, action: str) -> str:
        self.calls.append(("fault", server, action))
        if (server, action) != ("redis", "freeze"):
            raise ValueError(f"no {action!r} for {server!r} " + "x" * 300)
        return "frozen"


def _request(method: str, path: str, raw: bytes = b"", platform: Any = None, **environ: str) -> Any:
    base = {"REQUEST_METHOD": method, "HTTP_HOST": HOST, "wsgi.input": io.BytesIO(raw)}
    if raw:
        base |= {"CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(raw))}
    return platform_api.answer(platform, base | environ, path)


def _whole(response: Any) -> tuple[int, Any, dict[str, str]]:
    headers = dict(response.headers)
    assert headers.pop("Content-Type") == JSON_TYPE
    assert headers.pop("Cache-Control") == "no-store"
    assert headers.pop("X-Content-Type-Options") == "nosniff"
    headers.pop("Content-Length")
    return response.status_code, json.loads(response.get_data()), headers


def _error(status: int, code: str, message: str, **headers: str) -> tuple[int, Any, dict[str, str]]:
    return status, {"error": {"code": code, "message": message}}, headers


FAULT = json.dumps({"server": "redis", "action": "freeze"}).encode()


@pytest.mark.parametrize(
    ("method", "path", "raw", "environ", "expected"),
    [
        ("GET", "", b"", {}, (200, {"mode": "cloud-run", "instances": []}, {})),
        ("POST", "/fault", FAULT, {}, (200, {"server": "redis", "state": "frozen"}, {})),
        ("POST", "/fault", FAULT, {"HTTP_ORIGIN": f"http://{HOST}"}, (200, {"server": "redis", "state": "frozen"}, {})),
        ("POST", "/evict", b'{"instance": "random-fact-00001#0"}', {}, (200, {"evicted": "random-fact-00001#0"}, {})),
        ("POST", "/other", FAULT, {}, _error(404, "not_found", "the platform panel has evict and fault only")),
        ("GET", "/fault", b"", {}, _error(405, "method_not_allowed", "evict and fault take POST", Allow="POST")),
        ("HEAD", "/evict", b"", {}, _error(405, "method_not_allowed", "evict and fault take POST", Allow="POST")),
        (
            "POST", "/fault", FAULT, {"HTTP_ORIGIN": "http://evil.example"},
            _error(403, "origin_not_allowed", "only the dashboard's own page may press its buttons"),
        ),
        (
            "POST", "/fault", FAULT, {"HTTP_ORIGIN": "null", "HTTP_HOST": ""},
            _error(403, "origin_not_allowed", "only the dashboard's own page may press its buttons"),
        ),
        (
            "POST", "/fault", FAULT, {"CONTENT_TYPE": "application/x-www-form-urlencoded"},
            _error(400, "bad_body", "send a small JSON object (Content-Type: application/json)"),
        ),
        (
            "POST", "/evict", b'{"instance": "nobody"}', {},
            _error(404, "no_such_instance", "no running instance by that name"),
        ),
        ("POST", "/evict", b'{"instance": 7}', {}, _error(404, "no_such_instance", "no running instance by that name")),
    ],
)  # fmt: skip
def test_every_answer_of_the_panel_is_whole(
    method: str, path: str, raw: bytes, environ: dict[str, str], expected: tuple
) -> None:
    assert _whole(_request(method, path, raw, Platform(), **environ)) == expected


def test_head_of_the_panel_has_the_gets_headers_and_a_one_process_serve_has_no_platform() -> None:
    head = _request("HEAD", "")
    assert head.status_code == 200 and head.headers["Content-Type"] == JSON_TYPE
    assert _whole(_request("GET", "")) == (200, {"mode": "one-process"}, {})
    message = "only serve --like cloud-run has a platform to change"
    assert _whole(_request("POST", "/fault", FAULT)) == _error(409, "not_cloud_run", message)


def test_a_bad_fault_says_why_in_at_most_200_characters_and_nothing_else_is_done() -> None:
    platform = Platform()
    status, body, _ = _whole(_request("POST", "/fault", b'{"server": "postgres; rm", "action": "stop"}', platform))
    assert (status, body["error"]["code"]) == (400, "bad_fault")
    assert body["error"]["message"] == ("no 'stop' for 'postgres; rm' " + "x" * 300)[:200]
    assert platform.calls == [("fault", "postgres; rm", "stop")]


@pytest.mark.parametrize(
    ("raw", "length", "acts"),
    [
        (FAULT, len(FAULT), True),
        (FAULT + b" " * (platform_api.MAX_BODY - len(FAULT)), platform_api.MAX_BODY, True),  # the largest body
        (FAULT + b" " * (platform_api.MAX_BODY + 1 - len(FAULT)), platform_api.MAX_BODY + 1, False),
        (FAULT, 0, False),  # no length: nothing is read
        (FAULT + b"trailing", len(FAULT), True),  # only CONTENT_LENGTH bytes are read
        (b"[1, 2]", 6, False),  # JSON, but not an object
        (b"{not json", 9, False),
    ],
)
def test_the_body_is_a_json_object_of_its_stated_length_up_to_max_body(raw: bytes, length: int, acts: bool) -> None:
    platform = Platform()
    environ = {"CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(length), "wsgi.input": io.BytesIO(raw)}
    status = _request("POST", "/fault", platform=platform, **environ).status_code
    assert (status, platform.calls) == ((200, [("fault", "redis", "freeze")]) if acts else (400, []))


def test_a_harness_json_answer_is_utf_8_compact_or_pretty_and_never_shows_a_secret() -> None:
    body = {"fact": "Über 7 °C", "url": "postgresql://app:hunter22@db/facts"}
    compact = json_response(200, body, [("X-Extra", "1")], secrets=("hunter22",))
    assert compact.get_data() == '{"fact": "Über 7 °C", "url": "postgresql://app:***@db/facts"}'.encode()
    assert (compact.headers["Cache-Control"], compact.headers["X-Extra"]) == ("no-store", "1")
    pretty = json_response(404, {"a": [1]}, pretty=True)
    assert (pretty.status_code, pretty.get_data()) == (404, b'{\n  "a": [\n    1\n  ]\n}\n')
    assert pretty.headers["Content-Type"] == JSON_TYPE
