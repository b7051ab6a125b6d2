"""serve --like cloud-run's wiring in-process (devharness/cloudrun_mode.py): how a revision's instances
are launched, what the Platform hands the Cloud Run front, eviction and deploys through the front,
--reload's watch, and `serve` itself: the deploy's limits and environment, the dashboard's setup, the
control server, the signals that stop it, the lines it prints and the --reload thread.

The expensive parts are stand-ins that record what they were given: the front (its loop, instances,
scaling and routing are run by tests/test_cloud_run_mode.py), `start_instance` and `deployed_copy`
(tests/test_cloud_run_mode.py and tests/test_cloud_run_reload.py start real instances from real
copies), the deploy script's dry run (tests/test_cloud_run_parts.py reads the real one) and the
dashboard's app. The control server is werkzeug's own, on loopback."""

from __future__ import annotations

import argparse
import asyncio
import functools
import inspect
import io
import logging
import os
import signal
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, cast

import pytest
from werkzeug.serving import BaseWSGIServer, make_server

from devharness import cloudrun_mode
from devharness.cloudrun_mode import Platform
from devharness.dashboard import DashboardSetup
from devkit.cloudrun.autoscale import CloudRunFront
from devkit.cloudrun.deployed import DeployedService
from devkit.cloudrun.instances import Instance, start_instance
from devkit.cloudrun.service import Launch, Limits
from devkit.cloudrun.upload_copy import ROOT
from devkit.servers.protocol import Servers

from .support.request_records import cloud_run_events

LIMITS = Limits(max_instances=3, concurrency=4, request_timeout_s=30.0)
ENV = {"A": "1"}
PROFILE_IMPORTS = {"PYTHONPROFILEIMPORTTIME": "1"}  # what every instance gets for its cold-start breakdown
EVERY_INTERFACE = "0.0.0.0"  # noqa: S104 - `serve --host 0.0.0.0`: the user's choice, and no socket here
BOUND_S = 5.0  # the longest any wait here may take; none takes it unless the code under test is broken


