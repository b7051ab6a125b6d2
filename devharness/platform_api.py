"""The dashboard's Cloud Run panel: the platform's state (GET) and its buttons (POST): evict an
instance, freeze / thaw / stop / start Postgres or Redis.

The buttons change things, so they take only a JSON body (a page elsewhere cannot send one
without a CORS preflight, which this never answers) from a same-origin page (the Origin, when
sent, must name the host asked), on top of the dashboard's Host check.
"""

from __future__ import annotations

import json
from typing import Any, Protocol
from urllib.parse import urlsplit

from werkzeug.wrappers import Response

from .json_response import error_response, json_response

NOSNIFF = [("X-Content-Type-Options", "nosniff")]
MAX_BODY = 4096


class PlatformState(Protocol):
    def view(self) -> dict[str, Any]: ...

    def evict(self, name: str) -> bool: ...

    def fault(self, server: str, action: str) -> str: ...


def _same_origin(environ: dict[str, Any]) -> bool:
    """No Origin (curl, a same-origin GET) or one naming the host asked; `Origin: null` (a sandboxed
    frame, a file:// page) names no host, so it never matches, even a request without a Host."""
    origin = environ.get("HTTP_ORIGIN")
    if origin is None:
        return True
    host = urlsplit(origin).netloc
    return bool(host) and host == environ.get("HTTP_HOST")


def _body(environ: dict[str, Any]) -> dict[str, Any] | None:
    if not environ.get("CONTENT_TYPE", "").startswith("application/json"):
        return None
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if not 0 < length <= MAX_BODY:
            return None
        found = json.loads(environ["wsgi.input"].read(length))
    except (ValueError, OSError):
        return None
    return found if isinstance(found, dict) else None


def answer(platform: PlatformState | None, environ: dict[str, Any], path: str) -> Response:
    """`path` is below api/platform."""
    method = environ.get("REQUEST_METHOD")
    if path == "" and method in ("GET", "HEAD"):
        return json_response(200, platform.view() if platform else {"mode": "one-process"}, NOSNIFF)
    if path not in ("/evict", "/fault"):
        return error_response(404, "not_found", "the platform panel has evict and fault only", NOSNIFF)
    if method != "POST":
        return error_response(405, "method_not_allowed", "evict and fault take POST", [*NOSNIFF, ("Allow", "POST")])
    if platform is None:
        return error_response(409, "not_cloud_run", "only serve --like cloud-run has a platform to change", NOSNIFF)
    if not _same_origin(environ):
        return error_response(403, "origin_not_allowed", "only the dashboard's own page may press its buttons", NOSNIFF)
    body = _body(environ)
    if body is None:
        return error_response(400, "bad_body", "send a small JSON object (Content-Type: application/json)", NOSNIFF)
    if path == "/evict":
        name = body.get("instance")
        if not isinstance(name, str) or not platform.evict(name):
            return error_response(404, "no_such_instance", "no running instance by that name", NOSNIFF)
        return json_response(200, {"evicted": name}, NOSNIFF)
    server, action = body.get("server"), body.get("action")
    try:
        state = platform.fault(str(server), str(action))
    except ValueError as exc:
        return error_response(400, "bad_fault", str(exc)[:200], NOSNIFF)
    return json_response(200, {"server": server, "state": state}, NOSNIFF)
