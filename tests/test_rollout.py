"""Deploy, verify, promote (devkit.cloudrun.rollout), rehearsed with real instances on loopback:
a candidate that fails its smoke request never takes traffic, and one that passes takes all of it.

Revision 1 serves through the front. Revision 2 is deployed with a Redis that does not answer: its
startup probe passes (the functions serve without Redis, so Cloud Run would start it) but the
deploy's smoke request, which asks for both servers, fails, and the front keeps sending every
request to revision 1. Revision 3 is deployed with the real settings and takes the traffic.
"""

from __future__ import annotations

import time

import pytest

from devkit.cloudrun.deployed import deployed_environment
from devkit.cloudrun.front import Front
from devkit.cloudrun.instances import Fleet
from devkit.cloudrun.rollout import deploy_verify_promote
from devkit.cloudrun.traffic import request
from devkit.servers.ports import free_port
from devkit.servers.waiting import wait_until


def _served_by(front: Front, fleet: Fleet, count: int) -> set[int]:
    """The revisions that answered `count` requests through the front (each a 200)."""
    before = {i.name: i.statuses.total() for i in fleet.instances}
    for n in range(count):
        answer, _ = request(front.port, ("random", "today")[n % 2], "en", None)
        assert answer.status == 200, answer
    return {i.revision for i in fleet.instances if i.statuses.total() > before[i.name]}


@pytest.mark.slow  # three revisions of gunicorn instances
def test_a_candidate_that_fails_its_smoke_request_never_takes_traffic(servers, tmp_path):
    env = {**deployed_environment(), **servers.environ()}  # the worker's own key prefix too
    with Fleet(env, tmp_path) as fleet:
        first = fleet.start_revision(1, 1)
        with Front(first, time.monotonic()) as front:
            wait_until(lambda: _served_by(front, fleet, 2), 60, "revision 1 serving")

            dead_redis = f"redis://127.0.0.1:{free_port()}/0"
            broken = deploy_verify_promote(fleet, front, 2, env_overrides={"REDIS_URL": dead_redis})
            assert not broken.promoted
            assert sorted(broken.problems) == sorted(i.name for i in broken.candidates)
            assert all(problems == ["redis is 'down'"] for problems in broken.problems.values()), broken.problems
            assert _served_by(front, fleet, 6) == {1}
            assert all(i.statuses.total() == 0 for i in broken.candidates)  # none reached through the front

            good = deploy_verify_promote(fleet, front, 3)
            assert good.promoted and not good.problems
            assert _served_by(front, fleet, 6) == {3}
