"""Deploy, verify, promote, rehearsed on loopback: the sequence deploy/cloud-functions.sh runs on
Cloud Run, with devkit's instances (devkit.cloudrun.instances) and front (devkit.cloudrun.front).

A later deploy starts the new revision beside the one serving, with no traffic. Each candidate
instance must pass Cloud Run's startup probe (the readiness path answers 200) and then the
deploy's smoke request (devkit.cloudrun.smoke, sent to the instance itself as the real deploy
sends it to the tagged URL, never through the front). Only when every candidate passes does the
front switch to the new revision; otherwise the serving revision keeps all the traffic.
"""

from __future__ import annotations

import functools
import http.client
from dataclasses import dataclass, field

from devkit.cloudrun import smoke
from devkit.cloudrun.front import Front
from devkit.cloudrun.instances import Fleet, Instance
from devkit.servers.waiting import NotReady, wait_until

STARTUP_PROBE_S = 60.0  # a loopback instance is ready in seconds; Cloud Run's probe allows minutes


@dataclass
class Rollout:
    """What one deploy did: the revision it made, whether it took the traffic, and why not."""

    revision: int
    candidates: list[Instance]
    promoted: bool = False
    problems: dict[str, list[str]] = field(default_factory=dict)  # instance name -> what failed


def _startup_probe(instance: Instance) -> None:
    """Raises until the instance answers 200 on the readiness path, as Cloud Run's HTTP startup probe."""
    assert instance.process is not None and instance.process.poll() is None, f"{instance.name} exited"
    con = http.client.HTTPConnection("127.0.0.1", instance.port, timeout=5)
    try:
        con.request("GET", smoke.READY_PATH)
        response = con.getresponse()
        response.read()
        assert response.status == 200, f"{instance.name} answered {response.status} on {smoke.READY_PATH}"
    finally:
        con.close()


def deploy_verify_promote(
    fleet: Fleet, front: Front, revision: int, per_function: int = 1, env_overrides: dict[str, str] | None = None
) -> Rollout:
    """Start `revision` with no traffic, verify every instance of it, and switch the front to it
    only if all pass (then returns promoted=True)."""
    rollout = Rollout(revision, fleet.start_revision(revision, per_function, env_overrides))
    for instance in rollout.candidates:
        try:
            wait_until(functools.partial(_startup_probe, instance), STARTUP_PROBE_S, f"{instance.name} ready")
        except NotReady as failed:
            rollout.problems[instance.name] = [f"startup probe: {failed}"]
            continue
        found = smoke.check(f"http://127.0.0.1:{instance.port}", attempts=1)
        if found:
            rollout.problems[instance.name] = found
    if not rollout.problems:
        front.add(rollout.candidates)
        front.switch_to(revision)
        rollout.promoted = True
    return rollout
