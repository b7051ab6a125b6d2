"""Postgres + Redis for the harness and the tests: external, embedded or containers.

Every provider is a context manager yielding the same `ProvidedServers` and stopping only what it started.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

from .servers import ProvidedServers, ProviderError

KINDS = ("auto", "embedded", "containers", "external")

__all__ = ["KINDS", "ProvidedServers", "ProviderError", "provide"]


def provide(
    kind: str, data_dir: Path, durable: bool, namespace: str | None = None
) -> AbstractContextManager[ProvidedServers]:
    """Servers of the given kind (not 'auto': callers resolve that by their own rule).

    `namespace` (tests) isolates external servers per worker; `durable` keeps embedded data safe on disk.
    """
    if kind == "external":
        from .external import external_servers, isolated_external_servers

        return isolated_external_servers(namespace) if namespace else external_servers()
    if kind == "embedded":
        from .embedded import embedded_servers

        return embedded_servers(data_dir, durable=durable)
    if kind == "containers":
        from .containers import container_servers, docker_available, remove_orphans

        if not docker_available():
            raise ProviderError(
                "no Docker engine answers (checked DOCKER_HOST or the default socket); start one, "
                "or choose the embedded services (--services embedded)"
            )
        remove_orphans()
        return container_servers()
    raise ValueError(f"unknown services kind {kind!r}; expected one of {', '.join(KINDS[1:])}")
