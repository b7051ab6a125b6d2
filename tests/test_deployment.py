"""What a deployment uploads, installs and runs, checked here before Google Cloud sees it.

- The upload set is computed from `.gcloudignore` (gitignore syntax, `#!include:.gitignore`
  expanded) by a gitignore-pattern library, and each function starts from exactly that set under
  the functions-framework CLI, PORT set, in a virtualenv installing exactly the lock.
- The upload set computed here is the one gcloud itself lists (`gcloud meta list-files-for-upload`).
- The deploy script's dry run is held to the rules of a first deploy that works: a runtime
  service account with exactly the grants it needs, a migration step before the functions,
  pinned secret versions, --max-instances within the connection budget counted for two revisions
  at twice max-instances, one revision per function and Direct VPC egress.
- The rollout: a later deploy's revisions come up with no traffic under a tag, are verified by a
  smoke request, and only then take the traffic; the public binding is read after. The functions
  get a startup probe on the readiness path, no worker timeout, and their project.
(The buildpacks' rules for the three builds: tests/test_buildpack_rules.py; the rollout rehearsed
with real instances: tests/test_rollout.py.)
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import urllib.error
import urllib.request

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from devharness.routes import http_targets
from devkit.servers.ports import free_port
from devkit.servers.processes import spawn, terminate
from devkit.servers.waiting import wait_until
from shared.config import server_shape
from shared.readiness import READY_PATH

from .support.deploy_copy import (
    BASE_ENV,
    ROOT,
    SCRIPT,
    deploy_venv,
    deployed_copy,
    dry_run,
    flags,
    gcloud_env,
    gcloud_upload,
    upload_set,
)

ACCOUNT = "facts-runtime@demo.iam.gserviceaccount.com"

# In the slow lane: the deploy's dry run and the functions started from the upload set.
pytestmark = pytest.mark.slow


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
    # gcloud itself reads .gcloudignore the same way, here and in the junk-filled copy.
    assert gcloud_upload(ROOT, tmp_path / "gcloud") == uploaded
    assert gcloud_upload(tree, tmp_path / "gcloud") == uploaded


_PIN = re.compile(r"([A-Za-z0-9._-]+)==([^ \\]+) \\\n((?:    --hash=sha256:[0-9a-f]{64}(?: \\\n|\n))+)")


def test_lock_pins_every_deployed_package_with_hashes():
    lock = (ROOT / "requirements.txt").read_text()
    entries = [line for line in lock.splitlines() if line and not line.startswith((" ", "#"))]
    pinned = {name.lower(): Version(version) for name, version, _ in _PIN.findall(lock)}
    # Each entry is a pin followed by its hashes (pip then refuses any file not among them).
    assert entries and len(pinned) == len(entries), [e for e in entries if e.split("==")[0].lower() not in pinned]
    for line in (ROOT / "requirements.in").read_text().splitlines():
        if line and not line.startswith("#"):
            wanted = Requirement(line)
            assert pinned[wanted.name.lower()] in wanted.specifier, line


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


FUNCTIONS = ["random-fact", "today-fact"]


def test_dry_run_makes_the_runtime_account_and_grants_exactly_the_two_secrets(tmp_path):
    run = dry_run(tmp_path)
    assert run.named("iam", "service-accounts", "create")[0][4] == "facts-runtime"
    grants = run.named("secrets", "add-iam-policy-binding")
    assert sorted(argv[3] for argv in grants) == ["facts-database-url", "facts-redis-url"]
    for argv in grants:
        assert flags(argv)["member"] == f"serviceAccount:{ACCOUNT}"
        assert flags(argv)["role"] == "roles/secretmanager.secretAccessor"
    assert not run.named("projects", "add-iam-policy-binding")  # no project-wide role without Cloud SQL
    deploys = run.named("run", "deploy") + run.named("run", "jobs", "deploy")
    assert len(deploys) == 3 and all(flags(argv)["service-account"] == ACCOUNT for argv in deploys)


def test_dry_run_migrates_with_a_job_built_from_the_staged_upload_before_deploying_the_functions(tmp_path):
    run = dry_run(tmp_path)
    order = [" ".join(argv[1:4]) for argv in run.commands]
    (build,) = run.named("builds", "submit")
    assert build[3] == str(run.stage / "migration-job")
    job = run.named("run", "jobs", "deploy")[0]
    assert flags(job)["image"] in flags(build)["pack"]  # the image that build makes
    assert flags(job)["set-secrets"].startswith("DATABASE_URL=facts-database-url:")
    execute = order.index("run jobs execute")
    assert "--wait" in run.commands[execute]
    assert order.index("builds submit " + build[3]) < order.index("run jobs deploy") < execute
    assert execute < order.index("run deploy random-fact") and execute < order.index("run deploy today-fact")


def test_dry_run_pins_secret_versions_resolved_at_deploy_time_or_given(tmp_path):
    run = dry_run(tmp_path / "newest")
    assert not any(":latest" in arg for argv in run.commands for arg in argv)
    resolving = run.named("secrets", "versions", "list")
    assert sorted(argv[4] for argv in resolving) == ["facts-database-url", "facts-redis-url"]
    assert any("DATABASE_SECRET_VERSION=" in line for line in run.comments)  # printed

    run = dry_run(tmp_path / "given", DATABASE_SECRET_VERSION="7", REDIS_SECRET_VERSION="3")
    assert not run.named("secrets", "versions", "list")
    assert flags(run.named("run", "jobs", "deploy")[0])["set-secrets"] == "DATABASE_URL=facts-database-url:7"
    for argv in run.named("run", "deploy"):
        assert flags(argv)["set-secrets"] == "DATABASE_URL=facts-database-url:7,REDIS_URL=facts-redis-url:3"


# The worst moment: just after a deploy the old revision's instances still hold their connections
# while the new revision's open theirs, and Cloud Run may briefly run up to 2x max-instances.
REVISIONS, BURST = 2, 2


@pytest.mark.parametrize(("max_connections", "reserve"), [("400", "10"), ("200", "10"), ("1000", "20")])
def test_dry_run_max_instances_fit_the_budget_for_two_revisions_at_twice_max_instances(
    tmp_path, max_connections, reserve
):
    run = dry_run(tmp_path, DB_MAX_CONNECTIONS=max_connections, DB_RESERVED_CONNECTIONS=reserve)
    deploys = run.named("run", "deploy")
    assert sorted(argv[3] for argv in deploys) == FUNCTIONS
    available = int(max_connections) - int(reserve)
    for argv in deploys:
        env = _deployed_env(argv)
        worst_per_instance = int(env["WORKERS"]) * int(env["FACTS_POOL_SIZE"]) * len(deploys) * REVISIONS * BURST
        max_instances = int(flags(argv)["max-instances"])
        assert 1 <= max_instances and max_instances * worst_per_instance <= available
        # The most that fits: one more instance of each would not.
        assert (max_instances + 1) * worst_per_instance > available
        assert flags(argv)["ingress"] in ("all", "internal", "internal-and-cloud-load-balancing")
        assert flags(argv)["concurrency"] == str(int(env["WORKERS"]) * int(env["THREADS"]))
    assert any("connection budget" in line and max_connections in line for line in run.comments)


def test_the_default_budget_leaves_room_to_scale(tmp_path):
    # One instance per function could not absorb a burst: the default tier must allow several.
    (argv, *_) = dry_run(tmp_path).named("run", "deploy")
    assert int(flags(argv)["max-instances"]) >= 5


def _deployed_env(argv: list[str]) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in flags(argv)["set-env-vars"].split(","))


@pytest.mark.parametrize(
    ("env", "cpus"),
    [({}, 2), ({"CPU": "4"}, 4), ({"THREADS": "3"}, 2), ({"WORKERS": "1", "POOL_SIZE": "2"}, 2)],
)
def test_the_deploy_takes_the_one_server_shape(tmp_path, env, cpus):
    (argv, *_) = dry_run(tmp_path, **env).named("run", "deploy")
    deployed = _deployed_env(argv)
    shape = server_shape({**env, "FACTS_POOL_SIZE": env.get("POOL_SIZE", "")}, cpus)
    assert (deployed["WORKERS"], deployed["THREADS"], deployed["FACTS_POOL_SIZE"]) == tuple(
        str(n) for n in (shape.workers, shape.threads, shape.pool_size)
    )


def test_the_deploy_refuses_a_bad_server_shape(tmp_path):
    result = subprocess.run(["bash", str(SCRIPT), "--dry-run"], capture_output=True, text=True,
                            env={**gcloud_env(tmp_path), **BASE_ENV, "STAGE_DIR": str(tmp_path / "stage"),
                                 "THREADS": "lots"}, timeout=60)  # fmt: skip
    assert result.returncode != 0 and "THREADS must be a whole number of at least 1, got 'lots'" in result.stderr
    assert "gcloud" not in result.stdout


@pytest.mark.parametrize("max_connections", ["25", "73"])  # 73 - 10 = 63 < 64, one instance of each at 2x2
def test_dry_run_refuses_a_budget_that_cannot_fit(tmp_path, max_connections):
    result = subprocess.run(["bash", str(SCRIPT), "--dry-run"], capture_output=True, text=True,
                            env={**gcloud_env(tmp_path), **BASE_ENV, "STAGE_DIR": str(tmp_path / "stage"),
                                 "DB_MAX_CONNECTIONS": max_connections}, timeout=60)  # fmt: skip
    assert result.returncode == 1 and "connection budget does not fit" in result.stderr
    assert "gcloud" not in result.stdout


@pytest.mark.parametrize("instance", [None, "demo:europe-west1:facts"])
def test_dry_run_makes_one_revision_per_function_with_direct_vpc_egress(tmp_path, instance):
    run = dry_run(tmp_path, **({"CLOUDSQL_INSTANCE": instance} if instance else {}))
    # One command per function, none after it to change the service (each would make a revision).
    assert sorted(argv[3] for argv in run.named("run", "deploy")) == FUNCTIONS
    # Nothing after it changes a service's configuration (each change would make a revision):
    # the rollout only reads services, moves traffic and reads the IAM policy.
    assert {argv[3] for argv in run.named("run", "services")} == {"describe", "update-traffic", "get-iam-policy"}
    assert not run.named("functions")
    for argv in run.named("run", "deploy") + run.named("run", "jobs", "deploy"):
        assert {"network", "subnet"} <= flags(argv).keys() and flags(argv)["vpc-egress"] == "private-ranges-only"
        assert not any(arg.startswith("--vpc-connector") for arg in argv)
        assert flags(argv).get("set-cloudsql-instances") == instance


def test_dry_run_socket_form_grants_cloud_sql_client_to_the_runtime_account(tmp_path):
    run = dry_run(tmp_path, CLOUDSQL_INSTANCE="demo:europe-west1:facts")
    grant = run.named("projects", "add-iam-policy-binding")
    assert len(grant) == 1 and flags(grant[0])["role"] == "roles/cloudsql.client"
    assert flags(grant[0])["member"] == f"serviceAccount:{ACCOUNT}"


def test_dry_run_entry_points_are_http_functions_of_their_uploaded_source(tmp_path):
    run = dry_run(tmp_path)
    for argv in run.named("run", "deploy"):
        source = flags(argv)["set-build-env-vars"].removeprefix("GOOGLE_FUNCTION_SOURCE=")
        assert flags(argv)["source"] == str(run.stage / "functions")
        assert source in gcloud_upload(run.stage / "functions", tmp_path / "gcloud")
        assert flags(argv)["function"] in http_targets(ROOT / source)


def _positions(run, *words: str) -> list[int]:
    return [n for n, argv in enumerate(run.commands) if argv[1 : 1 + len(words)] == list(words)]


def test_dry_run_of_a_later_deploy_verifies_each_tagged_candidate_before_any_traffic_moves(tmp_path):
    run = dry_run(tmp_path)  # DRY_RUN_AS=update: the services exist
    deploys = run.named("run", "deploy")
    assert all("--no-traffic" in argv and flags(argv)["tag"] == "candidate" for argv in deploys)
    smokes = [n for n in _positions(run, "run", "services", "describe") if "--format=json" in run.commands[n]]
    promotions = _positions(run, "run", "services", "update-traffic")
    bindings = _positions(run, "run", "services", "get-iam-policy")
    assert len(smokes) == len(promotions) == len(bindings) == len(deploys) == 2
    # Every candidate deployed, then every one verified, then traffic moved, then the binding read.
    assert max(_positions(run, "run", "deploy")) < min(smokes) and max(smokes) < min(promotions)
    assert max(promotions) < min(bindings)
    assert all("--to-latest" in run.commands[n] for n in promotions)
    assert sum("smoke request to the candidate URL" in line for line in run.comments) == 2
    for n in bindings:
        assert "bindings.members=allUsers" in flags(run.commands[n])["filter"]
        assert "roles/run.invoker" in flags(run.commands[n])["filter"]


def test_dry_run_of_a_first_deploy_takes_traffic_at_once_and_verifies_it_after(tmp_path):
    run = dry_run(tmp_path, DRY_RUN_AS="first")
    deploys = run.named("run", "deploy")
    assert len(deploys) == 2 and not any("--no-traffic" in argv or "--tag" in " ".join(argv) for argv in deploys)
    assert not run.named("run", "services", "update-traffic")  # nothing older to move it from
    assert sum("smoke request to the service URL" in line for line in run.comments) == 2
    assert len(run.named("run", "services", "get-iam-policy")) == 2


def test_the_deployed_functions_have_a_startup_probe_no_worker_timeout_and_their_project(tmp_path):
    for argv in dry_run(tmp_path).named("run", "deploy"):
        probe = dict(item.split("=", 1) for item in flags(argv)["startup-probe"].split(","))
        assert probe["httpGet.path"] == READY_PATH
        # Direct VPC egress may take a minute or more to connect a new instance: the probe waits longer.
        assert int(probe["periodSeconds"]) * int(probe["failureThreshold"]) >= 120
        assert int(probe["timeoutSeconds"]) <= int(probe["periodSeconds"])
        env = _deployed_env(argv)
        assert env["CLOUD_RUN_TIMEOUT_SECONDS"] == "0"  # no gunicorn worker timeout: --timeout bounds requests
        assert flags(argv)["timeout"] == "60s"
        assert env["GOOGLE_CLOUD_PROJECT"] == flags(argv)["project"] == "demo"


def test_extra_settings_reach_the_functions_and_the_job(tmp_path):
    run = dry_run(tmp_path, EXTRA_ENV_VARS="A=1,B=2", EXTRA_SECRETS="/etc/ca/server.pem=facts-ca:3",
                  DATABASE_SECRET_VERSION="7", REDIS_SECRET_VERSION="3")  # fmt: skip
    for argv in run.named("run", "deploy") + run.named("run", "jobs", "deploy"):
        assert flags(argv)["set-env-vars"].endswith(",A=1,B=2")
        assert flags(argv)["set-secrets"].endswith(",/etc/ca/server.pem=facts-ca:3")