# --- stand-ins ---------------------------------------------------------------------------------
class StartInstanceStandIn:
    """Takes `start_instance`'s place: records what a launch hands it (by parameter name, as bound to the
    real signature, so an argument left out shows) and starts no process."""

    def __init__(self) -> None:
        self.given: list[dict[str, Any]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Instance:
        given = dict(inspect.signature(start_instance).bind(*args, **kwargs).arguments)
        self.given.append(given)
        return Instance(given["route"], given["index"], 0, given["logs"] / "never-started.log", given["revision"])


class DeployedCopyStandIn:
    """Takes `deployed_copy`'s place: records where a revision's copy of the upload set would be made,
    copies nothing and answers that folder, as the real one does."""

    def __init__(self) -> None:
        self.into: list[Path] = []

    def __call__(self, into: Path, root: Path = ROOT) -> Path:
        self.into.append(into)
        return into


class AnswerRecorded(Future[Any]):
    """The front's answer to a call: records how long the platform would wait for it."""

    def __init__(self, waits: list[float | None]) -> None:
        super().__init__()
        self._waits = waits

    def result(self, timeout: float | None = None) -> Any:
        self._waits.append(timeout)
        return super().result(timeout)


class CloudRunFrontStandIn:
    """Takes the Cloud Run front's place: records what the Platform hands it (bound to the real
    signature) and runs no loop, port or instance. A call's coroutine runs to its end at once; `evict`
    finds the names in `live`, `deploy` answers `deploy_answer`. `while_entered`, if set, runs inside
    `with front:` (where serve waits for its stop)."""

    made: ClassVar[list[CloudRunFrontStandIn]] = []
    while_entered: ClassVar[Callable[[CloudRunFrontStandIn], None] | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.given = dict(inspect.signature(CloudRunFront).bind(*args, **kwargs).arguments)
        self.live = {"random-fact-00001#0"}
        self.deploy_answer = True
        self.evicted: list[str] = []
        self.deployed: list[tuple[int, Launch]] = []
        self.waits: list[float | None] = []
        self.entered = self.exited = False
        self.left = threading.Event()  # set as `with front:` ends
        CloudRunFrontStandIn.made.append(self)

    def __enter__(self) -> CloudRunFrontStandIn:
        self.entered = True
        if CloudRunFrontStandIn.while_entered is not None:
            CloudRunFrontStandIn.while_entered(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.exited = True
        self.left.set()

    def call(self, coroutine: Any) -> AnswerRecorded:
        """Runs the coroutine to its end on a loop in a thread of its own, as the real front runs its
        loop (a browser test's Playwright may leave a running loop in this thread)."""
        answer = AnswerRecorded(self.waits)
        loop_thread = threading.Thread(target=lambda: answer.set_result(asyncio.run(coroutine)), name="front-loop")
        loop_thread.start()
        loop_thread.join(BOUND_S)
        return answer

    async def evict(self, name: str) -> bool:
        self.evicted.append(name)
        return name in self.live

    async def deploy(self, revision: int, launch: Launch) -> bool:
        self.deployed.append((revision, launch))
        return self.deploy_answer


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> StartInstanceStandIn:
    stand_in = StartInstanceStandIn()
    monkeypatch.setattr(cloudrun_mode, "start_instance", stand_in)
    return stand_in


@pytest.fixture
def copies(monkeypatch: pytest.MonkeyPatch) -> DeployedCopyStandIn:
    stand_in = DeployedCopyStandIn()
    monkeypatch.setattr(cloudrun_mode, "deployed_copy", stand_in)
    return stand_in


@pytest.fixture
def fronts(monkeypatch: pytest.MonkeyPatch) -> list[CloudRunFrontStandIn]:
    made: list[CloudRunFrontStandIn] = []
    monkeypatch.setattr(CloudRunFrontStandIn, "made", made)
    monkeypatch.setattr(CloudRunFrontStandIn, "while_entered", None)
    monkeypatch.setattr(cloudrun_mode, "CloudRunFront", CloudRunFrontStandIn)
    return made


def _platform(tmp_path: Path, source_root: Path | None = None) -> Platform:
    return Platform(ENV, LIMITS, tmp_path / "logs", None, source_root=source_root, venv=tmp_path / "venv")


def _launched(tmp_path: Path, route: str, index: int, source: Path, revision: int) -> dict[str, Any]:
    """What start_instance is handed for one instance of the platform `_platform` makes."""
    return {"route": route, "index": index, "source_root": source, "venv": tmp_path / "venv", "env": ENV,
            "logs": tmp_path / "logs", "revision": revision, "extra_env": PROFILE_IMPORTS}  # fmt: skip


# --- a revision's instances --------------------------------------------------------------------
def test_a_revision_launches_its_instances_from_its_own_copy_of_the_upload_set(
    tmp_path: Path, copies: DeployedCopyStandIn, started: StartInstanceStandIn
) -> None:
    platform = _platform(tmp_path)
    launch = platform.launcher(4)
    assert copies.into == [tmp_path / "logs" / "upload-00004"]  # made now, once for all its instances
    first, second = launch("random", 0, 4), launch("today", 3, 4)
    copy = tmp_path / "logs" / "upload-00004"
    assert started.given == [_launched(tmp_path, "random", 0, copy, 4), _launched(tmp_path, "today", 3, copy, 4)]
    assert (first.name, second.name) == ("random-fact-00004#0", "today-fact-00004#3")  # what start_instance made
    assert copies.into == [copy]


def test_a_launch_starts_an_instance_of_the_revision_it_is_asked_for(
    tmp_path: Path, copies: DeployedCopyStandIn, started: StartInstanceStandIn
) -> None:
    # A Launch is (route, index, revision) -> an instance of that revision: the launcher's own
    # revision only chose the copy of the upload set it starts from.
    instance = _platform(tmp_path).launcher(4)("random", 1, 3)
    assert started.given == [_launched(tmp_path, "random", 1, tmp_path / "logs" / "upload-00004", 3)]
    assert instance.name == "random-fact-00003#1"


def test_with_a_source_root_a_revision_launches_from_it_and_copies_nothing(
    tmp_path: Path, copies: DeployedCopyStandIn, started: StartInstanceStandIn
) -> None:
    source = tmp_path / "checkout"
    launch = _platform(tmp_path, source_root=source).launcher(2)
    launch("today", 1, 2)
    assert started.given == [_launched(tmp_path, "today", 1, source, 2)]
    assert copies.into == []


def test_the_front_gets_both_functions_the_limits_revision_1_and_the_platforms_log_hooks(
    tmp_path: Path, copies: DeployedCopyStandIn, started: StartInstanceStandIn, fronts: list[CloudRunFrontStandIn]
) -> None:
    platform = _platform(tmp_path)
    returned = platform.front_for(EVERY_INTERFACE, 8080, 9090)
    [front] = fronts
    assert returned is front and platform.front is front
    launch = front.given.pop("launch")
    assert front.given == {
        "routes": {"random": "random_fact", "today": "today_fact"}, "limits": LIMITS, "event": platform.event,
        "seen": platform.request_seen, "port": 8080, "host": EVERY_INTERFACE, "fallback_port": 9090,
    }  # fmt: skip
    assert copies.into == [tmp_path / "logs" / "upload-00001"]  # the launch is revision 1's
    launch("random", 0, 1)
    assert started.given == [_launched(tmp_path, "random", 0, tmp_path / "logs" / "upload-00001", 1)]
    assert (front.entered, front.exited) == (False, False)  # serve enters it


# --- what the dashboard's buttons and --reload ask of the front --------------------------------
def test_evict_asks_the_front_to_stop_the_named_instance_and_waits_30_s_for_its_answer(
    tmp_path: Path, fronts: list[CloudRunFrontStandIn]
) -> None:
    platform = _platform(tmp_path, source_root=tmp_path)
    platform.front_for("127.0.0.1", None, None)
    [front] = fronts
    assert platform.evict("random-fact-00001#0") is True
    assert platform.evict("today-fact-00001#7") is False  # no such instance (any more)
    assert front.evicted == ["random-fact-00001#0", "today-fact-00001#7"]
    assert front.waits == [30, 30]


@pytest.mark.parametrize("answer", [True, False])
def test_each_deploy_is_the_next_revision_from_a_copy_of_its_own(
    tmp_path: Path,
    copies: DeployedCopyStandIn,
    started: StartInstanceStandIn,
    fronts: list[CloudRunFrontStandIn],
    caplog: pytest.LogCaptureFixture,
    answer: bool,
) -> None:
    caplog.set_level(logging.INFO, "facts.harness")
    platform = _platform(tmp_path)
    platform.front_for("127.0.0.1", None, None)
    [front] = fronts
    front.deploy_answer = answer  # False: the revision failed to start and the traffic stayed
    assert (platform.deploy(), platform.revision) == (answer, 2)
    assert (platform.deploy(), platform.revision) == (answer, 3)
    logs = tmp_path / "logs"
    assert copies.into == [logs / "upload-00001", logs / "upload-00002", logs / "upload-00003"]
    assert [revision for revision, _ in front.deployed] == [2, 3]
    for revision, launch in front.deployed:
        launch("today", 5, revision)
    assert started.given == [_launched(tmp_path, "today", 5, logs / f"upload-{n:05d}", n) for n in (2, 3)]
    assert front.waits == [300, 300]
    assert cloud_run_events(caplog.records) == [
        ("DEPLOY", "revision 2: starting its instances"), ("DEPLOY", "revision 3: starting its instances"),
    ]  # fmt: skip


# --- --reload ----------------------------------------------------------------------------------
def test_reload_stamps_the_repositorys_functions_and_shared_unless_told_otherwise() -> None:
    stamp = cloudrun_mode.source_stamp()
    assert stamp == cloudrun_mode.source_stamp(ROOT)
    files, function = dict(stamp), ROOT / "functions" / "random_fact.py"
    assert files[str(function)] == function.stat().st_mtime_ns
    assert str(ROOT / "devharness" / "cloudrun_mode.py") not in files


class TickingStop(threading.Event):
    """--reload's stop event with time standing still: each `wait` is one interval gone by at once (its
    timeout recorded), `during[n]` happens to the files within the n-th, and the `stop_at`-th wait is
    the one SIGTERM ends. More than one wait after that fails: the loop should have ended."""

    def __init__(self, stop_at: int, during: dict[int, Callable[[], None]] | None = None) -> None:
        super().__init__()
        self.stop_at, self.during = stop_at, during or {}
        self.waits: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        if len(self.waits) > self.stop_at + 1:
            raise AssertionError(f"still watching after the stop: wait {len(self.waits)}")
        self.during.get(len(self.waits), lambda: None)()
        if len(self.waits) == self.stop_at:
            self.set()
        return self.is_set()


class PlatformStandIn:
    """What watch_and_deploy asks of the Platform: deploy(), recorded as (how many waits had gone by,
    the files as they were then)."""

    def __init__(self, stop: threading.Event, stamp: Callable[[], tuple[tuple[str, int], ...]]) -> None:
        self.stop, self.stamp = stop, stamp
        self.deploys: list[tuple[int, tuple[tuple[str, int], ...]]] = []

    def deploy(self) -> bool:
        waits = len(self.stop.waits) if isinstance(self.stop, TickingStop) else -1
        self.deploys.append((waits, self.stamp()))
        return True


@pytest.fixture
def sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tree of its own for --reload to watch (source_stamp's default root is the repository)."""
    for name in ("functions/random_fact.py", "shared/config.py", "functions/README.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x = 1\n")
        os.utime(tmp_path / name, ns=(1, 1))
    monkeypatch.setattr(cloudrun_mode, "source_stamp", functools.partial(cloudrun_mode.source_stamp, tmp_path))
    return tmp_path


def _touch(path: Path, ns: int) -> Callable[[], None]:
    return lambda: os.utime(path, ns=(ns, ns))


def _watch(stop: TickingStop, waits: int) -> PlatformStandIn:
    """watch_and_deploy until `stop`; it waited `waits` times, each WATCH_EVERY_S."""
    platform = PlatformStandIn(stop, cloudrun_mode.source_stamp)
    cloudrun_mode.watch_and_deploy(cast(Platform, platform), stop)
    assert stop.waits == [0.5] * waits
    return platform


def test_reload_deploys_once_after_a_change_has_settled(sources: Path) -> None:
    # Changed within the 1st and 2nd waits: the 2nd wait is the first one's settling, which sees
    # another change; the 3rd sees the change and the 4th its settling, unchanged: one deploy.
    changes = {1: _touch(sources / "shared/config.py", 10), 2: _touch(sources / "functions/random_fact.py", 20)}
    stop = TickingStop(8, changes)
    platform = _watch(stop, waits=8)  # the 8th: the stop
    stamp = (str(sources / "functions/random_fact.py"), 20), (str(sources / "shared/config.py"), 10)
    assert platform.deploys == [(4, stamp)]


def test_reload_deploys_nothing_while_nothing_changes(sources: Path) -> None:
    stop = TickingStop(6, {2: _touch(sources / "functions/README.md", 5)})  # not watched
    assert _watch(stop, waits=6).deploys == []


def test_reload_deploys_nothing_when_stopped_while_a_change_settles(sources: Path) -> None:
    stop = TickingStop(2, {1: _touch(sources / "shared/config.py", 10)})
    assert _watch(stop, waits=3).deploys == []  # the settling wait saw the stop, and the loop's next one


class StopSeenWaiting(threading.Event):
    """A real stop event that tells when the watch first waits on it."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        self.waiting.set()
        return super().wait(timeout)


def test_reload_ends_as_soon_as_its_stop_is_set(sources: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cloudrun_mode, "WATCH_EVERY_S", 60.0)  # the stop, not the interval, ends the wait
    stop = StopSeenWaiting()
    platform = PlatformStandIn(stop, cloudrun_mode.source_stamp)
    watcher = threading.Thread(target=cloudrun_mode.watch_and_deploy, args=(platform, stop), daemon=True)
    watcher.start()
    assert stop.waiting.wait(BOUND_S)
    stop.set()
    watcher.join(BOUND_S)
    assert not watcher.is_alive()
    assert platform.deploys == []


# --- serve -------------------------------------------------------------------------------------
DEPLOYED = DeployedService(
    env={"WORKERS": "1", "THREADS": "8", "FACTS_CACHE_PREFIX": "the deploy's"},
    max_instances=3, concurrency=5, timeout_s=45.0,
)  # fmt: skip
SIGNALS = (signal.SIGTERM, signal.SIGINT)


class HandlerNotInstalled(Exception):
    """A signal reached the test's own handler: serve had not installed its own."""


@pytest.fixture
def signal_handlers() -> Iterator[None]:
    """Until serve installs its own handlers, SIGTERM and SIGINT raise HandlerNotInstalled (not the
    KeyboardInterrupt that would end the run); the originals are back afterwards."""
    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}

    def not_installed(signum: int, frame: Any) -> None:
        raise HandlerNotInstalled(signal.Signals(signum).name)

    for signum in SIGNALS:
        signal.signal(signum, not_installed)
    yield
    for signum, handler in previous.items():
        signal.signal(signum, handler)


class StderrRecorded(io.StringIO):
    """sys.stderr while serve runs: what it printed, and what it had flushed (what a reader of the pipe
    has seen: tests/test_cloud_run_mode.py waits for the dashboard line)."""

    def __init__(self) -> None:
        super().__init__()
        self.flushed = ""
        self.dashboard_flushed = threading.Event()

    def flush(self) -> None:
        super().flush()
        self.flushed = self.getvalue()
        if "dashboard: open" in self.flushed:
            self.dashboard_flushed.set()


class HarnessAppStandIn:
    """Takes build_app's place: records the dashboard's setup and the platform it is handed, and answers
    every path with OWN_APP (the dashboard itself is tested in tests/test_dashboard_in_process.py)."""

    OWN_APP = b"the harness's own app"

    def __init__(self) -> None:
        self.given: list[tuple[DashboardSetup | None, Any]] = []

    def __call__(self, dashboard: DashboardSetup | None = None, platform: Any = None) -> Any:
        self.given.append((dashboard, platform))

        def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(self.OWN_APP)))])
            return [self.OWN_APP]

        self.app = app
        return app


