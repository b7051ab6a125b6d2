"""One place for the HTTP contract: JSON bodies, one error shape, CORS and method handling."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

import flask
from werkzeug.datastructures import Headers

from . import fast
from .config import ConfigError
from .json_text import compact_encoder
from .postgres import StoreUnavailable

log = logging.getLogger(__name__)

JSON_TYPE = "application/json; charset=utf-8"
ALLOWED_METHODS = ("GET", "HEAD", "OPTIONS")
DATABASE_RETRY_AFTER_S = 2
_COMMON_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "ETag, Retry-After",
    "X-Content-Type-Options": "nosniff",
}


class _Outage:
    """One warning per reason when the database becomes unavailable, and one line when it is back,
    not one per request: a connection budget exhausted under load would otherwise flood the log.

    A reason that changes during an outage is logged too (a migration under way, then no free
    connection slot), so the log says why an instance is still unavailable, not only why it began.
    """

    MOST_REASONS = 5  # per outage: the log stays a few lines whatever the server says

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reasons: set[str] = set()

    def failed(self, error: StoreUnavailable) -> None:
        reason = str(error)
        with self._lock:
            new = reason not in self._reasons and len(self._reasons) < self.MOST_REASONS
            if new:
                self._reasons.add(reason)
        if new:
            log.warning("database unavailable: %s (not logged again until it recovers or the reason changes)", reason)

    def succeeded(self) -> None:
        if self._reasons:  # unlocked read: the common case costs nothing
            with self._lock:
                recovered, self._reasons = bool(self._reasons), set()
            if recovered:
                log.info("database available again")


_database_outage = _Outage()


class ApiError(Exception):
    """An error answered to the client as `{"error": {"code", "message", ...}}`."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None, **details: Any):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})
        self.details = details


# Checked by Werkzeug once, here; each response starts from a copy (without a second check where
# shared/fast may: test_web_contract.py checks the headers sent).
_COMMON_JSON_HEADERS = Headers([*_COMMON_HEADERS.items(), ("Content-Type", JSON_TYPE)])


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> flask.Response:
    return json_text_response(status, compact_encoder()(body) if body is not None else None, headers)


def json_text_response(status: int, text: str | None, headers: Mapping[str, str] | None = None) -> flask.Response:
    """A response with a body already encoded as JSON text (None: no body)."""
    payload = text.encode("utf-8") if text is not None else b""
    all_headers = fast.copy_headers(_COMMON_JSON_HEADERS)
    if headers:
        for name, value in headers.items():
            all_headers.add(name, value)  # checked: no line break in a value (add, not extend: one step)
    return fast.response_class()(payload, status=status, headers=all_headers)


def error_response(error: ApiError) -> flask.Response:
    body = {"error": {"code": error.code, "message": error.message, **error.details}}
    return json_response(error.status, body, {"Cache-Control": "no-store", **error.headers})


# A comma-separated list of header names (RFC 9110 tokens), as a browser sends it in a preflight.
_HEADER_LIST = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+(?:[ \t]*,[ \t]*[!#$%&'*+.^_`|~0-9A-Za-z-]+)*")


def _allowed_headers(requested: str | None) -> str:
    """The headers the browser asked for, or `*`: front ends add their own (traceparent,
    X-Requested-With, Authorization) and no credentials are involved, so any header may come.

    Reflecting the list rather than always answering `*` also covers `Authorization`, which the
    wildcard does not.
    """
    if requested and len(requested) <= 2000 and _HEADER_LIST.fullmatch(requested.strip()):
        return requested.strip()
    return "*"


def _preflight(request: flask.Request) -> flask.Response:
    response = flask.Response(status=204)
    del response.headers["Content-Type"]  # no body, so no type (Flask would claim text/html)
    response.headers.update(_COMMON_HEADERS)
    response.headers["Access-Control-Allow-Methods"] = ", ".join(ALLOWED_METHODS)
    response.headers["Access-Control-Allow-Headers"] = _allowed_headers(
        request.headers.get("Access-Control-Request-Headers")
    )
    response.headers["Access-Control-Max-Age"] = "86400"
    # The answer depends on the request's header list: a cache must not hand it to another list.
    response.headers["Vary"] = "Access-Control-Request-Headers"
    return response


def _shown(value: str, limit: int = 40) -> str:
    return json.dumps(value[:limit] + ("…" if len(value) > limit else ""), ensure_ascii=False)


def language_param(request: flask.Request, supported: tuple[str, ...]) -> str:
    """The `language` query parameter (default: the first supported one), or a 400 that lists them."""
    if not request.environ.get("QUERY_STRING"):
        return supported[0]  # most requests: nothing to parse, so Werkzeug's parse is skipped
    values = request.args.getlist("language")
    if len(values) > 1:
        raise ApiError(
            400, "invalid_parameter", "give the language parameter once", supported_languages=list(supported)
        )
    language = values[0] if values else supported[0]
    if language not in supported:
        message = f"unsupported language {_shown(language)}; supported: {', '.join(supported)}"
        raise ApiError(400, "unsupported_language", message, supported_languages=list(supported))
    return language


def serve(request: flask.Request, handler: Callable[[flask.Request], flask.Response]) -> flask.Response:
    """Answer methods, preflight and errors the same way for every function; `handler` does GET/HEAD."""
    # functions-framework reads the whole body after every answer; read it first, so that a body
    # that cannot be read (broken chunked encoding) is a 400 here rather than a 500 crash there.
    # Read from the WSGI environ: request.content_length and request.headers parse what this needs not.
    environ = request.environ
    if environ.get("CONTENT_LENGTH") or "HTTP_TRANSFER_ENCODING" in environ:
        try:
            request.get_data()
        except Exception:
            return error_response(ApiError(400, "invalid_body", "the request body could not be read"))
    if request.method == "OPTIONS":
        return _preflight(request)
    try:
        if request.method not in ("GET", "HEAD"):
            raise ApiError(
                405,
                "method_not_allowed",
                f"method {_shown(request.method, 20)} is not allowed; use GET or HEAD",
                headers={"Allow": ", ".join(ALLOWED_METHODS)},
            )
        response = handler(request)
        _database_outage.succeeded()
        return response
    except ApiError as error:
        return error_response(error)
    except ConfigError as error:
        log.error("misconfigured: %s", error)
        return error_response(ApiError(503, "misconfigured", str(error), headers={"Retry-After": "30"}))
    except StoreUnavailable as error:
        _database_outage.failed(error)
        message = "the fact database is unavailable; try again shortly"
        return error_response(
            ApiError(503, "database_unavailable", message, headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)})
        )
    except Exception:
        log.exception("unexpected error")
        return error_response(ApiError(500, "internal", "internal error; it has been logged"))
