"""Migrations as a deploy step, and migrate-on-first-use as a fallback that never answers 500.

Each test gets a new, empty database of its own (`empty_postgres`, in tests/support/servers.py),
so what runs first really finds no schema.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from devkit.cloudrun.deployed import deployed_environment
from devkit.cloudrun.front import Front
from devkit.cloudrun.instances import instances_of_both, migrations_applied
from devkit.cloudrun.scratch_postgres import connect_url
from devkit.cloudrun.traffic import burst, request
from devkit.cloudrun.upload_copy import ROOT, deploy_venv, deployed_copy
from devkit.servers.waiting import wait_until
from shared import logs, schema
from shared.config import parse_database_url


def _count_migrations(admin_url: str) -> int:
    with connect_url(admin_url) as con:
        return int(con.run("SELECT count(*) FROM schema_migrations")[0][0])


@pytest.mark.slow  # three migrate processes, one from the deployed copy
def test_migrate_commands_are_idempotent_and_safe_concurrently(empty_postgres, tmp_path):
    admin_url, app_url, _ = empty_postgres
    env = {"DATABASE_URL": app_url, "PATH": "/usr/bin:/bin"}
    # What the deploy's job runs (python -m shared.schema, from the upload set, with only the
    # lock installed), and the harness command, all at once.
    upload = deployed_copy(tmp_path / "upload")
    commands = [
        ([str(deploy_venv() / "bin" / "python"), "-m", "shared.schema"], upload),
        ([sys.executable, str(ROOT / "harness.py"), "migrate"], ROOT),
        ([sys.executable, str(ROOT / "harness.py"), "migrate", "--servers", "external"], ROOT),
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


@pytest.mark.parametrize("timeout", ["0", "-5", "nan", "inf"])
def test_the_deploys_migrate_step_refuses_a_timeout_that_is_not_seconds_above_zero(monkeypatch, capsys, timeout):
    monkeypatch.setenv("DATABASE_URL", "postgresql://facts@127.0.0.1:1/facts")  # never reached
    with pytest.raises(SystemExit) as exited:
        schema.main(["--timeout", timeout])
    assert exited.value.code == 2
    assert f"argument --timeout: must be a number of seconds above 0, got {timeout!r}" in capsys.readouterr().err


@pytest.mark.slow  # four instances of the deployed functions
def test_slow_first_migration_gives_503_to_the_others_and_never_500(empty_postgres, tmp_path):
    admin_url, app_url, redis_url = empty_postgres
    env = {**deployed_environment(), "DATABASE_URL": app_url, "REDIS_URL": redis_url}
    # The migration's first statement (CREATE TABLE facts) waits for this uncommitted one: the
    # first instance to migrate is slowed down for HOLD_S, longer than the requests' 1.5 s timeouts.
    hold_s = 4.0
    blocker = connect_url(admin_url)
    blocker.run("BEGIN")
    blocker.run("CREATE TABLE facts (blocking integer)")
    released = threading.Timer(hold_s, lambda: blocker.run("ROLLBACK"))
    try:
        with (
            instances_of_both(2, env, tmp_path) as (instances, started),
            Front(instances, started) as front,
        ):
            released.start()
            answers = burst(front.port, clients=8, requests=160, languages=["en", "de"])
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
    assert sum(migrations_applied(instances).values()) == len(schema.migrations())
    assert set(migrations_applied(instances).values()) == {1}
    assert _count_migrations(admin_url) == len(schema.migrations())


def _ok(port: int, route: str) -> None:
    answer, _ = request(port, route, "en", None)
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


def test_a_migration_that_fails_half_way_leaves_nothing_behind_and_frees_the_lock(empty_postgres, monkeypatch):
    admin_url, app_url, _ = empty_postgres

    def half_done(con):
        con.run("CREATE TABLE half_done (x integer)")
        raise RuntimeError("the migration's second step failed")

    monkeypatch.setattr(schema, "migrations", lambda: [schema.Migration(1, "0001_half_done", half_done)])
    with connect_url(app_url) as con, connect_url(admin_url) as other:
        with pytest.raises(RuntimeError, match="second step failed"):
            schema.migrate(con)
        # `con` stays open, as a caller's connection may: the lock must be free all the same.
        assert other.run("SELECT to_regclass('half_done')")[0][0] is None
        assert other.run("SELECT count(*) FROM schema_migrations")[0][0] == 0
        assert other.run("SELECT pg_try_advisory_lock(:key)", key=schema.MIGRATION_LOCK_KEY)[0][0] is True


def _waits_on_an_advisory_lock(con) -> None:
    assert con.run("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'advisory'")[0][0] > 0


def test_the_migrate_step_waits_for_another_migrator_then_finds_nothing_to_do(empty_postgres):
    _, app_url, _ = empty_postgres
    with ThreadPoolExecutor(1) as threads, connect_url(app_url) as other:
        other.run("SELECT pg_advisory_lock(:key)", key=schema.MIGRATION_LOCK_KEY)
        try:
            step = threads.submit(schema.migrate_database, parse_database_url(app_url), 30)
            wait_until(lambda: _waits_on_an_advisory_lock(other), 30, "the migrate step waiting for the lock")
            applied_by_other = schema.migrate(other)  # its session holds the lock already: locks nest
        finally:
            other.run("SELECT pg_advisory_unlock(:key)", key=schema.MIGRATION_LOCK_KEY)
        assert applied_by_other == [m.name for m in schema.migrations()]
        assert step.result(timeout=60) == []
    assert _count_migrations(app_url) == len(schema.migrations())
