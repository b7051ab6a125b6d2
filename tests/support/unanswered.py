"""A loopback port that never completes a connect: its accept queue is full, so the kernel drops each
new connection attempt and a client's connect (not its read) runs into the client's own timeout, as
with a server that is down hard or a network that drops packets."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

# More than a listen(0) queue holds (Linux keeps one more than the backlog).
QUEUE_FILLERS = 4


@contextmanager
def unanswered_connect() -> Iterator[int]:
    """Yield the port for the block."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        # Connections never accepted fill the queue; once full, a connect stops completing.
        for _ in range(QUEUE_FILLERS):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
