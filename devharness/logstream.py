"""The request log, carried from every gunicorn worker to the dashboard's live view.

Workers are separate processes, and a browser's stream lands on one of them, so the lines meet in
one place: a `LogHub` in the harness's main process (gunicorn's arbiter), reached over Unix
sockets in a private temporary folder. Each worker's `LogForwarder` (a logging handler) hands
request lines to a bounded queue that one thread of that worker sends on; a stream asks the hub for
the lines after the last one it showed.

Nothing here can slow a request down: forwarding only happens while a dashboard watches (a
shared timestamp the hub renews on every query), the request thread never blocks or makes a
system call for it, and every queue is bounded, with what it had to drop counted and shown.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import queue
import shutil
import socket
import socketserver
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.request_line import REQUEST_LINE_KEYS, is_request_line

# Lines kept in the hub for a newly opened tab or a reader that fell behind.
HUB_CAPACITY = 1000
# Lines a worker holds while its sender catches up; more are dropped and counted.
WORKER_QUEUE_SIZE = 1000
# How long lines are forwarded after a dashboard last asked for them.
WATCH_S = 30.0
# At most this many lines per datagram (well under the kernel's datagram limit).
BATCH = 50
# The fields of a request's log line that the live log shows, and the longest text kept of each.
MAX_FIELD_CHARS = 200


@dataclass(frozen=True)
class HubAddress:
    """What a worker needs to reach the hub; made before gunicorn forks, so every worker shares it."""

    ingest: str
    query: str
    watched_until: Any  # multiprocessing.RawValue("d"): shared memory, inherited across fork

    def watched(self) -> bool:
        return time.time() < float(self.watched_until.value)


class LogHub:
    """The harness main process's side: receives lines from workers, answers the streams' queries."""

    def __init__(self, capacity: int = HUB_CAPACITY) -> None:
        self._owner_pid = os.getpid()
        self._folder = Path(tempfile.mkdtemp(prefix="facts-log-"))
        os.chmod(self._folder, 0o700)  # only this user's processes may send or read lines
        self.address = HubAddress(
            str(self._folder / "ingest"), str(self._folder / "query"), multiprocessing.RawValue("d", 0.0)
        )
        self._events: deque[dict[str, Any]] = deque(maxlen=capacity)
        self._next_seq = 1
        self._dropped_by_worker: dict[int, int] = {}
        self._changed = threading.Condition()
        self._ingest = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._ingest.bind(self.address.ingest)
        self._ingest.settimeout(0.5)  # so close() is noticed
        hub = self

        class Handler(socketserver.StreamRequestHandler):
            timeout = 5.0  # a reader that stops reading gives its thread back

            def handle(self) -> None:
                try:
                    asked = json.loads(self.rfile.readline(1000))
                    after, wait_s = int(asked["after"]), min(max(float(asked["wait_s"]), 0.0), 5.0)
                except (ValueError, KeyError, TypeError):
                    return
                self.wfile.write(json.dumps(hub.read(after, wait_s)).encode() + b"\n")

        self._server = socketserver.ThreadingUnixStreamServer(self.address.query, Handler)
        self._server.daemon_threads = True
        self._running = True
        self._threads = [
            threading.Thread(target=self._receive, name="log-hub-ingest", daemon=True),
            # Polls for shutdown every 50 ms: close() (the harness stopping) waits for the next poll.
            threading.Thread(target=self._server.serve_forever, args=(0.05,), name="log-hub-query", daemon=True),
        ]

    def start(self) -> LogHub:
        for thread in self._threads:
            thread.start()
        return self

    def close(self) -> None:
        if os.getpid() != self._owner_pid:
            # A gunicorn worker leaves the harness's code through this `with` block too (its
            # SystemExit unwinds the stack it inherited by fork); the hub is not its to stop.
            return
        self._running = False
        self._server.shutdown()
        self._server.server_close()
        self._ingest.close()
        shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self) -> LogHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _receive(self) -> None:
        while self._running:
            try:
                datagram = self._ingest.recv(1 << 20)
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            try:
                batch = json.loads(datagram)
                self.add(batch["events"], int(batch["pid"]), int(batch["dropped"]))
            except (ValueError, KeyError, TypeError):
                continue  # not ours; the socket is private, so this would be a bug, not an attack

    def add(self, events: list[dict[str, Any]], pid: int = 0, dropped: int = 0) -> None:
        with self._changed:
            for event in events:
                self._events.append({**event, "seq": self._next_seq})
                self._next_seq += 1
            self._dropped_by_worker[pid] = dropped
            self._changed.notify_all()

    def read(self, after: int, wait_s: float) -> dict[str, Any]:
        """The lines after `after` (waiting up to `wait_s` for one), what workers dropped, and how
        many lines this reader missed because they left the hub before it asked."""
        self.address.watched_until.value = time.time() + WATCH_S
        with self._changed:
            if after > self._next_seq - 1:
                after = 0  # a reader from before the harness restarted: start again
            self._changed.wait_for(lambda: self._next_seq - 1 > after, timeout=wait_s)
            events = [event for event in self._events if event["seq"] > after]
            oldest = events[0]["seq"] if events else self._next_seq
            return {
                "events": events,
                "last": self._next_seq - 1,
                "dropped": sum(self._dropped_by_worker.values()),
                "missed": max(0, oldest - after - 1) if after > 0 else 0,
            }


def query_hub(address: HubAddress, after: int, wait_s: float) -> dict[str, Any]:
    """One question to the hub: the lines after `after`, waiting up to `wait_s` for one."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(wait_s + 5.0)
        sock.connect(address.query)
        sock.sendall(json.dumps({"after": after, "wait_s": wait_s}).encode() + b"\n")
        with sock.makefile("rb") as answer:
            return dict(json.loads(answer.readline()))


