"""Postgres and Redis in containers through testcontainers (official images unless overridden)."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from typing import Any

import docker
import docker.errors
import pg8000.native
import redis

from devkit.servers.ports import free_port
from devkit.servers.processes import pid_alive
from devkit.servers.protocol import Servers, ServerStartError
from devkit.servers.waiting import wait_until

POSTGRES_IMAGE = "postgres:16.10"
REDIS_IMAGE = "redis:7.4.6"
OWNER_LABEL = "org.facts-api.owner-pid"
DATABASE = "facts"


def images() -> tuple[str, str]:
    return os.environ.get("FACTS_POSTGRES_IMAGE", POSTGRES_IMAGE), os.environ.get("FACTS_REDIS_IMAGE", REDIS_IMAGE)


def docker_available(timeout_s: float = 2.0) -> bool:
    """True when a Docker engine answers (DOCKER_HOST or the default socket)."""
    try:
        client = docker.from_env(timeout=int(max(1, timeout_s)))
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def remove_orphans() -> None:
    """Remove containers of earlier runs whose process died without cleaning up (killed hard)."""
    client = docker.from_env()
    try:
        for container in client.containers.list(all=True, filters={"label": OWNER_LABEL}):
            owner = int(container.labels.get(OWNER_LABEL, "0") or 0)
            if owner and not pid_alive(owner):
                container.remove(force=True)
    finally:
        client.close()


class ContainerServer:
    """A started container that can be stopped and started again on the same host port."""

    def __init__(self, container: Any, ready: Any) -> None:
        self.container = container
        self._ready = ready

    def stop(self) -> None:
        self.container.get_wrapped_container().stop(timeout=5)

    def freeze(self) -> None:
        self.container.get_wrapped_container().pause()

    def thaw(self) -> None:
        self.container.get_wrapped_container().unpause()

    def start(self) -> None:
        self.container.get_wrapped_container().start()
        wait_until(self._ready, 60, f"container {self.container.image}")


@contextmanager
def container_servers() -> Iterator[Servers]:
    """One Postgres and one Redis container, published on loopback ports, removed on exit."""
    try:
        from testcontainers.community.postgres import PostgresContainer
        from testcontainers.community.redis import RedisContainer
    except ImportError:  # testcontainers before 4.14
        from testcontainers.postgres import PostgresContainer
        from testcontainers.redis import RedisContainer

    began = time.perf_counter()
    postgres_image, redis_image = images()
    labels = {OWNER_LABEL: str(os.getpid())}
    pg_password, redis_password = secrets.token_hex(12), secrets.token_hex(12)
    pg_port, redis_port = free_port(), free_port()
    postgres = PostgresContainer(
        postgres_image, username="facts", password=pg_password, dbname=DATABASE, driver=None
    ).with_kwargs(labels=labels)
    cache = RedisContainer(redis_image, password=redis_password).with_kwargs(labels=labels)
    # Fixed loopback host ports (docker-py's (ip, port) form, which with_bind_ports cannot express):
    # reachable only from this machine, and the same again after a stop and start in fault tests.
    postgres.ports = {"5432/tcp": ("127.0.0.1", pg_port)}  # type: ignore[dict-item]
    cache.ports = {"6379/tcp": ("127.0.0.1", redis_port)}  # type: ignore[dict-item]
    with ExitStack() as stack, ThreadPoolExecutor(1) as starter:
        # Removal is registered before starting, so a failed start still removes what did start.
        stack.callback(postgres.stop)
        stack.callback(cache.stop)
        redis_started = starter.submit(cache.start)  # in parallel: Postgres takes longer
        try:
            postgres.start()
            redis_started.result()
        except docker.errors.DockerException as exc:  # most often: an image that cannot be pulled
            raise ServerStartError(
                f"could not start the containers ({postgres_image}, {redis_image}): {exc}. Without a "
                "registry, build local images (ci/images/README.md) and name them in FACTS_POSTGRES_IMAGE and "
                "FACTS_REDIS_IMAGE (with TESTCONTAINERS_RYUK_DISABLED=true), or choose embedded servers "
                "(--servers embedded)"
            ) from None
        host = postgres.get_container_host_ip()
        pg_port = int(postgres.get_exposed_port(5432))
        redis_port = int(cache.get_exposed_port(6379))

        def postgres_ready() -> None:
            pg8000.native.Connection(
                "facts", password=pg_password, host=host, port=pg_port, database=DATABASE, timeout=2
            ).close()

        def redis_ready() -> None:
            redis.Redis(host=host, port=redis_port, password=redis_password, socket_timeout=2).ping()

        # The image's init scripts restart Postgres once; wait for the real server from here too.
        wait_until(postgres_ready, 60, f"Postgres container {postgres_image}")
        yield Servers(
            database_url=f"postgresql://facts:{pg_password}@{host}:{pg_port}/{DATABASE}",
            redis_url=f"redis://:{redis_password}@{host}:{redis_port}/0",
            kind="containers",
            description=f"containers {postgres_image} on {host}:{pg_port}, {redis_image} on {host}:{redis_port}",
            startup_s=time.perf_counter() - began,
            postgres=ContainerServer(postgres, postgres_ready),
            redis=ContainerServer(cache, redis_ready),
        )
