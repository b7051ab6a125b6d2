"""The parts of serve --like cloud-run that need no instance: the cold start's figures read from an
instance's log, the deploy's limits read from its dry run, and the dashboard's buttons' guards."""

from __future__ import annotations

import io
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from devharness import cli, platform_api
from devharness.livelog import RequestLog, annotated
from devkit.cloudrun.cold_start import ColdStart, request_latencies_s
from devkit.cloudrun.deployed import deployed_service
from shared import logs

HARNESS_LOG = logging.getLogger("facts.harness")

# What PYTHONPROFILEIMPORTTIME writes, and a request line, as an instance's log holds them.
LOG = """import time: self [us] | cumulative | imported package
import time:       100 |        100 |   _io
import time:       300 |     250000 | encodings
import time:        50 |        900 |     encodings.aliases
import time:       200 |     500000 | functions_framework
{"severity": "INFO", "function": "random_fact", "method": "GET", "path": "/", "status": 200, "latency_ms": 120.5}
{"severity": "INFO", "function": "random_fact", "method": "GET", "path": "/", "status": 200, "latency_ms": 4.5}
"""


def test_a_cold_start_is_broken_down_from_the_instances_own_log(tmp_path: Path) -> None:
    log = tmp_path / "instance.log"
    log.write_text(LOG)
    cold = ColdStart("random-fact-00001#0", 1, 0.0)
    cold.listened(1.0, log)
    assert cold.imports_s == 0.75  # the top-level imports only: nested ones are inside their parents
    assert cold.process_s == 0.25
    cold.answered(1.5, 1.0)
    assert (cold.first_answer_s, cold.total_s, cold.outcome) == (0.5, 1.5, "served")
    cold.settle_connections(log)
    assert cold.connections_s is not None and abs(cold.connections_s - 0.116) < 1e-9
    assert request_latencies_s(LOG) == [0.1205, 0.0045]


def test_the_modes_limits_are_the_deploy_scripts() -> None:
    deployed = deployed_service()
    assert deployed.max_instances >= 1
    # The deploy's own arithmetic: one request per thread of each worker.
    assert deployed.concurrency == int(deployed.env["WORKERS"]) * int(deployed.env["THREADS"])
    # Cloud Run's --timeout bounds each request; the workers have no timeout of their own, which a
    # long freeze between requests would otherwise trip (the deploy sets it to 0).
    assert deployed.timeout_s >= 1
    assert deployed.env["CLOUD_RUN_TIMEOUT_SECONDS"] == "0"


class Recording:
    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def view(self) -> dict[str, Any]:
        return {"mode": "cloud-run"}

    def evict(self, name: str) -> bool:
        self.calls.append(("evict", name))
        return name == "random-fact-00001#0"

    def fault(self, server: str, action: str) -> str:
        if server != "redis":
            raise ValueError(f"no {action!r} for {server!r} here")
        self.calls.append(("fault", server, action))
        return "frozen"


def _post(platform: Any, path: str, body: Any, content_type: str = "application/json", **extra: str) -> Any:
    raw = json.dumps(body).encode()
    environ = {"REQUEST_METHOD": "POST", "CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(len(raw)),
               "wsgi.input": io.BytesIO(raw), "HTTP_HOST": "127.0.0.1:8080", **extra}  # fmt: skip
    return platform_api.answer(platform, environ, path)


def test_the_buttons_act_on_a_json_body_from_the_dashboards_own_origin() -> None:
    platform = Recording()
    assert (
        _post(
            platform, "/fault", {"server": "redis", "action": "freeze"}, HTTP_ORIGIN="http://127.0.0.1:8080"
        ).status_code
        == 200
    )
    assert _post(platform, "/evict", {"instance": "random-fact-00001#0"}).status_code == 200
    assert platform.calls == [("fault", "redis", "freeze"), ("evict", "random-fact-00001#0")]


def test_the_buttons_refuse_forms_other_origins_bad_names_and_other_methods() -> None:
    platform = Recording()
    fault = {"server": "redis", "action": "stop"}
    assert _post(platform, "/fault", fault, "application/x-www-form-urlencoded").status_code == 400
    assert _post(platform, "/fault", fault, HTTP_ORIGIN="http://evil.example").status_code == 403
    assert _post(platform, "/fault", {"server": "postgres; rm", "action": "stop"}).status_code == 400
    assert _post(platform, "/evict", {"instance": "nobody"}).status_code == 404
    assert _post(platform, "/evict", ["not", "an", "object"]).status_code == 400
    assert platform.calls == [("evict", "nobody")]
    get = platform_api.answer(platform, {"REQUEST_METHOD": "GET"}, "/fault")
    assert get.status_code == 405
    assert _post(None, "/fault", fault).status_code == 409  # the one-process serve has no platform
    assert json.loads(platform_api.answer(None, {"REQUEST_METHOD": "GET"}, "").get_data()) == {"mode": "one-process"}


def test_a_line_the_harness_logs_for_an_instance_names_it_in_the_live_log_only_inside_the_block() -> None:
    logs.configure()
    requests = RequestLog().attach()
    try:
        with annotated(instance="random-fact-00001#0", password="never shown"):
            logs.log_request("random_fact", "GET", "/random", 200, time.perf_counter(), logger=HARNESS_LOG)
        logs.log_request("random_fact", "GET", "/random", 200, time.perf_counter(), logger=HARNESS_LOG)
    finally:
        requests.detach()
    first, second = requests.read(0, wait_s=0)["events"]
    assert first["instance"] == "random-fact-00001#0" and "password" not in first
    assert "instance" not in second


def test_workers_is_refused_with_cloud_run_whose_deploy_sets_them() -> None:
    with pytest.raises(SystemExit, match="WORKERS"):
        cli.main(["serve", "--like", "cloud-run", "--workers", "2"])