class MakeServerRecorded:
    """werkzeug's make_server, recording what serve hands it (bound to its signature) and the server."""

    def __init__(self) -> None:
        self.given: list[dict[str, Any]] = []
        self.servers: list[BaseWSGIServer] = []

    def __call__(self, *args: Any, **kwargs: Any) -> BaseWSGIServer:
        self.given.append(dict(inspect.signature(make_server).bind(*args, **kwargs).arguments))
        server = make_server(*args, **kwargs)
        self.servers.append(server)
        return server


class WatcherStandIn:
    """Takes watch_and_deploy's place in serve (its own tests are above): records what it was handed and
    in which thread, then waits for the stop it was given."""

    def __init__(self) -> None:
        self.given: list[tuple[Any, threading.Event, str, bool]] = []
        self.stopped: bool | None = None
        self.ended = threading.Event()

    def __call__(self, platform: Platform, stop: threading.Event) -> None:
        thread = threading.current_thread()
        self.given.append((platform, stop, thread.name, thread.daemon))
        self.stopped = stop.wait(BOUND_S)
        self.ended.set()


def deployed_service_stand_in() -> DeployedService:
    """The deploy script's dry run, answered at once with DEPLOYED."""
    return DEPLOYED


@dataclass
class ServeRun:
    """What one run of serve did, as its stand-ins saw it."""

    status: int
    lines: list[str]
    flushed_when_signalled: str
    own_app_answer: bytes
    app_threads: list[threading.Thread]
    front: CloudRunFrontStandIn
    app: HarnessAppStandIn
    control: MakeServerRecorded
    watcher: WatcherStandIn
    started: StartInstanceStandIn
    copies: DeployedCopyStandIn
    logs: Path
    venv: Path


