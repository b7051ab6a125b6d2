"""Cloud Run's throttling rehearsed with real processes: an instance gets no CPU once it has
answered (request-based billing), so nothing it promises may need CPU after the response.

One instance of random_fact is started as production starts it (the functions-framework CLI from
the upload set, the deploy script's WORKERS / THREADS / pool, stdout to a file), answers a request,
and is frozen (SIGSTOP to its process group, gunicorn's workers included) the moment the answer
arrives. Then: the request's log line is already in its stdout; its Postgres sessions end within
the server-side idle timeout plus a margin; and thawed, it answers the next request at once.
"""

from __future__ import annotations

import http.client
import os
import secrets
import signal
import time
from pathlib import Path

import pytest

from devkit.cloudrun.deployed import deployed_environment
from devkit.cloudrun.instances import Instance, start_instance
from devkit.cloudrun.upload_copy import deploy_venv, deployed_copy
from devkit.servers.processes import descendants, terminate
from devkit.servers.waiting import wait_until
from shared.postgres import SERVER_IDLE_FACTOR

# In the slow lane: an instance of the deployed function, started, frozen and thawed.
pytestmark = pytest.mark.slow

POOL_IDLE_TIMEOUT_S = 1.0
SERVER_IDLE_TIMEOUT_S = SERVER_IDLE_FACTOR * POOL_IDLE_TIMEOUT_S
# Room for a loaded machine: the server checks its idle timer to the millisecond.
MARGIN_S = 3.0


def _get(port: int, path: str) -> tuple[int, float]:
    """The status of GET `path` and the seconds it took."""
    began = time.monotonic()
    con = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        con.request("GET", path, headers={"Connection": "close"})
        response = con.getresponse()
        response.read()
        return response.status, time.monotonic() - began
    finally:
        con.close()


def _instance_backends(db) -> set[int]:
    rows = db.run(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'facts-api' AND datname = current_database()"
    )
    return {int(row[0]) for row in rows}


def _freeze(pid: int) -> None:
    os.killpg(pid, signal.SIGSTOP)  # spawn gave the instance its own group: the arbiter and its workers


def _thaw(pid: int) -> None:
    os.killpg(pid, signal.SIGCONT)


def test_a_frozen_instance_has_written_its_lines_and_lets_go_of_postgres_and_thaws_at_once(
    servers, db, tmp_path: Path
) -> None:
    env = {
        **deployed_environment(),
        "DATABASE_URL": servers.database_url,
        "REDIS_URL": servers.redis_url,
        "FACTS_POOL_IDLE_TIMEOUT": str(POOL_IDLE_TIMEOUT_S),
    }
    before = _instance_backends(db)  # this process's own pools, from earlier tests
    instance = start_instance("random", 0, deployed_copy(tmp_path / "upload"), deploy_venv(), env, tmp_path)
    assert instance.process is not None
    pid = instance.process.pid
    try:

        def answers_200() -> None:
            assert instance.process is not None and instance.process.poll() is None, "the instance exited"
            assert _get(instance.port, "/")[0] == 200

        wait_until(answers_200, 60, "the instance's first 200", lambda: instance.log_path.read_text()[-3000:])

        path = f"/throttled-{secrets.token_hex(4)}"
        status, _ = _get(instance.port, path)
        _freeze(pid)
        frozen_at = time.monotonic()
        assert status == 200
        # No CPU from here on: whatever the request logs must be in its stdout already.
        lines = [line for line in instance.log_path.read_text().splitlines() if path in line]
        assert len(lines) == 1, f"the request's line is not in stdout when the answer arrived: {lines}"
        assert '"status":200' in lines[0] and '"time":"' in lines[0]

        held = _instance_backends(db) - before
        assert held, "the instance holds no Postgres connection: nothing to let go of"

        def released() -> float:
            still = held & _instance_backends(db)
            assert not still, f"backends {sorted(still)} of the frozen instance still there"
            return time.monotonic() - frozen_at

        released_after = wait_until(released, SERVER_IDLE_TIMEOUT_S + MARGIN_S, "the frozen instance's sessions ended")
        assert instance.process.poll() is None

        _thaw(pid)
        status, seconds = _get(instance.port, "/?language=de")
        assert status == 200, "the thawed instance did not answer 200 at once"
        assert seconds < 2.0, f"the thawed instance took {seconds:.2f} s"
        print(f"\nsessions ended {released_after:.2f} s after the freeze; thawed instance answered in {seconds:.3f} s")
    finally:
        _thaw(pid)  # a frozen process ignores SIGTERM until thawed
        terminate(instance.process, signal.SIGTERM, whole_group=True)


