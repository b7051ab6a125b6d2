"""A WSGI app that hands each path to the functions-framework app of the function mounted there."""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

import functions_framework

from shared.web import JSON_TYPE

from .dashboard import PREFIX as DASHBOARD_PREFIX
from .dashboard import Dashboard, wants_page
from .routes import Route

log = logging.getLogger("facts.harness")
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
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


@dataclass(frozen=True)
class LoadedFunction:
    """A mounted function's app; when it failed to load, an app answering that error, and the error."""

    route: Route
    app: WSGIApp
    error: dict[str, Any] | None = None

    def state(self) -> dict[str, Any]:
        """What the dashboard shows of it."""
        return {
            "path": self.route.path,
            "target": self.route.target,
            "source": f"functions/{self.route.source.name}",
            "loaded": self.error is None,
            **({"error": self.error} if self.error else {}),
        }


def load_function(route: Route) -> LoadedFunction:
    """The function's own functions-framework app; a function that fails to load answers its error."""
    try:
        return LoadedFunction(route, functions_framework.create_app(route.target, str(route.source)))
    except Exception as exc:
        # A syntax error knows its line; for anything else, the innermost frame's line says where.
        frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ else []
        line = exc.lineno if isinstance(exc, SyntaxError) else (frames[-1].lineno if frames else None)
        detail = f"{exc.__class__.__name__}: {exc}"
        log.error("%s failed to load: %s", route.source.name, detail)
        error: dict[str, Any] = {"code": "function_failed_to_load", "message": detail, "source": route.source.name}
        if line is not None:
            error["line"] = line
        return LoadedFunction(route, json_app(500, {"error": error}), error)


class Dispatcher:
    def __init__(
        self,
        routes: list[Route],
        health: Callable[[], tuple[int, dict[str, Any]]],
        dashboard: Callable[[Callable[[], list[dict[str, Any]]]], Dashboard] | None = None,
    ) -> None:
        self.routes = routes
        self.loaded = [load_function(route) for route in routes]
        self.apps = {function.route.path: function.app for function in self.loaded}
        self.health = health
        self.dashboard = dashboard(lambda: [function.state() for function in self.loaded]) if dashboard else None

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
            return json_app(200, self.index(), [("Vary", "Accept")])
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
        method = environ.get("REQUEST_METHOD", "GET")
        if self.dashboard is not None:
            if path.startswith(DASHBOARD_PREFIX):
                return self.dashboard(environ, start_response)  # not logged: the page polls
            if path == "/" and method in ("GET", "HEAD") and wants_page(environ):
                return self.dashboard.page(environ, start_response)
        started = time.perf_counter()
        app = self._own_route(path, method) or json_app(
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
        latency_ms = (time.perf_counter() - started) * 1000
        # The same fields as a function's request line, so the live log shows these requests too.
        fields = {
            "function": "harness",
            "method": method,
            "path": path[:200],
            "status": int(status) if status.isdigit() else status,
            "latency_ms": round(latency_ms, 2),
        }
        log.info("%s %s -> %s %.1f ms", method, path[:200], status, latency_ms, extra={"fields": fields})
        return result
