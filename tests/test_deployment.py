"""Each function starts the way the Cloud Functions runtime starts it: the functions-framework CLI,
PORT set, from a clean copy of the deployed files, with only requirements.txt installed."""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request

import pytest

from devservices.ports import free_port
from devservices.processes import spawn, terminate
from devservices.waiting import wait_until

from .support.deploy_copy import deploy_venv, deployed_copy


@pytest.fixture(scope="session")
def runtime_venv():
    return deploy_venv()


@pytest.mark.parametrize(("target", "extra_key"), [("random_fact", None), ("today_fact", "date")])
def test_function_starts_under_the_functions_framework_cli(services, runtime_venv, tmp_path, db, target, extra_key):
    root = deployed_copy(tmp_path / "deployed")
    port = free_port()
    env = {"PATH": f"{runtime_venv}/bin:/usr/bin:/bin", "PORT": str(port), **services.environ()}
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
    assert services.database_url.split("@")[0].split(":")[-1] not in log_text  # the password never shows


def test_deploy_script_names_real_files_and_entry_points():
    """The scripted deployment (dry run): every --entry-point is an HTTP function of its GOOGLE_FUNCTION_SOURCE."""
    import subprocess

    from emulator.routes import http_targets

    from .support.deploy_copy import ROOT

    env = {"PROJECT": "demo", "REGION": "europe-west1", "CONNECTOR": "facts", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        ["bash", str(ROOT / "deploy" / "cloud-functions.sh"), "--dry-run"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    commands = [line.split() for line in result.stdout.splitlines()]
    assert len(commands) == 2
    for argv in commands:
        flags = dict(arg[2:].split("=", 1) for arg in argv if arg.startswith("--") and "=" in arg)
        source = flags["set-build-env-vars"].removeprefix("GOOGLE_FUNCTION_SOURCE=")
        assert flags["entry-point"] in http_targets(ROOT / source)
        assert "--gen2" in argv and flags["source"] == "."
        assert flags["set-secrets"] == "DATABASE_URL=facts-database-url:latest,REDIS_URL=facts-redis-url:latest"
    ignored = [line.strip() for line in (ROOT / ".gcloudignore").read_text().splitlines() if not line.startswith("#")]
    assert not {"functions/", "shared/", "requirements.txt"} & set(ignored)
