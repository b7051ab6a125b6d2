"""The front of Cloud Run on loopback: one port that routes each request to an instance
(devkit.cloudrun.instances) of the revision taking the traffic, holding it while that instance starts."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections.abc import Iterator

from devkit.cloudrun.instances import FUNCTIONS, REQUEST_TIMEOUT_S, Instance
from devkit.servers.ports import free_port
from devkit.servers.waiting import NotReady, wait_until_async


class Front:
    """One loopback port; each connection goes to the next instance of its function in the revision
    that takes the traffic, round robin.

    Requests are one per connection (Connection: close), so round robin per connection is per
    request. A request for an instance that is not listening yet waits for it (bounded), as Cloud
    Run holds requests for a starting instance.
    """

    def __init__(self, instances: list[Instance], started: float) -> None:
        self.port = free_port()
        self._started = started
        self._cycles: dict[tuple[str, int], Iterator[Instance]] = {}
        self.revision = min((i.revision for i in instances), default=1)
        self.add(instances)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="front", daemon=True)

    def add(self, instances: list[Instance]) -> None:
        """Instances of a new revision; they get traffic once switch_to names their revision."""
        for route in FUNCTIONS:
            for revision in {i.revision for i in instances}:
                members = [i for i in instances if i.route == route and i.revision == revision]
                if members:
                    self._cycles[route, revision] = itertools.cycle(members)

    def switch_to(self, revision: int) -> None:
        """Every request from now on goes to `revision` (those in flight finish where they are)."""
        self.revision = revision

    def __enter__(self) -> Front:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the front did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", self.port, backlog=512))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            self._loop.close()

    async def _open(self, instance: Instance) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        # An instance still starting refuses connections: wait for it, as a load balancer would.
        return await wait_until_async(
            lambda: asyncio.open_connection("127.0.0.1", instance.port), 60, f"{instance.name} accepting"
        )

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        instance: Instance | None = None
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT_S)
            path = head.split(b" ", 2)[1]
            instance = next(self._cycles["today" if path.startswith(b"/today") else "random", self.revision])
            instance.in_flight += 1  # in the same step as the choice: no await in between
            up_reader, up_writer = await self._open(instance)
            up_writer.write(head)
            await up_writer.drain()
            response = await asyncio.wait_for(up_reader.read(), REQUEST_TIMEOUT_S)
            up_writer.close()
            status = int(response.split(b" ", 2)[1])
            instance.statuses[status] += 1
            if status == 200 and instance.first_200_s is None:
                instance.first_200_s = time.monotonic() - self._started
            writer.write(response)
            await writer.drain()
        except (TimeoutError, OSError, NotReady, asyncio.IncompleteReadError, IndexError, ValueError):
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        finally:
            if instance is not None:
                instance.in_flight -= 1
            with contextlib.suppress(OSError):
                writer.close()
