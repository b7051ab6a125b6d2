"""The upstream client on the wire: what it asks for, and what it refuses, against a loopback server."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from shared.upstream import Upstream

from .support.unanswered import unanswered_connect
from .support.upstream_stub import serving_on_loopback


@dataclass
class Recorder:
    body: bytes = json.dumps({"text": "  Honey never spoils.  ", "source": "stub"}).encode()
    status: int = 200
    delay_s: float = 0.0
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)


@contextmanager
def loopback_api() -> Iterator[tuple[str, Recorder]]:
    recorder = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            recorder.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
            time.sleep(recorder.delay_s)
            self.send_response(recorder.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(recorder.body)))
            self.end_headers()
            self.wfile.write(recorder.body)

        def log_message(self, *args: object) -> None:
            pass

    with serving_on_loopback(Handler) as port:
        yield f"http://127.0.0.1:{port}/api/v2/facts/", recorder


def test_it_asks_for_a_random_fact_in_the_language_as_json_and_names_itself():
    with loopback_api() as (base_url, recorder):  # a base URL with a trailing slash
        fetched = Upstream(base_url, 2.0).fetch_random("de")
    assert fetched is not None and fetched.fact == "Honey never spoils." and fetched.source == "stub"
    [(path, headers)] = recorder.requests
    assert path == "/api/v2/facts/random?language=de"
    assert headers["accept"] == "application/json"
    assert headers["user-agent"] == "facts-api"


def test_an_answer_over_64_kib_is_refused():
    with loopback_api() as (base_url, recorder):
        recorder.body = json.dumps({"text": "x" * 70_000, "source": "stub"}).encode()
        assert Upstream(base_url, 2.0).fetch_random("en") is None


def test_a_long_source_is_cut_to_200_characters():
    with loopback_api() as (base_url, recorder):
        recorder.body = json.dumps({"text": "A fact.", "source": "s" * 300}).encode()
        fetched = Upstream(base_url, 2.0).fetch_random("en")
    assert fetched is not None and fetched.source == "s" * 200


def test_a_source_that_is_not_text_is_replaced_by_the_host():
    with loopback_api() as (base_url, recorder):
        recorder.body = json.dumps({"text": "A fact.", "source": 123}).encode()
        fetched = Upstream(base_url, 2.0).fetch_random("en")
    assert fetched is not None and fetched.source == "127.0.0.1"


def _warning_for(caplog, recorder_setup) -> list[str]:
    caplog.clear()
    with loopback_api() as (base_url, recorder):
        recorder_setup(recorder)
        assert Upstream(base_url, 0.3).fetch_random("en") is None
    return [r.getMessage() for r in caplog.records if r.name == "shared.upstream"]


def test_each_failure_is_one_warning_that_names_its_kind(caplog):
    def slow(r):
        r.delay_s = 1.0

    def failing(r):
        r.status = 500

    def not_an_object(r):
        r.body = b"[1, 2]"

    def no_text(r):
        r.body = b'{"source": "stub"}'

    tail = "falling back to the catalogue); carrying on without it until it returns"
    assert _warning_for(caplog, slow) == [f"upstream 127.0.0.1 unavailable (timed out; {tail}"]
    assert _warning_for(caplog, failing) == [f"upstream 127.0.0.1 unavailable (HTTPError; {tail}"]
    assert _warning_for(caplog, not_an_object) == [f"upstream 127.0.0.1 unavailable (ValueError; {tail}"]
    assert _warning_for(caplog, no_text) == [f"upstream 127.0.0.1 unavailable (ValueError; {tail}"]


def test_a_connect_that_times_out_is_named_a_timeout(caplog):
    """urllib wraps a connect timeout in URLError (not a TimeoutError): its text is what names it."""
    tail = "falling back to the catalogue); carrying on without it until it returns"
    with unanswered_connect() as port:
        started = time.monotonic()
        assert Upstream(f"http://127.0.0.1:{port}/api/v2/facts/", 0.3).fetch_random("en") is None
        waited = time.monotonic() - started
    assert [r.getMessage() for r in caplog.records if r.name == "shared.upstream"] == [
        f"upstream 127.0.0.1 unavailable (timed out; {tail}"
    ]
    # The client's own timeout ended the wait (no refusal, no reset): a connect that never completed.
    assert waited >= 0.3


def test_the_base_url_is_kept_to_its_last_letter():
    """Only the trailing slash is dropped: a path ending in a letter the code might strip stays whole."""
    with loopback_api() as (base_url, recorder):
        assert Upstream(base_url.replace("/facts/", "/factsX/"), 2.0).fetch_random("en") is not None
    assert recorder.requests[0][0] == "/api/v2/factsX/random?language=en"
