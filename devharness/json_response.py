"""The JSON responses the harness gives itself (route table, health, 404s, the dashboard's data)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from werkzeug.wrappers import Response

from shared.web import JSON_TYPE


def json_response(
    status: int,
    body: Any,
    headers: Iterable[tuple[str, str]] = (),
    *,
    pretty: bool = False,
    secrets: tuple[str, ...] = (),
) -> Response:
    """`body` as JSON, never cached; `pretty` for people reading it with curl. Werkzeug leaves out
    the body of a HEAD answer and keeps its Content-Length."""
    text = json.dumps(body, ensure_ascii=False, indent=2 if pretty else None) + ("\n" if pretty else "")
    for secret in secrets:  # a last guard: whatever a description says, a password never leaves
        text = text.replace(secret, "***")
    response = Response(text.encode("utf-8"), status=status, content_type=JSON_TYPE)
    response.headers["Cache-Control"] = "no-store"
    for name, value in headers:
        response.headers[name] = value
    return response


def error_response(status: int, code: str, message: str, headers: Iterable[tuple[str, str]] = ()) -> Response:
    return json_response(status, {"error": {"code": code, "message": message}}, headers)
