"""A STUB of a uselessfacts-compatible API, for tests only: the real one cannot be reached here.

It serves `GET /random?language=xx` on a loopback port, and can be told to fail or to be slow.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

SHUTDOWN_POLL_S = 0.02


@contextmanager
def serving_on_loopback(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    """Serve `handler` on a free loopback port for the block; yields the port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    # shutdown() waits for the loop's next poll: the default 0.5 s would cost each test that long.
    thread = threading.Thread(target=server.serve_forever, args=(SHUTDOWN_POLL_S,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


class StubState:
    def __init__(self) -> None:
        self.mode = "ok"  # ok | error | slow | garbage
        self.text = "Stub fact: the upstream said this."
        self.delay_s = 3.0
        self.requests = 0


@contextmanager
def upstream_stub() -> Iterator[tuple[str, StubState]]:
    state = StubState()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests += 1
            parts = urlsplit(self.path)
            language = parse_qs(parts.query).get("language", ["en"])[0]
            if parts.path != "/random" or state.mode == "error":
                self._send(500 if parts.path == "/random" else 404, b'{"error": "stub failure"}')
                return
            if state.mode == "slow":
                time.sleep(state.delay_s)
            if state.mode == "garbage":
                self._send(200, b"<html>not json</html>")
                return
            body = {"id": "stub", "text": state.text, "source": "stub-upstream", "language": language}
            self._send(200, json.dumps(body).encode())

        def _send(self, status: int, payload: bytes) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (the slow case): that is the point

        def log_message(self, *args: object) -> None:
            pass

    with serving_on_loopback(Handler) as port:
        yield f"http://127.0.0.1:{port}", state