# The old deploy's setting, scaled down so that the test waits seconds, not a minute: the
# mechanism (gunicorn's arbiter comparing each worker's heartbeat with the worker timeout) is the
# same for any value above 0.
OLD_WORKER_TIMEOUT_S = 2


def _workers(instance: Instance) -> set[int]:
    assert instance.process is not None
    return set(descendants(instance.process.pid))


def test_a_long_idle_kills_no_worker_of_the_deployed_environment(servers, tmp_path: Path) -> None:
    """Cloud Run throttles an idle instance, and the clock goes on meanwhile. The functions
    framework makes CLOUD_RUN_TIMEOUT_SECONDS gunicorn's worker timeout: with any value above 0,
    an arbiter that wakes after a longer freeze than that finds every worker's heartbeat stale and
    kills them all ("WORKER TIMEOUT"). The deploy gives 0, which gunicorn reads as no worker
    timeout at all (its murder_workers returns at once), so no freeze is long enough.

    Shown side by side, both instances frozen for the same time: one started with the deploy's
    exact environment, and a control with the old setting at OLD_WORKER_TIMEOUT_S. After the
    freeze each arbiter is thawed before its workers (on a thaw of the whole group the order is
    the scheduler's, so a short freeze could hide the kill); the control's "WORKER TIMEOUT" line
    is the event that says the arbiters have had their look. Then the deployed instance still has
    its workers and answers every request with a 200.
    """
    deployed = {**deployed_environment(), "DATABASE_URL": servers.database_url, "REDIS_URL": servers.redis_url}
    assert deployed["CLOUD_RUN_TIMEOUT_SECONDS"] == "0"
    control_env = {**deployed, "CLOUD_RUN_TIMEOUT_SECONDS": str(OLD_WORKER_TIMEOUT_S)}
    upload, venv = deployed_copy(tmp_path / "upload"), deploy_venv()
    instance = start_instance("random", 0, upload, venv, deployed, tmp_path)
    control = start_instance("random", 1, upload, venv, control_env, tmp_path)
    both = (instance, control)
    try:
        workers = int(deployed["WORKERS"])
        for one in both:
            wait_until(lambda one=one: _answers_200(one), 60, f"{one.name}'s first 200", one.log_path.read_text)
            # The arbiter forks its workers a random fraction of a second apart, so the first
            # can answer before the last exists.
            wait_until(lambda one=one: _has_workers(one, workers), 30, f"{one.name}'s {workers} workers")
        workers_before = _workers(instance)
        for one in both:
            one.freeze()
        time.sleep(OLD_WORKER_TIMEOUT_S + 1.5)  # the idle itself: frozen, nothing to wait for
        for one in both:
            assert one.process is not None
            os.kill(one.process.pid, signal.SIGCONT)  # the arbiter alone
        wait_until(lambda: _timed_out(control), 30, "the control's arbiter killing its stale workers")
        for one in both:
            one.thaw()

        assert "WORKER TIMEOUT" not in instance.log_path.read_text()
        assert _workers(instance) == workers_before, "a worker of the deployed environment was replaced"
        for _ in range(2 * int(deployed["WORKERS"])):
            status, _ = _get(instance.port, "/")
            assert status == 200
    finally:
        for one in both:
            one.thaw()  # a frozen process ignores SIGTERM until thawed
            terminate(one.process, signal.SIGTERM, whole_group=True)


def _answers_200(instance: Instance) -> None:
    assert instance.process is not None and instance.process.poll() is None, "the instance exited"
    assert _get(instance.port, "/")[0] == 200


def _has_workers(instance: Instance, count: int) -> None:
    assert len(_workers(instance)) == count, f"{len(_workers(instance))} workers, not {count}"


def _timed_out(instance: Instance) -> None:
    assert "WORKER TIMEOUT" in instance.log_path.read_text(), "no worker timed out yet"
