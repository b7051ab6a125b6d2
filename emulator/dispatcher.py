"""A WSGI app that hands each path to the functions-framework app of the function mounted there."""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Callable, Iterable
from http import HTTPStatus
from pathlib import Path
from typing import Any

import functions_framework

from .routes import Route

log = logging.getLogger("facts.harness")
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
JSON_TYPE = "application/json; charset=utf-8"
OPENAPI_FILE = Path(__file__).resolve().parents[1] / "openapi.json"


def json_app(status: int, body: Any, extra_headers: list[tuple[str, str]] | None = None) -> WSGIApp:
    payload = json.dumps(body, ensure_ascii=False, indent=2).encode("utf-8") + b"\n"
    reason = HTTPStatus(status).phrase

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        headers = [
            ("Content-Type", JSON_TYPE),
            ("Content-Length", str(len(payload))),
            ("Cache-Control", "no-store"),
            ("Access-Control-Allow-Origin", "*"),
        ]
        start_response(f"{status} {reason}", headers + (extra_headers or []))
        return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else payload]

    return app


def load_function(route: Route) -> WSGIApp:
    """The function's own functions-framework app; a function that fails to load answers its error."""
    try:
        return functions_framework.create_app(route.target, str(route.source))
    except Exception as exc:
        # A syntax error knows its line; for anything else, the innermost frame's line says where.
        frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ else []
        line = exc.lineno if isinstance(exc, SyntaxError) else (frames[-1].lineno if frames else None)
        detail = f"{exc.__class__.__name__}: {exc}"
        log.error("%s failed to load: %s", route.source.name, detail)
        error: dict[str, Any] = {"code": "function_failed_to_load", "message": detail, "source": route.source.name}
        if line is not None:
            error["line"] = line
        return json_app(500, {"error": error})


class Dispatcher:
    def __init__(self, routes: list[Route], health: Callable[[], tuple[int, dict[str, Any]]]) -> None:
        self.routes = routes
        self.apps = {route.path: load_function(route) for route in routes}
        self.health = health

    def index(self) -> dict[str, Any]:
        return {
            "routes": [
                {"path": r.path, "target": r.target, "source": f"functions/{r.source.name}"} for r in self.routes
            ],
            "health": "/healthz",
            "openapi": "/openapi.json",
        }

    def _own_route(self, path: str, method: str) -> WSGIApp | None:
        if path in ("/", "/healthz", "/openapi.json") and method not in ("GET", "HEAD"):
            message = f"{path} answers GET and HEAD only"
            return json_app(
                405, {"error": {"code": "method_not_allowed", "message": message}}, [("Allow", "GET, HEAD")]
            )
        if path == "/":
            return json_app(200, self.index())
        if path == "/healthz":
            return json_app(*self.health())
        if path == "/openapi.json" and OPENAPI_FILE.exists():
            return json_app(200, json.loads(OPENAPI_FILE.read_text(encoding="utf-8")))
        return None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        for mount, app in self.apps.items():
            if path == mount or path.startswith(mount + "/"):
                # As on Cloud Functions, the function sees the path below its own name.
                environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + mount
                environ["PATH_INFO"] = path[len(mount) :] or "/"
                return app(environ, start_response)
        started = time.perf_counter()
        app = self._own_route(path, environ.get("REQUEST_METHOD", "GET")) or json_app(
            404,
            {
                "error": {
                    "code": "not_found",
                    "message": f"no function at {path[:80]}",
                    "routes": [r.path for r in self.routes],
                }
            },
        )
        statuses: list[str] = []

        def recording_start_response(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            statuses.append(status)
            return start_response(status, headers, *args)

        result = app(environ, recording_start_response)
        status = statuses[0].split()[0] if statuses else "?"
        log.info(
            "%s %s -> %s %.1f ms",
            environ.get("REQUEST_METHOD"),
            path[:200],
            status,
            (time.perf_counter() - started) * 1000,
        )
        return result
