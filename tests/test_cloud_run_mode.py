"""serve --like cloud-run's model (devkit.cloudrun.autoscale + service) against real instances:
scale from zero, frozen between requests, stopped when idle, the queue's 429, a new revision; and
the three bugs it exists to catch, each planted in a staged copy of the upload set.

Each test stages its own upload set (one function replaced where a bug is planted) and starts
instances from it with the deploy's environment, as the harness does.
"""

from __future__ import annotations

import http.client
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis

from devkit.cloudrun.autoscale import CloudRunFront
from devkit.cloudrun.cold_start import PROFILE_IMPORTS_ENV
from devkit.cloudrun.deployed import deployed_service
from devkit.cloudrun.instances import Instance, start_instance
from devkit.cloudrun.service import Limits
from devkit.cloudrun.upload_copy import deploy_venv, deployed_copy
from devkit.servers.waiting import wait_until

pytestmark = pytest.mark.slow  # instances of gunicorn started from the upload set

ROUTES = {"random": "random_fact", "today": "today_fact"}
LIMITS = Limits(max_instances=2, concurrency=4, request_timeout_s=30.0, idle_stop_s=60.0)
# How long a frozen instance is watched for work it must not do: well past the planted delay.
FROZEN_WATCH_S = 1.5


def _get(port: int, path: str, timeout: float = 40.0) -> tuple[int, bytes]:
    con = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        con.request("GET", path)
        response = con.getresponse()
        return response.status, response.read()
    finally:
        con.close()


def _stage(tmp_path: Path, random_fact: str | None = None) -> Path:
    source = deployed_copy(tmp_path / "upload")
    if random_fact is not None:
        (source / "functions" / "random_fact.py").write_text(random_fact)
    return source


@contextmanager
def _mode(servers: Any, source: Path, logs: Path, limits: Limits = LIMITS) -> Iterator[tuple[CloudRunFront, list]]:
    env = {**deployed_service().env, **servers.environ(), "FACTS_POOL_IDLE_TIMEOUT": "0.5"}
    venv = deploy_venv()
    events: list[tuple[str, str]] = []

    def launch(route: str, index: int, revision: int) -> Instance:
        return start_instance(route, index, source, venv, env, logs, revision, PROFILE_IMPORTS_ENV)

    front = CloudRunFront(ROUTES, limits, launch, lambda kind, text: events.append((kind, text)), lambda *_: None)
    with front:
        yield front, events


def _instances(front: CloudRunFront, route: str = "random") -> list[Instance]:
    return list(front.services[route].instances)


def _answered_then_frozen(front: CloudRunFront) -> Instance:
    assert _get(front.port, "/random")[0] == 200
    (instance,) = _instances(front)
    _wait_frozen(instance)
    return instance


def _holds_while_frozen(check: Callable[[], bool], message: str) -> None:
    """Absence can only be watched for a while: FROZEN_WATCH_S, well past the planted delays."""
    end = time.monotonic() + FROZEN_WATCH_S
    while time.monotonic() < end:
        assert check(), message
        time.sleep(0.1)


def _planted(body: str) -> str:
    """A random_fact whose request does `body` (indented code) and answers 200."""
    return (
        "import _source_root  # noqa: F401\nimport os, threading, time\nimport functions_framework\n\n\n"
        f"@functions_framework.http\ndef random_fact(request):\n{body}\n    return 'ok'\n"
    )


def test_scale_from_zero_frozen_between_requests_and_stopped_when_idle(servers, tmp_path: Path) -> None:
    limits = replace(LIMITS, idle_stop_s=1.0)
    with _mode(servers, _stage(tmp_path), tmp_path, limits) as (front, events):
        assert _instances(front) == []  # nothing runs before the first request
        assert _get(front.port, "/random?language=en")[0] == 200
        (first,) = _instances(front)
        _wait_frozen(first)  # no request in flight: no CPU
        wait_until(lambda: _assert(first.state == "stopped"), 15, "the idle instance stopped")
        assert _get(front.port, "/random?language=en")[0] == 200
        second = _instances(front)[-1]
        assert second.name != first.name  # the next request paid a cold start
        cold = front.services["random"].cold_starts
        wait_until(lambda: _assert([c.outcome for c in cold] == ["served", "served"]), 5, "both cold starts timed")
        assert all(c.total_s and c.imports_s and c.process_s is not None for c in cold)  # each one timed
        # The event follows the process's exit, which a loaded machine may take seconds to reap.
        wait_until(lambda: _assert(any("stopped (idle)" in text for _, text in events)), 15, "the stop logged")


def _assert(condition: bool) -> None:
    assert condition


def _wait_frozen(instance: Instance) -> None:
    """The front freezes an instance as the answer ends, which a client may see a moment before."""
    wait_until(lambda: _assert(instance.state == "frozen"), 5, f"{instance.name} frozen")


