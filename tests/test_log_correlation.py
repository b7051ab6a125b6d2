"""Log lines correlate on Cloud Run: an instance started with exactly Cloud Run's contract (PORT,
K_SERVICE, K_REVISION, K_CONFIGURATION; what the function buildpack writes into the image:
FUNCTION_TARGET, FUNCTION_SIGNATURE_TYPE, FUNCTION_SOURCE; the secrets; and the dry run's
--set-env-vars, nothing else) writes `projects/PROJECT/traces/TRACE` on every request's line, so
that Cloud Logging groups the lines under their request.

Cloud Run sets no GOOGLE_CLOUD_PROJECT: without the deploy's own setting the trace is a bare id.
"""

from __future__ import annotations

import http.client
import json
import secrets
import signal
from pathlib import Path

import pytest

from devkit.cloudrun.upload_copy import deploy_venv, deployed_copy
from devkit.servers.ports import free_port
from devkit.servers.processes import spawn, terminate
from devkit.servers.waiting import wait_until

from .support.deploy_copy import dry_run, flags

# In the slow lane: a dry run and an instance started from the upload set.
pytestmark = pytest.mark.slow


def _get(port: int, path: str, trace: str | None) -> int:
    con = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"X-Cloud-Trace-Context": f"{trace}/1;o=1"} if trace else {}
        con.request("GET", path, headers=headers)
        response = con.getresponse()
        response.read()
        return response.status
    finally:
        con.close()


def _answers_200(port: int) -> None:
    assert _get(port, "/warm-up", None) == 200


def test_every_request_line_names_its_trace_in_the_deployed_project(servers, tmp_path: Path) -> None:
    (deploy, *_) = dry_run(tmp_path / "dry", PROJECT="demo-project").named("run", "deploy")
    assert deploy[3] == "random-fact"
    set_env = dict(pair.split("=", 1) for pair in flags(deploy)["set-env-vars"].split(","))
    venv, port = deploy_venv(), free_port()
    contract = {
        "PATH": f"{venv}/bin:/usr/bin:/bin",  # the image's: its Python and packages
        "PORT": str(port),
        "K_SERVICE": "random-fact",
        "K_REVISION": "random-fact-00002-abc",
        "K_CONFIGURATION": "random-fact",
        "FUNCTION_TARGET": flags(deploy)["function"],
        "FUNCTION_SIGNATURE_TYPE": "http",
        "FUNCTION_SOURCE": flags(deploy)["set-build-env-vars"].removeprefix("GOOGLE_FUNCTION_SOURCE="),
        "DATABASE_URL": servers.database_url,  # --set-secrets
        "REDIS_URL": servers.redis_url,
        **set_env,
    }
    log_path = tmp_path / "instance.log"
    with open(log_path, "wb") as log:
        process = spawn([str(venv / "bin" / "functions-framework")], log, None, signal.SIGTERM, env=contract,
                        cwd=deployed_copy(tmp_path / "upload"))  # fmt: skip
    traces = [secrets.token_hex(16) for _ in range(3)]
    try:
        wait_until(lambda: _answers_200(port), 60, "the first 200", log_path.read_text)
        for n, trace in enumerate(traces):
            assert _get(port, f"/traced-{n}", trace) == 200
    finally:
        terminate(process, signal.SIGTERM, whole_group=True)
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("logger") == "facts.requests" and "/traced-" in line["path"]]
    assert [line["path"] for line in requests] == [f"/traced-{n}" for n in range(3)]
    for line, trace in zip(requests, traces, strict=True):
        assert line["logging.googleapis.com/trace"] == f"projects/demo-project/traces/{trace}", line
