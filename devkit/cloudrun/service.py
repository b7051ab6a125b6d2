"""One function as a Cloud Run service: instances that start on demand up to max-instances, take
up to `concurrency` requests each, are frozen while no request is in flight, and are stopped when
idle too long or when their revision no longer takes the traffic.

Everything here runs on the front's event loop (devkit.cloudrun.autoscale); other threads read
`view()` only.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from devkit.cloudrun.cold_start import ColdStart
from devkit.cloudrun.instances import Instance

STOPPED_KEPT = 8  # stopped instances still shown, per service
COLD_STARTS_KEPT = 20


@dataclass(frozen=True)
class Limits:
    max_instances: int
    concurrency: int
    request_timeout_s: float  # the deploy's --timeout: the whole request, queue and cold start included
    queue_timeout_s: float = 10.0  # how long a request waits for a free instance before the 429
    idle_stop_s: float = 120.0  # an instance with no request for this long is stopped
    retire_s: float = 2.0  # an old revision's idle instance is stopped after this


class NoInstance(Exception):
    """Every instance is busy and max-instances are running: Cloud Run's 429."""


class StartFailed(Exception):
    """The instance exited before it listened: Cloud Run's 503."""


Launch = Callable[[str, int, int], Instance]  # route, index, revision -> a started instance
Event = Callable[[str, str], None]  # kind, text


class Service:
    def __init__(self, route: str, limits: Limits, launch: Launch, event: Event, revision: int = 1) -> None:
        self.route, self.limits, self._launch, self._event = route, limits, launch, event
        self.revision = revision
        self.instances: list[Instance] = []
        self.cold_starts: list[ColdStart] = []
        self._cold: dict[str, ColdStart] = {}
        self.queued = 0
        self._indexes = itertools.count()
        self._changed = asyncio.Condition()
        self._ready: dict[str, asyncio.Event] = {}

    def live(self, revision: int | None = None) -> list[Instance]:
        return [i for i in self.instances if i.state != "stopped" and (revision is None or i.revision == revision)]

    def _free(self) -> Instance | None:
        candidates = [i for i in self.live(self.revision) if i.in_flight < self.limits.concurrency]
        # The busiest first: requests gather on few instances and the rest stay idle, as on Cloud Run.
        return max(candidates, key=lambda i: (i.listening_at is not None, i.in_flight), default=None)

    def start(self, revision: int | None = None, ahead: bool = False, launch: Launch | None = None) -> Instance:
        """A new instance (of `launch`'s revision, else the serving one's); `ahead` of its traffic (a
        new revision's): its cold start ends when it listens."""
        instance = (launch or self._launch)(self.route, next(self._indexes), revision or self.revision)
        self.instances.append(instance)
        cold = ColdStart(instance.name, instance.revision, time.time(), ahead=ahead)
        self._cold[instance.name] = cold
        self.cold_starts = [*self.cold_starts, cold][-COLD_STARTS_KEPT:]
        self._ready[instance.name] = asyncio.Event()
        self._event("cold-start", f"{instance.name} starting")
        asyncio.get_running_loop().create_task(self._watch_start(instance))
        return instance

    async def _watch_start(self, instance: Instance) -> None:
        while instance.state == "starting":
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", instance.port)
                writer.close()
                instance.listening_at = time.monotonic()
                self._cold[instance.name].listened(instance.listening_at - instance.spawned_at, instance.log_path)
            except OSError:
                await asyncio.sleep(0.02)
        if instance.listening_at is None:
            self._cold[instance.name].outcome = "failed"
            self._event("cold-start", f"{instance.name} exited before it listened (see {instance.log_path})")
        elif instance.in_flight == 0:
            instance.freeze()  # started ahead of its traffic (a new revision): no CPU until a request
        self._ready[instance.name].set()
        async with self._changed:
            self._changed.notify_all()

    async def acquire(self, deadline: float) -> Instance:
        """An instance for one request (thawed, listening), starting one if none is free and the
        limit allows; waits in the queue otherwise."""
        self.queued += 1
        try:
            instance = await self._claim(deadline)
        finally:
            self.queued -= 1
        try:
            await asyncio.wait_for(self._ready[instance.name].wait(), max(0.0, deadline - time.monotonic()))
            if instance.listening_at is None:
                raise StartFailed(instance.name)
        except BaseException:
            await self.release(instance)
            raise
        instance.thaw()
        return instance

    async def _claim(self, deadline: float) -> Instance:
        queue_end = min(deadline, time.monotonic() + self.limits.queue_timeout_s)
        async with self._changed:
            while True:
                instance = self._free()
                if instance is None and len(self.live()) < self.limits.max_instances:
                    instance = self.start()
                if instance is not None:
                    instance.in_flight += 1
                    return instance
                try:
                    await asyncio.wait_for(self._changed.wait(), max(0.0, queue_end - time.monotonic()))
                except TimeoutError:
                    raise NoInstance(self.route) from None

    async def release(self, instance: Instance, answered: bool = False) -> None:
        instance.in_flight -= 1
        instance.last_used = time.monotonic()
        cold = self._cold.get(instance.name)
        if answered and cold is not None:
            if cold.total_s is None and instance.listening_at is not None:
                cold.answered(instance.last_used - instance.spawned_at, instance.listening_at - instance.spawned_at)
                self._event("cold-start", f"{instance.name} answered its first request after {cold.total_s:.2f} s")
            else:
                cold.settle_connections(instance.log_path)
        if instance.in_flight == 0 and instance.state == "serving":
            instance.freeze()  # no request in flight: no CPU, as Cloud Run throttles it
        async with self._changed:
            self._changed.notify_all()

    def due_to_stop(self, now: float) -> list[Instance]:
        """Idle instances to stop: idle too long, or of a revision that no longer takes traffic."""
        return [
            i
            for i in self.live()
            if i.in_flight == 0
            and i.listening_at is not None
            and now - i.last_used > (self.limits.idle_stop_s if i.revision == self.revision else self.limits.retire_s)
        ]

    def forget_stopped(self) -> None:
        stopped = [i for i in self.instances if i.state == "stopped"]
        for old in stopped[:-STOPPED_KEPT]:
            self.instances.remove(old)
            self._ready.pop(old.name, None)

    def view(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "revision": self.revision,
            "queued": self.queued,
            "in_flight": sum(i.in_flight for i in self.instances),
            "limits": self.limits.__dict__,
            "instances": [
                {
                    "name": i.name,
                    "revision": i.revision,
                    "state": i.state,
                    "in_flight": i.in_flight,
                    "idle_s": round(time.monotonic() - i.last_used, 1) if i.in_flight == 0 else 0.0,
                }
                for i in list(self.instances)
            ],
            "cold_starts": [c.view() for c in reversed(self.cold_starts)],
        }