def test_requests_beyond_max_instances_and_concurrency_wait_then_get_cloud_runs_429(servers, tmp_path: Path) -> None:
    slow = _planted("    time.sleep(3)")
    limits = replace(LIMITS, max_instances=1, concurrency=1, queue_timeout_s=0.5)
    with _mode(servers, _stage(tmp_path, slow), tmp_path, limits) as (front, _):
        statuses: list[int] = []
        threads = [threading.Thread(target=lambda: statuses.append(_get(front.port, "/random")[0])) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(40)
        assert sorted(statuses) == [200, 429]
        assert len(_instances(front)) == 1


def test_a_new_revision_takes_the_traffic_once_it_listens_and_the_old_one_stops(servers, tmp_path: Path) -> None:
    with _mode(servers, _stage(tmp_path), tmp_path) as (front, events):
        assert _get(front.port, "/random")[0] == 200
        (old,) = _instances(front)
        source_2 = _stage(tmp_path / "r2", _planted("    pass"))
        venv, env = deploy_venv(), {**deployed_service().env, **servers.environ()}

        def launch(route: str, index: int, revision: int) -> Instance:
            return start_instance(route, index, source_2, venv, env, tmp_path, revision)

        assert front.call(front.deploy(2, launch)).result(60)
        assert _get(front.port, "/random") == (200, b"ok")  # the new code answers
        wait_until(lambda: _assert(old.state == "stopped"), 15, "the old revision's instance stopped")
        assert ("deploy", "revision 2 takes the traffic") in events
        # No request waited for it: its cold start ends when it listens, not at its first answer.
        assert front.services["random"].cold_starts[-1].outcome == "ready"


def test_planted_work_after_the_response_is_not_done_until_the_next_request(servers, tmp_path: Path) -> None:
    key = f"planted-after-response-{secrets.token_hex(4)}"
    after_response = _planted(
        "    import redis\n"
        "    def later():\n"
        "        time.sleep(0.3)\n"
        f"        redis.Redis.from_url(os.environ['REDIS_URL']).set('{key}', 1)\n"
        "    threading.Thread(target=later).start()"
    )
    cache = redis.Redis.from_url(servers.redis_url)
    with _mode(servers, _stage(tmp_path, after_response), tmp_path) as (front, _):
        _answered_then_frozen(front)
        _holds_while_frozen(lambda: cache.get(key) is None, "the work after the response ran while frozen")

        def next_request_gives_it_cpu() -> None:
            # Thawed only while a request is in flight, the late work runs a little each request,
            # as on Cloud Run: it is done after one request or a few, never while frozen.
            assert _get(front.port, "/random")[0] == 200
            _assert(cache.get(key) == b"1")

        wait_until(next_request_gives_it_cpu, 10, "the late work done during the next requests")
    cache.delete(key)


def test_planted_pool_released_only_by_the_instance_holds_its_connections_while_frozen(
    servers, db, tmp_path: Path
) -> None:
    name = f"planted-pool-{secrets.token_hex(4)}"
    own_reaper = _planted(
        "    import pg8000.native\n"
        "    from urllib.parse import urlsplit\n"
        "    url = urlsplit(os.environ['DATABASE_URL'])\n"
        "    con = pg8000.native.Connection(url.username, host=url.hostname, port=url.port,\n"
        f"        database=url.path[1:], password=url.password, application_name='{name}')\n"
        "    con.run('SELECT 1')\n"
        "    threading.Timer(0.3, con.close).start()  # its idle reaper: the only thing that lets go"
    )
    held = "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name"
    with _mode(servers, _stage(tmp_path, own_reaper), tmp_path) as (front, _):
        instance = _answered_then_frozen(front)
        _holds_while_frozen(lambda: db.run(held, name=name) == [[1]], "the frozen instance let the connection go")
        instance.thaw()  # with CPU again, its reaper ends the session: what Cloud Run never gives it
        wait_until(lambda: _assert(db.run(held, name=name) == [[0]]), 10, "the session closed once thawed")


def test_planted_cold_start_longer_than_the_request_timeout_fails_the_first_request_after_an_eviction(
    servers, tmp_path: Path
) -> None:
    slow_start = "import time\ntime.sleep(2.5)  # a slow import: a model loaded at start\n" + _planted("    pass")
    limits = replace(LIMITS, request_timeout_s=1.5)
    with _mode(servers, _stage(tmp_path, slow_start), tmp_path, limits) as (front, _):
        assert _get(front.port, "/random")[0] == 504  # Cloud Run's upstream request timeout
        (instance,) = _instances(front)
        wait_until(lambda: _assert(instance.listening_at is not None), 30, "the slow instance listening")
        assert _get(front.port, "/random") == (200, b"ok")  # warm, it answers in time
        assert front.call(front.evict(instance.name)).result(30)
        status, body = _get(front.port, "/random")
        assert status == 504 and body == b"upstream request timeout"
