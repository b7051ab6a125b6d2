"""Clients of a front (devkit.cloudrun.instances): one request, a bounded burst, or a steady load that runs
until stopped; every answer recorded with its status, time and body."""

from __future__ import annotations

import http.client
import itertools
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from devkit.cloudrun.instances import FUNCTIONS, REQUEST_TIMEOUT_S

PAUSE_AFTER_503_S = 0.2  # a real client waits Retry-After (2 s); the rehearsal keeps the pressure on


@dataclass
class Answer:
    route: str
    language: str
    status: int
    seconds: float
    retry_after: str | None
    body: dict[str, Any] | None
    started: float = 0.0  # time.monotonic() when it was sent


def request(port: int, route: str, language: str, etag: str | None) -> tuple[Answer, str | None]:
    headers = {"Connection": "close"}
    if etag:
        headers["If-None-Match"] = etag
    began = time.monotonic()
    con = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)
    try:
        con.request("GET", f"/{route}?language={language}", headers=headers)
        response = con.getresponse()
        raw = response.read()
    finally:
        con.close()
    body = json.loads(raw) if raw and response.getheader("Content-Type", "").startswith("application/json") else None
    answer = Answer(
        route, language, response.status, time.monotonic() - began, response.getheader("Retry-After"), body, began
    )
    return answer, response.getheader("ETag")


def burst(
    port: int,
    clients: int,
    requests: int,
    languages: list[str],
    routes: tuple[str, ...] = tuple(FUNCTIONS),
    deadline_s: float = 180.0,
) -> list[Answer]:
    """`clients` threads share `requests` requests, alternating `routes` and languages; a client
    that saw the day's ETag sends it back every other time (a 304, still a view). No request
    starts after `deadline_s`."""
    answers: list[Answer] = []
    lock = threading.Lock()
    counter = itertools.count()
    start = threading.Barrier(clients)
    end = time.monotonic() + deadline_s

    def client(number: int) -> None:
        etags: dict[str, str] = {}
        start.wait(30)
        for _ in range(requests):  # bounded: at most `requests` for all clients together
            n = next(counter)
            if n >= requests or time.monotonic() > end:
                return
            route = routes[(n + number) % len(routes)]
            language = languages[(n // 2) % len(languages)]
            etag = etags.get(language) if route == "today" and n % 4 == 1 else None
            answer, new_etag = request(port, route, language, etag)
            if route == "today" and new_etag:
                etags[language] = new_etag
            with lock:
                answers.append(answer)
            if answer.status == 503:
                time.sleep(PAUSE_AFTER_503_S)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, end - time.monotonic()) + REQUEST_TIMEOUT_S + 1)
    return answers


class Load:
    """`clients` threads asking without pause, alternating the functions and `languages`, from
    entering the block until stop() (or leaving it); bounded by `max_requests` and `deadline_s`
    whatever happens. A client that saw the day's ETag sends it back every other time (a 304,
    still a view)."""

    def __init__(self, port: int, clients: int, languages: list[str], max_requests: int, deadline_s: float) -> None:
        self._port, self._clients, self._languages = port, clients, languages
        self._max_requests, self._deadline_s = max_requests, deadline_s
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._counter = itertools.count()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(n,), daemon=True) for n in range(clients)]

    def __enter__(self) -> Load:
        self._end = time.monotonic() + self._deadline_s
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(REQUEST_TIMEOUT_S + 1)

    @property
    def exhausted(self) -> bool:
        """Whether the load ended by its bounds rather than by stop()."""
        return not self._stop.is_set() and not any(t.is_alive() for t in self._threads)

    def count(self, since: float = 0.0) -> int:
        with self._lock:
            return sum(1 for a in self.answers if a.started >= since)

    def _client(self, number: int) -> None:
        etags: dict[str, str] = {}
        routes = tuple(FUNCTIONS)
        while not self._stop.is_set() and time.monotonic() < self._end:
            n = next(self._counter)
            if n >= self._max_requests:
                return
            route = routes[(n + number) % len(routes)]
            language = self._languages[(n // 2) % len(self._languages)]
            etag = etags.get(language) if route == "today" and n % 4 == 1 else None
            try:
                answer, new_etag = request(self._port, route, language, etag)
            except OSError as exc:  # the front itself failed: recorded as such, never hidden
                answer, new_etag = Answer(route, language, 599, 0.0, None, {"error": str(exc)}, time.monotonic()), None
            if route == "today" and new_etag:
                etags[language] = new_etag
            with self._lock:
                self.answers.append(answer)
            if answer.status == 503:
                time.sleep(PAUSE_AFTER_503_S)
