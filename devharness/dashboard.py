"""The harness's dashboard: a page at / for browsers, its JSON and its live log under /_dashboard/.

For this machine: it answers only GET and HEAD (but for the Cloud Run panel's buttons,
devharness/platform_api.py), only to requests naming the host
the harness binds to (a page elsewhere cannot reach it through DNS rebinding), without CORS (no
other origin may read it), and never with a password.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import redis
from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header
from werkzeug.wrappers import Response

from shared import instance
from shared.config import ConfigError, mask_url
from shared.facts import utc_day

from . import dashboard_data, platform_api
from .json_response import error_response, json_response
from .livelog import RequestLog

log = logging.getLogger("facts.harness")
PREFIX = "/_dashboard/"
STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
STATIC_FILES = ("dashboard.css", "dashboard.js")
LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1"}
WILDCARD_HOSTS = {"0.0.0.0", "::", ""}  # noqa: S104 - names, not a bind
# A stream holds one of its worker's threads: at most this many per worker, so most threads stay
# free for the functions; each ends after STREAM_S (the browser reconnects) or STREAM_BYTES.
STREAM_S = 25.0
STREAM_BYTES = 1 << 20
SEND_TIMEOUT_S = 5.0  # a tab that stops reading frees its thread within this
PAGE_HEADERS = [
    ("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
]


@dataclass(frozen=True)
class DashboardSetup:
    """What the harness's main process knows and the workers show: made before gunicorn forks."""

    kind: str
    description: str
    bind_host: str
    reload: bool = False
    workers: int = 1  # gunicorn's: with more than one, the live log shows its own worker's lines only
    max_streams: int = 2
    mode: str = "one-process"  # or "cloud-run" (serve --like cloud-run)


def wants_page(environ: dict[str, Any]) -> bool:
    """A browser navigating (Accept prefers text/html) gets the page; `*/*` and JSON clients the route table."""
    accept = parse_accept_header(environ.get("HTTP_ACCEPT"), MIMEAccept)
    return accept.best_match(["application/json", "text/html"]) == "text/html"


# The dashboard's JSON is for its own page only: no CORS, and never sniffed as anything else.
NOSNIFF = [("X-Content-Type-Options", "nosniff")]


def _file(name: str, content_type: str, headers: list[tuple[str, str]]) -> Response:
    return Response((STATIC_DIR / name).read_bytes(), content_type=content_type, headers=headers)


