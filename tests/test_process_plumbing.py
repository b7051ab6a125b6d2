"""devkit' one helper per job: waiting (wait_until), the port race (start_on_free_port), stopping."""

from __future__ import annotations

import asyncio
import secrets
import signal
import socket
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
import redis

from devkit.servers.embedded import EmbeddedRedis
from devkit.servers.ports import free_port, start_on_free_port
from devkit.servers.processes import pid_alive, spawn, terminate
from devkit.servers.waiting import GiveUp, NotReady, ServerExited, wait_until, wait_until_async

T = TypeVar("T")


def test_wait_until_returns_the_first_answer_that_does_not_raise():
    answers = iter([ValueError("not yet"), ValueError("not yet"), 42])

    def check():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert wait_until(check, 5, "the answer") == 42


def test_wait_until_gives_up_after_the_deadline_naming_what_and_why():
    began = time.monotonic()
    with pytest.raises(NotReady, match=r"the answer not ready after 0.3 s: still nothing\nthe log tail"):
        wait_until(
            lambda: (_ for _ in ()).throw(ValueError("still nothing")), 0.3, "the answer", lambda: "the log tail"
        )
    assert 0.3 <= time.monotonic() - began < 5


def test_a_check_that_gives_up_ends_the_wait_at_once():
    began = time.monotonic()
    with pytest.raises(ServerExited, match="the server: exited with 1"):
        wait_until(lambda: _raise(ServerExited("exited with 1")), 30, "the server")
    assert time.monotonic() - began < 5  # not the 30 s deadline


def test_the_async_twin_waits_without_blocking_and_gives_up_the_same_way():
    calls = 0

    async def check():
        nonlocal calls
        calls += 1
        if calls < 3:
            raise OSError("refused")
        return "open"

    assert _run(lambda: wait_until_async(check, 5, "the port")) == "open"

    async def answered_an_error():
        raise GiveUp("answered 500")

    with pytest.raises(GiveUp, match="the port: answered 500"):
        _run(lambda: wait_until_async(answered_an_error, 30, "the port"))


def test_a_server_that_exited_is_started_again_on_another_port():
    tried: list[int] = []

    def start(port: int) -> int:
        tried.append(port)
        if len(tried) < 3:
            raise ServerExited("address in use")
        return port

    assert start_on_free_port(start, port=1) == tried[-1]
    assert tried[0] == 1 and len(tried) == 3 and 1 not in tried[1:]
    tried.clear()
    with pytest.raises(ServerExited):
        start_on_free_port(start, port=1, attempts=2)
    assert len(tried) == 2


def test_any_other_failure_is_not_retried():
    tried: list[int] = []

    def start(port: int) -> None:
        tried.append(port)
        raise NotReady("hung")

    with pytest.raises(NotReady):
        start_on_free_port(start)
    assert len(tried) == 1


def test_embedded_redis_moves_to_another_port_when_its_own_is_taken(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", free_port()))
        taken.listen()
        server = EmbeddedRedis(tmp_path / "redis", secrets.token_hex(8), durable=False)
        lost_port = server.port = taken.getsockname()[1]
        # Each readiness check on the lost port, and whether its server had exited by then.
        checks: list[bool] = []
        check = server._ready

        def recorded_check() -> None:
            if server.port == lost_port:
                process = getattr(server, "process", None)
                checks.append(process is not None and process.poll() is not None)
            check()

        server._ready = recorded_check  # type: ignore[method-assign]
        try:
            server.start()
            assert server.port != lost_port
            client = redis.Redis.from_url(server.url)
            assert client.ping()
            client.close()
        finally:
            server.stop()
        # The lost port is given up once its server has exited, at the first check after the exit at
        # the latest (the waiter may see the exit itself, between checks), never retried to the deadline.
        assert checks.count(True) <= 1, checks


def test_embedded_redis_readiness_gives_up_on_a_silent_port_at_its_own_deadline(tmp_path):
    # A listening socket that never answers: the connection is accepted by the kernel, PING never returns.
    deadline_s = 0.5
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        server = EmbeddedRedis(tmp_path / "redis", secrets.token_hex(8), durable=False)
        server.port = silent.getsockname()[1]
        began = time.monotonic()
        with pytest.raises(NotReady, match=r"^embedded Redis not ready after 0.5 s: Timeout"):
            server.await_ready(deadline_s=deadline_s)
        took = time.monotonic() - began
    # The last check may start just before the deadline and take one probe timeout (0.5 s); redis-py's
    # default retries (10, with back-off) took 13 s or more here.
    assert deadline_s <= took < deadline_s + 2.5, f"gave up after {took:.1f} s"


def test_terminate_whole_group_leaves_no_child_behind(tmp_path):
    pid_file = tmp_path / "child.pid"
    # SIGTERM ends the shell, not its child: only the group's SIGKILL ends that.
    script = f"sleep 60 & echo $! > {pid_file}; wait"
    with open(tmp_path / "log", "wb") as log:
        process = spawn(["sh", "-c", script], log, None, signal.SIGTERM)
    child = wait_until(lambda: int(pid_file.read_text()), 10, "the child's pid")
    terminate(process, whole_group=True)
    wait_until(lambda: _gone(child), 10, "the child to be gone")


def _gone(pid: int) -> None:
    assert not pid_alive(pid) or _zombie(pid), f"{pid} still runs"


def _zombie(pid: int) -> bool:
    # An orphan killed but not yet reaped by its new parent counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _run(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    # In a thread of its own: a browser test before this one (Playwright's sync API) may leave an
    # event loop running in this thread, where asyncio.run refuses.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result(timeout=60)


def _raise(error: Exception) -> None:
    raise error
