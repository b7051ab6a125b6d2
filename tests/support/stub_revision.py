"""A stub revision on loopback: a stand-in for a Cloud Run revision in the tests of the smoke
request, answering each path with what the test sets and recording what it was asked."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

READY = (200, {"status": "ready", "postgres": "ok", "redis": "ok"})
REDIS_DOWN = (200, {"status": "ready", "postgres": "ok", "redis": "down"})


class StubRevision(BaseHTTPRequestHandler):
    """Answers each path with what `answers` holds for it, and records the Authorization header."""

    answers: ClassVar[dict[str, tuple[int, dict[str, str]]]] = {}
    seen: ClassVar[list[tuple[str, str | None]]] = []

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization")))
        status, body = self.answers.get(self.path, (404, {}))
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def stub_revision(answers: dict[str, tuple[int, dict[str, str]]]) -> Iterator[str]:
    """The stub's base URL while it answers `answers`."""
    StubRevision.answers, StubRevision.seen = answers, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubRevision)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