def redis_where(url: str) -> str:
    """The Redis URL with any password masked and no query (which may carry one too)."""
    parts = urlsplit(mask_url(url))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class Dashboard:
    def __init__(
        self,
        setup: DashboardSetup,
        functions: Callable[[], list[dict[str, Any]]],
        health: Callable[[], tuple[int, dict[str, Any]]],
        worker_stopping: Callable[[], bool] = lambda: False,
        requests: RequestLog | None = None,
        platform: platform_api.PlatformState | None = None,
    ) -> None:
        self.setup = setup
        self.platform = platform
        self.requests = requests
        self.functions = functions
        self.health = health
        self.worker_stopping = worker_stopping
        self._stream_slots = threading.BoundedSemaphore(max(1, setup.max_streams))

    def host_allowed(self, environ: dict[str, Any]) -> bool:
        if self.setup.bind_host in WILDCARD_HOSTS:
            return True  # the user chose to serve every interface
        try:
            name = urlsplit("//" + environ.get("HTTP_HOST", "")).hostname
        except ValueError:
            return False
        return name is not None and name in LOOPBACK_NAMES | {self.setup.bind_host.strip("[]").lower()}  # as urlsplit

    def page(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if self.host_allowed(environ):
            answer = _file("index.html", "text/html; charset=utf-8", [*PAGE_HEADERS, ("Vary", "Accept")])
        else:
            answer = self._refuse_host()
        return answer(environ, start_response)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = (environ.get("PATH_INFO") or "/")[len(PREFIX) :]
        if path == "api/events" and self.host_allowed(environ) and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            return self._events(environ, start_response)
        return self._answer(environ, path)(environ, start_response)

    def _answer(self, environ: dict[str, Any], path: str) -> Response:
        if not self.host_allowed(environ):
            return self._refuse_host()
        if path == "api/platform" or path.startswith("api/platform/"):
            return platform_api.answer(self.platform, environ, path[len("api/platform") :])
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return error_response(405, "method_not_allowed", "the dashboard is read-only", NOSNIFF)
        if path in STATIC_FILES:
            return _file(path, STATIC_TYPES[Path(path).suffix], PAGE_HEADERS)
        if path == "api/functions":
            body = {"functions": self.functions(), "reload": self.setup.reload, "mode": self.setup.mode}
            return json_response(200, body, NOSNIFF)
        if path == "api/servers":
            return self._servers()
        return error_response(404, "not_found", f"the dashboard has nothing at {PREFIX}{path[:80]}", NOSNIFF)

    def _refuse_host(self) -> Response:
        message = "the dashboard answers only requests addressed to the host the harness binds to"
        return error_response(403, "host_not_allowed", message, NOSNIFF)

    def _servers(self) -> Response:
        answer: dict[str, Any] = {"kind": self.setup.kind, "description": self.setup.description}
        try:
            current = instance.state(migrate=False)
        except ConfigError as exc:  # the message names the variable, never its value
            return json_response(200, {**answer, "error": str(exc)}, NOSNIFF)
        settings = current.settings
        secrets = tuple(
            s for s in (settings.postgres.password, urlsplit(settings.redis_url).password) if s and len(s) >= 4
        )
        _, health = self.health()
        answer["status"] = health.get("status")
        answer["postgres"] = {"where": settings.postgres.describe(), "health": health.get("postgres", "down")}
        answer["redis"] = {
            "where": redis_where(settings.redis_url),
            "health": health.get("redis", "down"),
            "key_prefix": settings.cache_prefix,
        }
        day = utc_day(current.clock())
        data: dict[str, Any] = {"day": day.isoformat(), "languages": list(settings.languages)}
        try:
            pool = current.store.pool
            data["today"] = dashboard_data.todays_facts(pool, day)
            data["most_viewed"] = dashboard_data.most_viewed(pool)
            data["catalogue"] = dashboard_data.catalogue_sizes(pool)
        except Exception as exc:  # StoreUnavailable and the like: say so on the page, keep the rest
            data["postgres_error"] = f"Postgres unavailable ({exc.__class__.__name__})"
        try:
            data["cache_keys"] = dashboard_data.todays_cache_keys(
                current.cache.client, settings.cache_prefix, settings.languages, day
            )
        except redis.RedisError as exc:
            data["redis_error"] = f"Redis unavailable ({exc.__class__.__name__})"
        answer["data"] = data
        return json_response(200, answer, NOSNIFF, secrets=secrets)

    def _events(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if self.requests is None:
            return error_response(404, "no_log_stream", "this server has no live log", NOSNIFF)(environ, start_response)
        stream_headers = [("Content-Type", "text/event-stream; charset=utf-8"), ("Cache-Control", "no-store")]
        if environ.get("REQUEST_METHOD") == "HEAD":  # the headers only: no thread held for a stream nobody reads
            start_response("200 OK", stream_headers)
            return []
        if not self._stream_slots.acquire(blocking=False):
            message = "every live-log slot of this worker is taken"
            busy = error_response(503, "too_many_streams", message, [*NOSNIFF, ("Retry-After", "2")])
            return busy(environ, start_response)
        after = _after(environ)
        sock = environ.get("gunicorn.socket")
        if sock is not None:
            sock.settimeout(SEND_TIMEOUT_S)
        start_response("200 OK", stream_headers)
        scope = f"worker {os.getpid()} only (1 of {self.setup.workers})" if self.setup.workers > 1 else None
        return EventStream(self.requests, after, self._stream_slots.release, self.worker_stopping, scope)


def _after(environ: dict[str, Any]) -> int:
    """The last line the browser has: EventSource's Last-Event-ID on reconnect, or ?after= on a new stream."""
    raw = environ.get("HTTP_LAST_EVENT_ID") or parse_qs(environ.get("QUERY_STRING", "")).get("after", ["0"])[0]
    try:
        return max(0, int(raw))
    except ValueError:
        return 0


class EventStream:
    """Server-sent events of the request log for one tab; `close` gives its slot back (gunicorn calls it)."""

    def __init__(
        self,
        requests: RequestLog,
        after: int,
        release: Callable[[], None],
        stopping: Callable[[], bool],
        scope: str | None = None,
    ) -> None:
        self.requests, self.after, self._release, self.stopping = requests, after, release, stopping
        self.scope = scope  # which lines the log holds, when not every worker's
        self._released = False

    def __iter__(self) -> Iterator[bytes]:
        yield b"retry: 1000\n\n"
        end, sent, last_status = time.monotonic() + STREAM_S, 0, None
        while time.monotonic() < end and sent < STREAM_BYTES and not self.stopping():
            answer = self.requests.read(self.after, wait_s=1.0)
            chunk = b"".join(
                f"id: {event['seq']}\ndata: {json.dumps(event, ensure_ascii=False)}\n\n".encode()
                for event in answer["events"]
            )
            self.after = max(self.after, int(answer["last"]))
            status = {"missed": answer["missed"], **({"scope": self.scope} if self.scope else {})}
            if status != last_status or answer["missed"]:
                chunk += f"event: status\ndata: {json.dumps(status)}\n\n".encode()
                last_status = status
            # Idle, a comment: a closed tab then fails the write within a second and frees the thread.
            chunk = chunk or b": idle\n\n"
            sent += len(chunk)
            yield chunk

    def close(self) -> None:
        if not self._released:
            self._released = True
            self._release()
