"""Cloud Run on loopback, scaling: one port in front of a Service per function
(devkit.cloudrun.service), routing /<route>... to that function's instances (which see "/...", as
each service has its own URL on Cloud Run) and every other path to `fallback_port` (the harness's
own app), if any.

Its answers where Cloud Run itself answers: 429 when no instance is free within the queue's
wait, 504 when a request (its wait and cold start included) outlives the deploy's --timeout, 503
when an instance exits before it listens or while it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from devkit.cloudrun.instances import Instance
from devkit.cloudrun.service import Event, Launch, Limits, NoInstance, Service, StartFailed
from devkit.servers.ports import free_port

REAP_EVERY_S = 0.5
HEAD_TIMEOUT_S = 30.0
MAX_HEAD = 64 * 1024
MAX_BODY = 10 * 1024 * 1024
# Request lines: function target, method, path, status, seconds, instance name (or None).
RequestSeen = Callable[[str, str, str, int, float, str | None], None]
CLOUD_RUN_ANSWERS = {
    429: "Rate exceeded: the request was aborted because there was no available instance.",
    503: "Service Unavailable: the instance failed to start or ended while answering.",
    504: "upstream request timeout",
    400: "Bad Request",
}


def platform_answer(status: int) -> bytes:
    """Cloud Run's own answer (plain text, as its front end sends), not the function's."""
    body = CLOUD_RUN_ANSWERS[status].encode()
    reason = {400: "Bad Request", 429: "Too Many Requests", 503: "Service Unavailable", 504: "Gateway Timeout"}
    head = f"HTTP/1.1 {status} {reason[status]}\r\nContent-Type: text/plain; charset=utf-8\r\n"
    retry = "Retry-After: 1\r\n" if status in (429, 503) else ""
    return f"{head}{retry}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body


def _with_close(head: bytes, target: bytes) -> bytes:
    """The request head with `target` as its path and Connection: close (one request per connection)."""
    lines = head.split(b"\r\n")
    method, _, version = lines[0].split(b" ", 2)
    kept = [line for line in lines[1:] if line and not line.lower().startswith((b"connection:", b"keep-alive:"))]
    return b"\r\n".join([b" ".join([method, target, version]), *kept, b"Connection: close", b"", b""])


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


class CloudRunFront:
    def __init__(
        self,
        routes: dict[str, str],  # route -> target, e.g. {"random": "random_fact"}
        limits: Limits,
        launch: Launch,
        event: Event,
        seen: RequestSeen,
        port: int | None = None,
        host: str = "127.0.0.1",
        fallback_port: int | None = None,
    ) -> None:
        self.host, self.port = host, port or free_port()
        self.routes, self.fallback_port = routes, fallback_port
        self._launch, self._event, self._seen, self._limits = launch, event, seen, limits
        self.services: dict[str, Service] = {}
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name="cloud-run-front", daemon=True)

    # --- the loop's life -------------------------------------------------------------------
    def __enter__(self) -> CloudRunFront:
        self._thread.start()
        if not self._ready.wait(15) or self._error is not None:
            raise RuntimeError(f"the Cloud Run front did not start: {self._error}")
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(RuntimeError):
            self.call(self._stop_all()).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def call(self, coroutine: Any) -> Future[Any]:
        """Run `coroutine` on the front's loop (from any other thread)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self.services = {r: Service(r, self._limits, self._launch, self._event) for r in self.routes}
            server = self._loop.run_until_complete(
                asyncio.start_server(self._handle, self.host, self.port, backlog=512)
            )
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        reaper = self._loop.create_task(self._reap())
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            reaper.cancel()
            self._loop.run_until_complete(asyncio.gather(reaper, return_exceptions=True))
            server.close()
            self._loop.close()

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(REAP_EVERY_S)
            now = time.monotonic()
            for service in self.services.values():
                for instance in service.due_to_stop(now):
                    why = "idle" if instance.revision == service.revision else "old revision"
                    await self._stop(instance, f"{instance.name} stopped ({why})")
                service.forget_stopped()

    async def _stop(self, instance: Instance, text: str) -> None:
        instance.stopped = True  # at once: no new request picks it while it ends
        await asyncio.to_thread(instance.stop)
        self._event("stop", text)

    async def _stop_all(self) -> None:
        for service in self.services.values():
            for instance in service.live():
                await self._stop(instance, f"{instance.name} stopped (the harness is stopping)")

    # --- what the harness asks -------------------------------------------------------------
    async def evict(self, name: str) -> bool:
        """Stop the instance `name` now, so the next request pays a cold start."""
        for service in self.services.values():
            for instance in service.live():
                if instance.name == name:
                    await self._stop(instance, f"{instance.name} evicted: the next request pays a cold start")
                    return True
        return False

    async def deploy(self, revision: int, launch: Launch) -> bool:
        """A new revision: one instance per function from `launch`; traffic switches to it once every
        function's new instance listens; the old instances are then frozen and stopped when idle."""
        # Until it listens, the serving revision's cold starts still launch from the serving revision's copy.
        started = [service.start(revision, ahead=True, launch=launch) for service in self.services.values()]
        deadline = time.monotonic() + self._limits.request_timeout_s
        while any(i.state == "starting" for i in started) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if not all(i.listening_at is not None and i.state != "stopped" for i in started):
            for instance in started:
                await self._stop(instance, f"{instance.name} stopped (revision {revision} did not start)")
            self._event("deploy", f"revision {revision} failed to start: traffic stays where it was")
            return False
        self._launch = launch
        for service in self.services.values():
            service.revision, service._launch = revision, launch
        self._event("deploy", f"revision {revision} takes the traffic")
        return True

    def view(self) -> dict[str, Any]:
        return {"services": [s.view() for s in list(self.services.values())]}

    # --- a request -------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
            method, target = head.split(b" ", 2)[:2]
            length = _content_length(head)
            if length > MAX_BODY:
                raise ValueError("body too large")
            body = await reader.readexactly(length) if length else b""
        except (TimeoutError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            with contextlib.suppress(OSError):
                writer.write(platform_answer(400))
                writer.close()
            return
        route = target.split(b"?", 1)[0].split(b"/")[1].decode("latin-1") if target.startswith(b"/") else ""
        try:
            if route in self.services:
                rest = target[len(route) + 1 :]
                inner = rest if rest.startswith(b"/") else b"/" + rest
                await self._to_function(self.services[route], method, target, _with_close(head, inner) + body, writer)
            elif self.fallback_port is not None:
                await self._pipe(self.fallback_port, _with_close(head, target) + body, writer, None)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                writer.close()

    async def _to_function(
        self, service: Service, method: bytes, target: bytes, request: bytes, writer: asyncio.StreamWriter
    ) -> None:
        began = time.monotonic()
        deadline = began + service.limits.request_timeout_s
        status, instance, answered = 0, None, False
        try:
            instance = await service.acquire(deadline)
            status = await self._pipe(instance.port, request, writer, deadline)
            answered = status > 0
        except NoInstance:
            status = 429
        except StartFailed:
            status = 503
        except TimeoutError:
            status = 504
        except OSError:  # the instance ended under the request
            status = 503
        finally:
            if instance is not None:
                await service.release(instance, answered)
        if not answered:
            if instance is not None and instance.state == "stopped":
                status = 503
            writer.write(platform_answer(status))
        self._seen(
            self.routes[service.route],
            method.decode("latin-1"),
            target.decode("latin-1"),
            status,
            time.monotonic() - began,
            instance.name if instance is not None else None,
        )

    async def _pipe(self, port: int, request: bytes, writer: asyncio.StreamWriter, deadline: float | None) -> int:
        """Send `request` to `port` and stream its answer back; its status, or 0 if none came."""
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            up_writer.write(request)
            await up_writer.drain()
            status = 0
            while True:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError
                chunk = await asyncio.wait_for(up_reader.read(65536), left)
                if not chunk:
                    return status
                if status == 0:
                    status = int(chunk.split(b" ", 2)[1])
                writer.write(chunk)
                await writer.drain()
        finally:
            up_writer.close()
