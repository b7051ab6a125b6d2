"""Free loopback ports. The kernel picks one; a server that then loses the race is retried."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import TypeVar

from devkit.servers.waiting import ServerExited

T = TypeVar("T")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def start_on_free_port(start: Callable[[int], T], port: int = 0, attempts: int = 3) -> T:
    """`start(port)` on `port` (0: a free one). Between free_port() and the server's own bind another
    process may take the port; the server then exits, `start` raises ServerExited, and the next
    attempt gets another free port. `start` stops what it started before it raises."""
    for attempt in range(attempts):
        try:
            return start(port or free_port())
        except ServerExited:
            if attempt == attempts - 1:
                raise
            port = 0
    raise ValueError("attempts must be at least 1")
