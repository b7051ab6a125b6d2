"""serve --like cloud-run's platform state in-process (devharness/cloudrun_mode.py): what --reload
watches, the limits it takes from the deploy, the panel's view, the fault buttons' rules and the
events they log. tests/test_cloud_run_mode.py runs the mode itself, with real instances and servers."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from devharness import cloudrun_mode
from devharness.cloudrun_mode import Platform
from devharness.livelog import RequestLog
from devkit.cloudrun.service import Limits
from devkit.servers.protocol import Servers
from shared import logs

from .support.request_records import cloud_run_events

LIMITS = Limits(max_instances=3, concurrency=4, request_timeout_s=30.0)


class ServerControl:
    """A started server's controls, recorded: the real ones freeze and stop a process
    (tests/test_cloud_run_mode.py presses them for real)."""

    def __init__(self, name: str, calls: list[str]) -> None:
        self.name, self.calls = name, calls

    def __getattr__(self, action: str) -> Any:
        if action not in cloudrun_mode.SERVER_ACTIONS:
            raise AttributeError(action)
        return lambda: self.calls.append(f"{self.name} {action}")


def _servers(ours: bool, calls: list[str]) -> Servers:
    controls: dict[str, Any] = {"postgres": ServerControl("postgres", calls), "redis": ServerControl("redis", calls)}
    return Servers("postgresql://u@h/db", "redis://h", "embedded", "test", **(controls if ours else {}))


def _platform(tmp_path: Path, servers: Servers | None) -> Platform:
    return Platform({"A": "1"}, LIMITS, tmp_path, servers, source_root=tmp_path, venv=tmp_path / "venv")


def test_the_view_before_any_service_starts(tmp_path: Path) -> None:
    platform = _platform(tmp_path, None)
    assert platform.view() == {
        "mode": "cloud-run", "revision": 1, "services": [], "servers": {"postgres": "running", "redis": "running"},
        "faults": False, "logs": str(tmp_path),
    }  # fmt: skip
    assert (platform.env, platform.limits, platform.venv) == ({"A": "1"}, LIMITS, tmp_path / "venv")


def test_faults_only_on_servers_the_harness_started(tmp_path: Path) -> None:
    calls: list[str] = []
    assert _platform(tmp_path, _servers(True, calls)).faults_allowed() is True
    external = _platform(tmp_path, _servers(False, calls))
    assert external.faults_allowed() is False
    with pytest.raises(ValueError, match=r"^no 'freeze' for 'redis' here$"):
        external.fault("redis", "freeze")
    assert calls == []


def test_each_fault_changes_its_server_and_says_so_in_the_live_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "facts.harness")
    calls: list[str] = []
    platform = _platform(tmp_path, _servers(True, calls))
    expected = [("redis", "freeze", "frozen"), ("redis", "thaw", "running"), ("postgres", "stop", "stopped"),
                ("postgres", "start", "running")]  # fmt: skip
    for server, action, state in expected:
        assert platform.fault(server, action) == state
        assert platform.view()["servers"][server] == state
    assert calls == ["redis freeze", "redis thaw", "postgres stop", "postgres start"]
    assert cloud_run_events(caplog.records) == [
        ("FAULT", "redis: freeze ..."), ("FAULT", "redis frozen"), ("FAULT", "redis: thaw ..."),
        ("FAULT", "redis running"), ("FAULT", "postgres: stop ..."), ("FAULT", "postgres stopped"),
        ("FAULT", "postgres: start ..."), ("FAULT", "postgres running"),
    ]  # fmt: skip
    for server, action in (("mysql", "stop"), ("redis", "kill"), ("postgres", "")):
        with pytest.raises(ValueError, match=r"^no "):
            platform.fault(server, action)
    assert len(calls) == 4


def test_a_request_seen_is_logged_under_its_function_with_its_instance(caplog: pytest.LogCaptureFixture) -> None:
    logs.configure()  # the level every request sets
    ring = RequestLog().attach()  # the live log, where the instance is shown
    try:
        platform = _platform(Path("/nowhere"), None)
        platform.request_seen("random_fact", "GET", "/random" + "x" * 300, 200, 0.25, "random-fact-00001#0")
        platform.request_seen("today_fact", "GET", "/today", 429, 0.0, None)
    finally:
        ring.detach()
    # On the terminal too (the harness's own logger), the path cut where the live log cuts it.
    lines = [(r.name, getattr(r, "fields", None)) for r in caplog.records]
    logged = [(name, fields["function"], len(fields["path"])) for name, fields in lines if fields]
    assert logged == [("facts.harness", "random_fact", 200), ("facts.harness", "today_fact", 6)]
    lines = ring.read(after=0, wait_s=0)["events"]
    assert [(line["function"], line["path"], line["status"]) for line in lines] == [
        ("random_fact", ("/random" + "x" * 300)[:200], 200), ("today_fact", "/today", 429),
    ]  # fmt: skip
    assert lines[0]["latency_ms"] >= 250 and lines[0]["instance"] == "random-fact-00001#0"
    assert "instance" not in lines[1]


def test_a_platform_event_is_a_line_of_the_harness_with_status_0(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "facts.harness")
    _platform(Path("/nowhere"), None).event("deploy", "revision 2: starting its instances")
    ((name, fields),) = [(r.name, getattr(r, "fields", None)) for r in caplog.records if hasattr(r, "fields")]
    assert name == "facts.harness"
    assert (fields["function"], fields["method"], fields["path"], fields["status"]) == (
        "cloud-run", "DEPLOY", "revision 2: starting its instances", 0,
    )  # fmt: skip


def test_the_view_shows_the_fronts_services_once_it_runs(tmp_path: Path) -> None:
    class FrontViewStandIn:
        """The Cloud Run front's view (tests/test_cloud_run_mode.py runs the real one)."""

        def view(self) -> dict[str, Any]:
            return {"services": [{"route": "random", "instances": []}]}

    platform = _platform(tmp_path, None)
    platform.front = FrontViewStandIn()  # type: ignore[assignment]
    assert platform.view()["services"] == [{"route": "random", "instances": []}]


def test_the_limits_are_the_deploys_with_the_idle_stop_chosen() -> None:
    deployed = SimpleNamespace(max_instances=5, concurrency=8, timeout_s=60.0)
    assert cloudrun_mode.limits_from_deploy(deployed, 7.0) == Limits(5, 8, 60.0, idle_stop_s=7.0)


def test_reload_watches_the_python_and_toml_files_of_functions_and_shared(tmp_path: Path) -> None:
    for name in ("functions/a.py", "functions/routes.toml", "functions/notes.md", "shared/b.py",
                 "shared/__pycache__/b.cpython-311.pyc", "shared/__pycache__/c.py", "devkit/d.py"):  # fmt: skip
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    stamp = cloudrun_mode.source_stamp(tmp_path)
    assert [Path(path).relative_to(tmp_path).as_posix() for path, _ in stamp] == [
        "functions/a.py", "functions/routes.toml", "shared/b.py",
    ]  # fmt: skip
    os.utime(tmp_path / "shared/b.py", ns=(1, 1))
    changed = cloudrun_mode.source_stamp(tmp_path)
    assert changed != stamp and changed[-1] == (str(tmp_path / "shared/b.py"), 1)


def test_a_revision_launches_from_the_source_root_given_without_copying_the_upload_set(tmp_path: Path) -> None:
    platform = _platform(tmp_path, None)
    launch = platform.launcher(2)
    assert callable(launch)
    assert not (tmp_path / "upload-00002").exists()  # a copy of the upload set is made only without a source root
