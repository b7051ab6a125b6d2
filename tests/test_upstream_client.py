"""The upstream client on the wire: what it asks for, and what it refuses, against a loopback server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from shared.upstream import Upstream


@dataclass
class Recorder:
    body: bytes = json.dumps({"text": "  Honey never spoils.  ", "source": "stub"}).encode()
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)


@contextmanager
def loopback_api() -> Iterator[tuple[str, Recorder]]:
    recorder = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            recorder.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(recorder.body)))
            self.end_headers()
            self.wfile.write(recorder.body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/v2/facts/", recorder
    finally:
        server.shutdown()
        server.server_close()


def test_it_asks_for_a_random_fact_in_the_language_as_json_and_names_itself():
    with loopback_api() as (base_url, recorder):  # a base URL with a trailing slash
        fetched = Upstream(base_url, 2.0).random_fact("de")
    assert fetched is not None and fetched.fact == "Honey never spoils." and fetched.source == "stub"
    [(path, headers)] = recorder.requests
    assert path == "/api/v2/facts/random?language=de"
    assert headers["accept"] == "application/json"
    assert headers["user-agent"] == "facts-api"


def test_an_answer_over_64_kib_is_refused():
    with loopback_api() as (base_url, recorder):
        recorder.body = json.dumps({"text": "x" * 70_000, "source": "stub"}).encode()
        assert Upstream(base_url, 2.0).random_fact("en") is None


def test_a_long_source_is_cut_to_200_characters():
    with loopback_api() as (base_url, recorder):
        recorder.body = json.dumps({"text": "A fact.", "source": "s" * 300}).encode()
        fetched = Upstream(base_url, 2.0).random_fact("en")
    assert fetched is not None and fetched.source == "s" * 200
