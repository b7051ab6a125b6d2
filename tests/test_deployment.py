"""What a deployment uploads, installs and runs, checked here before Google Cloud sees it.

- The upload set is computed from `.gcloudignore` (gitignore syntax, `#!include:.gitignore`
  expanded) by a gitignore-pattern library, and each function starts from exactly that set under
  the functions-framework CLI, PORT set, in a virtualenv installing exactly the lock.
- The deploy script's dry run is held to the rules of a first deploy that works: a runtime
  service account with exactly the grants it needs, a migration step before the functions,
  pinned secret versions, and --max-instances within the connection budget.
"""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import urllib.error
import urllib.request

import pytest

from devharness.routes import http_targets
from devservices.ports import free_port
from devservices.processes import spawn, terminate
from devservices.waiting import wait_until

from .support.deploy_copy import ROOT, deploy_venv, deployed_copy, upload_set

SCRIPT = ROOT / "deploy" / "cloud-functions.sh"
BASE_ENV = {"PROJECT": "demo", "REGION": "europe-west1", "CONNECTOR": "facts", "PATH": "/usr/bin:/bin"}
ACCOUNT = "facts-runtime@demo.iam.gserviceaccount.com"


@pytest.fixture(scope="session")
def runtime_venv():
    return deploy_venv()


def test_upload_set_is_what_the_functions_need_and_nothing_git_ignores(tmp_path):
    uploaded = upload_set()
    assert "requirements.txt" in uploaded
    assert {"functions/random_fact.py", "functions/today_fact.py", "shared/schema.py"} <= set(uploaded)
    assert all(name == "requirements.txt" or name.startswith(("functions/", "shared/")) for name in uploaded)
    # A developer's checkout holds caches and notes next to the code: none of them goes up.
    tree = deployed_copy(tmp_path / "tree")
    for name in (".gcloudignore", ".gitignore"):
        (tree / name).write_bytes((ROOT / name).read_bytes())
    junk = ["shared/__pycache__/web.cpython-311.pyc", "functions/x.pyc", ".pytest_cache/v/cache",
            "shared/.hypothesis/x", ".mypy_cache/x.json", "README.md", "openapi.json", "pyproject.toml",
            "tests/test_x.py", "requirements-dev.txt", "functions/routes.toml", ".venv/bin/python",
            "notes.txt"]  # fmt: skip
    for name in junk:
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text("x")
    assert upload_set(tree) == uploaded


def test_lock_pins_every_deployed_package_with_hashes():
    lock = (ROOT / "requirements.txt").read_text()
    pins = [line for line in lock.splitlines() if line and not line.startswith((" ", "#"))]
    assert pins and all("==" in pin and pin.endswith("\\") for pin in pins), pins  # name==version \ then hashes
    assert lock.count("--hash=sha256:") >= len(pins)
    for name in ("functions-framework", "pg8000", "redis"):
        assert any(pin.startswith(name + "==") for pin in pins), name


@pytest.mark.parametrize(("target", "extra_key"), [("random_fact", None), ("today_fact", "date")])
def test_function_starts_from_the_upload_set_under_the_cli(servers, runtime_venv, tmp_path, db, target, extra_key):
    root = deployed_copy(tmp_path / "deployed")
    port = free_port()
    env = {"PATH": f"{runtime_venv}/bin:/usr/bin:/bin", "PORT": str(port), **servers.environ()}
    argv = [str(runtime_venv / "bin" / "functions-framework"), "--target", target, "--source", f"functions/{target}.py"]
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        process = spawn(argv, log, None, signal.SIGTERM, env=env, cwd=root)
    try:

        def answer():
            assert process.poll() is None, log_path.read_text()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/?language=de", timeout=5) as response:
                return response.status, dict(response.headers), json.load(response)

        status, headers, body = wait_until(answer, 60, f"{target} under functions-framework", log_path.read_text)
        assert status == 200
        assert headers["Content-Type"] == "application/json; charset=utf-8"
        assert body["language"] == "de" and (extra_key is None or extra_key in body)
        assert db.run("SELECT views FROM fact_views WHERE fact_id = :id", id=body["fact_id"]) == [[body["views"]]]
        with pytest.raises(urllib.error.HTTPError) as bad:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/?language=xx", timeout=5)
        assert bad.value.code == 400
        assert json.load(bad.value)["error"]["code"] == "unsupported_language"
    finally:
        terminate(process, signal.SIGTERM)
    log_text = log_path.read_text()
    assert "Traceback" not in log_text
    # Exactly one Cloud Logging JSON line per answered request (earlier tries may have been refused).
    entries = [json.loads(line) for line in log_text.splitlines() if line.startswith("{")]
    answered = [(e["severity"], e["function"], e["status"]) for e in entries if e["logger"] == "facts.requests"]
    assert answered == [("INFO", target, 200), ("INFO", target, 400)], log_text
    assert servers.database_url.split("@")[0].split(":")[-1] not in log_text  # the password never shows


def dry_run(**env: str) -> tuple[list[list[str]], list[str]]:
    """The dry run's gcloud commands (parsed as a shell would) and its comment lines. PATH has no
    gcloud, so a dry run that called it would fail."""
    result = subprocess.run(["bash", str(SCRIPT), "--dry-run"], capture_output=True, text=True,
                            env={**BASE_ENV, **env}, timeout=30)  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    commands = [shlex.split(line) for line in lines if not line.startswith("#")]
    assert all(argv[0] == "gcloud" for argv in commands), commands
    return commands, [line for line in lines if line.startswith("#")]


