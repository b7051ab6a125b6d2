"""A WSGI app that hands each path to the functions-framework app of the function mounted there."""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import functions_framework
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.wrappers import Response

from shared import logs

from .dashboard import PREFIX as DASHBOARD_PREFIX
from .dashboard import Dashboard, wants_page
from .json_response import error_response, json_response
from .routes import Route

log = logging.getLogger("facts.harness")
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
OPENAPI_FILE = Path(__file__).resolve().parents[1] / "openapi.json"


# The harness's own answers may be read from any page, as the functions' may.
CORS = [("Access-Control-Allow-Origin", "*")]


def _mounted_at_root(app: WSGIApp) -> WSGIApp:
    """`app` seeing "/" for its mount's own path, which DispatcherMiddleware hands on as "": a
    function's app would answer that with a redirect to "/random/" instead of the function."""

    def mounted(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ["PATH_INFO"] = environ.get("PATH_INFO") or "/"
        return app(environ, start_response)

    return mounted


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
        return LoadedFunction(route, json_response(500, {"error": error}, CORS, pretty=True), error)


class Dispatcher:
    """Each function at its own path (below which it sees "/", as on Cloud Functions); the rest here."""

    def __init__(
        self,
        routes: list[Route],
        health: Callable[[], tuple[int, dict[str, Any]]],
        dashboard: Callable[[Callable[[], list[dict[str, Any]]]], Dashboard] | None = None,
    ) -> None:
        self.routes = routes
        self.loaded = [load_function(route) for route in routes]
        self.health = health
        self.dashboard = dashboard(lambda: [function.state() for function in self.loaded]) if dashboard else None
        mounts = {function.route.path: _mounted_at_root(function.app) for function in self.loaded}
        self._dispatch = DispatcherMiddleware(self._own_paths, mounts)

    def index(self) -> dict[str, Any]:
        return {
            "routes": [
                {"path": r.path, "target": r.target, "source": f"functions/{r.source.name}"} for r in self.routes
            ],
            "health": "/healthz",
            "openapi": "/openapi.json",
        }

    def _own_route(self, path: str, method: str) -> Response | None:
        if path in ("/", "/healthz", "/openapi.json") and method not in ("GET", "HEAD"):
            message = f"{path} answers GET and HEAD only"
            return error_response(405, "method_not_allowed", message, [*CORS, ("Allow", "GET, HEAD")])
        if path == "/":
            return json_response(200, self.index(), [*CORS, ("Vary", "Accept")], pretty=True)
        if path == "/healthz":
            status, body = self.health()
            return json_response(status, body, CORS, pretty=True)
        if path == "/openapi.json" and OPENAPI_FILE.exists():
            return json_response(200, json.loads(OPENAPI_FILE.read_text(encoding="utf-8")), CORS, pretty=True)
        return None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        return self._dispatch(environ, start_response)

    def _own_paths(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Every path no function is mounted at: the dashboard, the route table, health, 404s."""
        path = environ.get("PATH_INFO") or "/"
        method = environ["REQUEST_METHOD"]  # PEP 3333: always set (PATH_INFO may be empty)
        if self.dashboard is not None:
            if path.startswith(DASHBOARD_PREFIX):
                return self.dashboard(environ, start_response)  # not logged: the page polls
            if path == "/" and method in ("GET", "HEAD") and wants_page(environ):
                return self.dashboard.page(environ, start_response)
        started = time.perf_counter()
        response = self._own_route(path, method) or json_response(
            404,
            {
                "error": {
                    "code": "not_found",
                    "message": f"no function at {path[:80]}",
                    "routes": [r.path for r in self.routes],
                }
            },
            CORS,
            pretty=True,
        )
        # The functions' request line, so the live log shows these requests too.
        logs.log_request("harness", method, path[:200], response.status_code, started, logger=log)
        return response(environ, start_response)
