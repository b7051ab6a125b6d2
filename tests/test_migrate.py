"""Migrations as a deploy step, and migrate-on-first-use as a fallback that never answers 500.

Each test starts a fresh, empty Postgres of its own (bench/scaleout.py's), so what runs first
really finds no schema.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading

import pytest

from bench import scaleout
from devservices.embedded import postgres_bin_dir
from devservices.waiting import wait_until
from shared import logs, schema
from shared.config import parse_database_url

from .support.deploy_copy import ROOT, deploy_venv, deployed_copy


@pytest.fixture
def empty_postgres():
    """(admin URL, app URL, Redis URL) of a fresh Postgres whose database has no schema yet."""
    try:
        postgres_bin_dir()
    except FileNotFoundError as exc:
        pytest.skip(f"needs PostgreSQL server binaries to start an empty server: {exc}")
    with scaleout.fresh_servers(max_connections=20) as urls:
        yield urls


def _count_migrations(admin_url: str) -> int:
    with scaleout.connect_url(admin_url) as con:
        return int(con.run("SELECT count(*) FROM schema_migrations")[0][0])


def test_migrate_commands_are_idempotent_and_safe_concurrently(empty_postgres, tmp_path):
    admin_url, app_url, _ = empty_postgres
    env = {"DATABASE_URL": app_url, "PATH": "/usr/bin:/bin"}
    # What the deploy's job runs (python -m shared.schema, from the upload set, with only the
    # lock installed), and the harness command, all at once.
    upload = deployed_copy(tmp_path / "upload")
    commands = [
        ([str(deploy_venv() / "bin" / "python"), "-m", "shared.schema"], upload),
        ([sys.executable, str(ROOT / "harness.py"), "migrate"], ROOT),
        ([sys.executable, str(ROOT / "harness.py"), "migrate", "--services", "external"], ROOT),
    ]
    running = [subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for argv, cwd in commands]  # fmt: skip
    results = [(p.wait(120), *p.communicate()) for p in running]
    assert all(rc == 0 for rc, _, _ in results), results
    outputs = [out for _, out, _ in results]
    assert sum(out.startswith("applied: 0001_schema") for out in outputs) == 1, outputs
    assert sum("nothing to do" in out for out in outputs) == 2, outputs
    assert _count_migrations(admin_url) == len(schema.migrations())

    again = subprocess.run(commands[1][0], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "nothing to do" in again.stdout


def test_migrate_command_says_what_is_wrong_without_a_traceback_or_the_password():
    env = {"DATABASE_URL": "postgresql://facts:s3cret-pw@127.0.0.1:1/facts", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, str(ROOT / "harness.py"), "migrate", "--timeout", "2"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 2
    assert "cannot connect to Postgres" in result.stderr
    assert "Traceback" not in result.stderr and "s3cret-pw" not in result.stderr


def test_slow_first_migration_gives_503_to_the_others_and_never_500(empty_postgres, tmp_path):
    admin_url, app_url, redis_url = empty_postgres
    env = {**scaleout.deployed_environment(), "DATABASE_URL": app_url, "REDIS_URL": redis_url}
    # The migration's first statement (CREATE TABLE facts) waits for this uncommitted one: the
    # first instance to migrate is slowed down for HOLD_S, longer than the requests' 1.5 s timeouts.
    hold_s = 4.0
    blocker = scaleout.connect_url(admin_url)
    blocker.run("BEGIN")
    blocker.run("CREATE TABLE facts (blocking integer)")
    released = threading.Timer(hold_s, lambda: blocker.run("ROLLBACK"))
    try:
        with (
            scaleout.instances_of_both(2, env, tmp_path) as (instances, started),
            scaleout.Front(instances, started) as front,
        ):
            released.start()
            answers = scaleout.burst(front.port, clients=8, requests=160, languages=["en", "de"])
            during = [a for a in answers if a.status == 503]
            statuses = {a.status for a in answers}
            # Then every instance serves (one of them migrated).
            for instance in instances:
                wait_until(lambda i=instance: _ok(i.port, i.route), 30, f"{instance.name} serving")
    finally:
        released.join(hold_s + 5)
        blocker.close()
    assert statuses <= {200, 304, 503}, statuses
    assert during, "nobody was told to come back while the schema was being migrated"
    assert all(a.retry_after and a.body and a.body["error"]["code"] == "database_unavailable" for a in during)
    assert max(a.seconds for a in answers) < hold_s + 8  # the migrating request waits; none hangs
    assert sum(scaleout.migrations_applied(instances).values()) == len(schema.migrations())
    assert set(scaleout.migrations_applied(instances).values()) == {1}
    assert _count_migrations(admin_url) == len(schema.migrations())


def _ok(port: int, route: str) -> None:
    answer, _ = scaleout.request(port, route, "en", None)
    assert answer.status == 200, answer


def test_migrating_in_process_logs_each_migration_and_the_seeding_once(empty_postgres, caplog):
    """What an operator reads in the migrate step's log, and a second run that finds nothing to do."""
    _, app_url, _ = empty_postgres
    settings = parse_database_url(app_url)
    logs.configure()  # INFO and up, as in an instance
    caplog.clear()
    applied = schema.migrate_database(settings, timeout_s=30)
    assert schema.migrate_database(settings, timeout_s=30) == []
    records = caplog.records
    assert applied == [m.name for m in schema.migrations()]
    lines = [r.getMessage() for r in records if r.name == "shared.schema"]
    applying = [line for line in lines if line.startswith("applying migration ")]
    assert applying == [f"applying migration {name}" for name in applied]
    seeded = [line for line in lines if line.startswith("seeded the catalogue with ")]
    assert len(seeded) == 1 and re.fullmatch(r"seeded the catalogue with [1-9]\d* bundled facts", seeded[0])
    assert len(lines) == len(applying) + 1
