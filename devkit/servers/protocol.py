"""What every kind of servers hands back: where Postgres and Redis are, and how to stop or restart them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from shared.config import DEFAULT_CACHE_PREFIX


class ServerStartError(RuntimeError):
    """Servers could not be started (no Docker engine, a server that exited, initdb failed)."""


class Server(Protocol):
    """A server we started, which fault tests may stop and start again at the same address."""

    def stop(self) -> None: ...

    def start(self) -> None: ...

    def freeze(self) -> None:
        """Make the server hang (not refuse): connections stay open and nothing answers."""

    def thaw(self) -> None: ...


@dataclass
class Servers:
    database_url: str = field(repr=False)
    redis_url: str = field(repr=False)
    kind: str
    description: str
    startup_s: float = 0.0
    cache_prefix: str = DEFAULT_CACHE_PREFIX
    # None where the servers are not ours to stop (external ones).
    postgres: Server | None = field(default=None, repr=False)
    redis: Server | None = field(default=None, repr=False)

    def environ(self) -> dict[str, str]:
        """The environment variables the functions read to reach these servers."""
        return {"DATABASE_URL": self.database_url, "REDIS_URL": self.redis_url, "FACTS_CACHE_PREFIX": self.cache_prefix}