def _servers(ours: bool) -> Servers:
    started_here: dict[str, Any] = {"postgres": object(), "redis": object()} if ours else {}
    return Servers("postgresql://u@h/db", "redis://h", "embedded" if ours else "external", "the test's servers",
                   cache_prefix="facts-test:", **started_here)  # fmt: skip


@pytest.fixture
def serve_like_cloud_run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    signal_handlers: None,
    fronts: list[CloudRunFrontStandIn],
    copies: DeployedCopyStandIn,
    started: StartInstanceStandIn,
) -> Iterator[Callable[..., ServeRun]]:
    """Runs `serve` in this (the main) thread, as `serve_like_cloud_run(servers, signum, reload)`: once
    the front is entered and the dashboard line flushed, a thread sends `signum` once to the main thread
    (where a signal from another process lands too). One that lands just as serve's main thread goes into
    its wait is handled when that wait ends (about 1 in 300 here): SIGNAL_LATENCY_S, well inside BOUND_S.
    Without serve's handlers no signal stops it; the sender is joined before the test's own handlers go."""
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # where serve's mkdtemp makes the instances' logs
    monkeypatch.setattr(cloudrun_mode, "deployed_service", deployed_service_stand_in)

    def deploy_venv_stand_in() -> Path:
        """The lock's virtualenv, not built: no instance is started here."""
        return tmp_path / "deploy-venv"

    monkeypatch.setattr(cloudrun_mode, "deploy_venv", deploy_venv_stand_in)
    app, control, watcher = HarnessAppStandIn(), MakeServerRecorded(), WatcherStandIn()
    monkeypatch.setattr(cloudrun_mode, "build_app", app)
    monkeypatch.setattr(cloudrun_mode, "make_server", control)
    monkeypatch.setattr(cloudrun_mode, "watch_and_deploy", watcher)
    stderr = StderrRecorded()
    senders: list[threading.Thread] = []

    def run(servers: Servers, signum: signal.Signals = signal.SIGTERM, reload: bool = False) -> ServeRun:
        seen: dict[str, Any] = {}
        before = set(threading.enumerate())

        def send_signal(front: CloudRunFrontStandIn) -> None:
            stderr.dashboard_flushed.wait(BOUND_S)
            seen["flushed"] = stderr.flushed
            if not front.left.is_set():  # else serve stopped (or failed) without it
                signal.pthread_kill(threading.main_thread().ident or 0, signum)

        def while_entered(front: CloudRunFrontStandIn) -> None:
            with urllib.request.urlopen(f"http://127.0.0.1:{front.given['fallback_port']}/", timeout=BOUND_S) as got:
                seen["own_app"] = got.read()
            seen["app_threads"] = [t for t in set(threading.enumerate()) - before if t.name == "harness-app"]
            senders.append(threading.Thread(target=send_signal, args=(front,), name="signal-sender", daemon=True))
            senders[-1].start()

        monkeypatch.setattr(CloudRunFrontStandIn, "while_entered", while_entered)
        args = {"host": EVERY_INTERFACE, "port": 8123, "idle_stop": 7.5, "reload": reload}
        captured, sys.stderr = sys.stderr, stderr  # here: pytest's capture puts its own back as the test begins
        try:
            status = cloudrun_mode.serve(argparse.Namespace(**args), servers)
        finally:
            sys.stderr = captured
            for sender in senders:
                sender.join(2 * BOUND_S)
        [front] = fronts
        [logs] = temp.iterdir()
        return ServeRun(status, stderr.getvalue().splitlines(), seen["flushed"], seen["own_app"],
                        seen["app_threads"], front, app, control, watcher, started, copies, logs,
                        tmp_path / "deploy-venv")  # fmt: skip

    yield run
    for server in control.servers:
        server.server_close()