def _shown(value: Any) -> Any:
    return value[:MAX_FIELD_CHARS] if isinstance(value, str) else value


class LogForwarder(logging.Handler):
    """A worker's side: request lines (records with `fields`) go to the hub while a dashboard watches."""

    def __init__(self, address: HubAddress, queue_size: int = WORKER_QUEUE_SIZE) -> None:
        super().__init__()
        self.address = address
        self.dropped = 0
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(queue_size)
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.setblocking(False)  # a hub that cannot keep up costs lines, never time
        threading.Thread(target=self._send_forever, name="log-forwarder", daemon=True).start()

    def handle(self, record: logging.LogRecord) -> bool:
        # Overridden without the handler lock: the queue is thread-safe, and this runs on every request.
        fields = getattr(record, "fields", None)
        if not is_request_line(fields) or not self.address.watched():
            return False
        line: dict[str, Any] = dict(fields)
        event = {"time": record.created, **{key: _shown(line[key]) for key in REQUEST_LINE_KEYS if key in line}}
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.handle(record)

    def _batches(self) -> Iterator[list[dict[str, Any]]]:
        while True:
            batch = [self._queue.get()]
            with contextlib.suppress(queue.Empty):
                while len(batch) < BATCH:
                    batch.append(self._queue.get_nowait())
            yield batch

    def _send_forever(self) -> None:
        for batch in self._batches():
            datagram = json.dumps({"events": batch, "pid": os.getpid(), "dropped": self.dropped}).encode()
            try:
                self._socket.sendto(datagram, self.address.ingest)
            except OSError:  # hub busy (buffer full) or gone: count the lines, carry on
                self.dropped += len(batch)


def forward_request_logs(address: HubAddress) -> LogForwarder:
    """Send this process's request lines (the functions' and the harness's own) to the hub."""
    forwarder = LogForwarder(address)
    for name in ("facts.requests", "facts.harness"):
        logging.getLogger(name).addHandler(forwarder)
    return forwarder