def flags(argv: list[str]) -> dict[str, str]:
    return dict(arg[2:].split("=", 1) for arg in argv if arg.startswith("--") and "=" in arg)


def named(commands: list[list[str]], *words: str) -> list[list[str]]:
    return [argv for argv in commands if argv[1 : 1 + len(words)] == list(words)]


def test_dry_run_makes_the_runtime_account_and_grants_exactly_the_two_secrets():
    commands, _ = dry_run()
    assert named(commands, "iam", "service-accounts", "create")[0][4] == "facts-runtime"
    grants = named(commands, "secrets", "add-iam-policy-binding")
    assert sorted(argv[3] for argv in grants) == ["facts-database-url", "facts-redis-url"]
    for argv in grants:
        assert flags(argv)["member"] == f"serviceAccount:{ACCOUNT}"
        assert flags(argv)["role"] == "roles/secretmanager.secretAccessor"
    assert not named(commands, "projects", "add-iam-policy-binding")  # no project-wide role without Cloud SQL
    deploys = named(commands, "functions", "deploy") + named(commands, "run", "jobs", "deploy")
    assert len(deploys) == 3 and all(flags(argv)["service-account"] == ACCOUNT for argv in deploys)


def test_dry_run_migrates_with_a_job_from_the_upload_before_deploying_the_functions():
    commands, _ = dry_run()
    order = [" ".join(argv[1:4]) for argv in commands]
    job = named(commands, "run", "jobs", "deploy")[0]
    assert flags(job)["source"] == "." and flags(job)["command"] == "python"
    assert flags(job)["args"].split(",") == ["-m", "shared.schema"] and "shared/schema.py" in upload_set()
    assert flags(job)["set-secrets"].startswith("DATABASE_URL=facts-database-url:")
    execute = order.index("run jobs execute")
    assert "--wait" in commands[execute]
    assert order.index("run jobs deploy") < execute < order.index("functions deploy random-fact")


def test_dry_run_pins_secret_versions_resolved_at_deploy_time_or_given():
    commands, comments = dry_run()
    assert not any(":latest" in arg for argv in commands for arg in argv)
    resolving = named(commands, "secrets", "versions", "list")
    assert sorted(argv[4] for argv in resolving) == ["facts-database-url", "facts-redis-url"]
    assert any("DATABASE_SECRET_VERSION=" in line for line in comments)  # printed

    commands, _ = dry_run(DATABASE_SECRET_VERSION="7", REDIS_SECRET_VERSION="3")
    assert not named(commands, "secrets", "versions", "list")
    for argv in named(commands, "functions", "deploy"):
        assert flags(argv)["set-secrets"] == "DATABASE_URL=facts-database-url:7,REDIS_URL=facts-redis-url:3"


@pytest.mark.parametrize(("max_connections", "reserve"), [("100", "10"), ("50", "5"), ("400", "20")])
def test_dry_run_max_instances_fit_the_connection_budget(max_connections, reserve):
    commands, comments = dry_run(DB_MAX_CONNECTIONS=max_connections, DB_RESERVED_CONNECTIONS=reserve)
    deploys = named(commands, "functions", "deploy")
    assert len(deploys) == 2
    for argv in deploys:
        env = dict(pair.split("=", 1) for pair in flags(argv)["set-env-vars"].split(","))
        per_instance = int(env["WORKERS"]) * int(env["FACTS_POOL_SIZE"])
        max_instances = int(flags(argv)["max-instances"])
        assert 1 <= max_instances * per_instance * len(deploys) <= int(max_connections) - int(reserve)
        # The most that fits: one more instance of each would not.
        assert (max_instances + 1) * per_instance * len(deploys) > int(max_connections) - int(reserve)
        assert flags(argv)["ingress-settings"] in ("all", "internal-only", "internal-and-gclb")
        assert flags(argv)["concurrency"] == str(int(env["WORKERS"]) * int(env["THREADS"]))
    assert any("connection budget" in line and max_connections in line for line in comments)


def test_dry_run_refuses_a_budget_that_cannot_fit():
    result = subprocess.run(["bash", str(SCRIPT), "--dry-run"], capture_output=True, text=True,
                            env={**BASE_ENV, "DB_MAX_CONNECTIONS": "25"}, timeout=30)  # fmt: skip
    assert result.returncode == 1 and "connection budget does not fit" in result.stderr
    assert "gcloud" not in result.stdout


def test_dry_run_socket_form_adds_cloud_sql_to_the_job_and_the_services():
    instance = "demo:europe-west1:facts"
    commands, _ = dry_run(CLOUDSQL_INSTANCE=instance)
    grant = named(commands, "projects", "add-iam-policy-binding")
    assert len(grant) == 1 and flags(grant[0])["role"] == "roles/cloudsql.client"
    assert flags(grant[0])["member"] == f"serviceAccount:{ACCOUNT}"
    assert flags(named(commands, "run", "jobs", "deploy")[0])["set-cloudsql-instances"] == instance
    updates = named(commands, "run", "services", "update")
    assert sorted(argv[4] for argv in updates) == ["random-fact", "today-fact"]
    assert all(flags(argv)["add-cloudsql-instances"] == instance for argv in updates)


def test_dry_run_entry_points_are_http_functions_of_their_uploaded_source():
    commands, _ = dry_run()
    for argv in named(commands, "functions", "deploy"):
        source = flags(argv)["set-build-env-vars"].removeprefix("GOOGLE_FUNCTION_SOURCE=")
        assert source in upload_set()
        assert flags(argv)["entry-point"] in http_targets(ROOT / source)
        assert "--gen2" in argv and flags(argv)["source"] == "."