def _banner(logs: Path) -> list[str]:
    return [
        "serving like Cloud Run on http://0.0.0.0:8123  (for fidelity, not speed: every function is its own service)",
        "  http://0.0.0.0:8123/random    -> random-fact (random_fact in functions/random_fact.py)",
        "  http://0.0.0.0:8123/today     -> today-fact (today_fact in functions/today_fact.py)",
        "  per function: up to 3 instances x 5 concurrent requests (the deploy's --max-instances and --concurrency),"
        " --timeout 45 s",
        "  instances start cold on demand, are frozen between requests and stopped after 7.5 s idle;"
        f" their logs: {logs}",
        "  dashboard: open http://0.0.0.0:8123/ in a browser",
    ]


SERVE_STOPS_WITHIN_S = 20  # a serve that no signal stops fails here, not after the suite's own limit


@pytest.mark.timeout(SERVE_STOPS_WITHIN_S)
@pytest.mark.parametrize("ours", [True, False], ids=["servers-it-started", "external-servers"])
def test_serve_runs_the_deployed_service_behind_the_front_until_sigterm(
    serve_like_cloud_run: Callable[..., ServeRun], capsys: pytest.CaptureFixture[str], ours: bool
) -> None:
    servers = _servers(ours)
    run = serve_like_cloud_run(servers)
    assert run.status == 0
    # The deploy's limits, with the idle stop chosen; the deploy's environment, the servers' winning.
    limits = Limits(max_instances=3, concurrency=5, request_timeout_s=45.0, idle_stop_s=7.5)
    env = {"WORKERS": "1", "THREADS": "8", "FACTS_CACHE_PREFIX": "facts-test:", "DATABASE_URL": "postgresql://u@h/db",
           "REDIS_URL": "redis://h"}  # fmt: skip
    [(setup, platform)] = run.app.given
    assert isinstance(platform, Platform)
    assert (platform.env, platform.limits, platform.logs, platform.venv, platform.revision) == (
        env, limits, run.logs, run.venv, 1,
    )  # fmt: skip
    assert run.logs.name.startswith("facts-cloud-run-") and run.logs.is_dir()
    assert platform.servers is (servers if ours else None)  # faults only on servers it started
    assert platform.faults_allowed() is ours
    assert setup == DashboardSetup(kind=servers.kind, description="the test's servers", bind_host=EVERY_INTERFACE,
                                   reload=False, mode="cloud-run")  # fmt: skip
    # The control server: the harness's own app on loopback, the front's fallback, served from a thread.
    [control] = run.control.given
    assert control == {"host": "127.0.0.1", "port": control["port"], "app": run.app.app, "threaded": True}
    assert isinstance(control["port"], int) and run.own_app_answer == HarnessAppStandIn.OWN_APP
    for thread in run.app_threads:
        thread.join(BOUND_S)
    assert [(t.daemon, t.is_alive()) for t in run.app_threads] == [(True, False)]  # ended by the shutdown
    # The front: both functions, the platform's hooks, the port asked for, the control server behind it.
    launch = run.front.given.pop("launch")
    assert run.front.given == {
        "routes": {"random": "random_fact", "today": "today_fact"}, "limits": limits, "event": platform.event,
        "seen": platform.request_seen, "port": 8123, "host": EVERY_INTERFACE, "fallback_port": control["port"],
    }  # fmt: skip
    assert platform.front is run.front and (run.front.entered, run.front.exited) == (True, True)
    launch("today", 0, 1)
    assert run.copies.into == [run.logs / "upload-00001"]
    assert run.started.given == [{
        "route": "today", "index": 0, "source_root": run.logs / "upload-00001", "venv": run.venv, "env": env,
        "logs": run.logs, "revision": 1, "extra_env": PROFILE_IMPORTS,
    }]  # fmt: skip
    # What it printed: the banner, flushed before it waits, and its last line once stopped.
    banner = _banner(run.logs)
    assert run.flushed_when_signalled == "".join(f"{line}\n" for line in banner)
    assert run.lines == [*banner, f"stopped; the instances' logs stay in {run.logs}"]
    assert capsys.readouterr().out == ""
    assert run.watcher.given == []  # no --reload


@pytest.mark.timeout(SERVE_STOPS_WITHIN_S)
@pytest.mark.parametrize("signum", SIGNALS, ids=lambda signum: signal.Signals(signum).name)
def test_serve_with_reload_watches_from_a_thread_of_its_own_until_the_signal_stops_both(
    serve_like_cloud_run: Callable[..., ServeRun], signum: signal.Signals
) -> None:
    run = serve_like_cloud_run(_servers(False), signum, reload=True)
    assert run.status == 0
    assert run.watcher.ended.wait(BOUND_S)
    [(setup, platform)] = run.app.given
    assert setup is not None and setup.reload is True
    [(watched, stop, thread, daemon)] = run.watcher.given
    assert (watched, thread, daemon) == (platform, "reload", True)
    assert run.watcher.stopped is True and stop.is_set()  # the stop the signal set
    assert run.lines[-1] == f"stopped; the instances' logs stay in {run.logs}"
