"""The harness's gunicorn configured in-process (devharness/server.py), without serving: the shape it
serves with, the options functions-framework's own server uses, and what --reload watches."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from devharness import server
from devharness.server import HarnessServer, harness_shape
from shared.config import THREADS_PER_WORKER, ServerShape


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WORKERS", "THREADS", "FACTS_POOL_SIZE", "CLOUD_RUN_TIMEOUT_SECONDS", "GUNICORN_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)  # put back after the test, the server's THREADS too


def test_the_harness_serves_one_worker_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    assert harness_shape() == ServerShape(1, THREADS_PER_WORKER, THREADS_PER_WORKER)
    assert harness_shape(3) == ServerShape(3, THREADS_PER_WORKER, THREADS_PER_WORKER)
    monkeypatch.setenv("WORKERS", "2")
    monkeypatch.setenv("THREADS", "6")
    assert harness_shape() == ServerShape(2, 6, 6)
    assert harness_shape(5).workers == 5


def test_gunicorn_is_configured_as_functions_framework_s_server(monkeypatch: pytest.MonkeyPatch) -> None:
    app = object()
    configured = HarnessServer(lambda: app, "127.0.0.1:8123", shape=ServerShape(2, 3, 3))
    cfg = configured.cfg
    assert (cfg.bind, cfg.workers, cfg.threads, cfg.worker_class_str) == (["127.0.0.1:8123"], 2, 3, "gthread")
    assert (cfg.timeout, cfg.graceful_timeout, cfg.loglevel) == (60, 5, "warning")
    assert (cfg.limit_request_line, cfg.accesslog, cfg.reload) == (0, None, False)
    assert cfg.post_worker_init is server._remember_worker
    assert configured.load() is app
    assert os.environ["THREADS"] == "3"  # the workers' pools size themselves by it
    monkeypatch.delenv("THREADS")
    monkeypatch.setenv("CLOUD_RUN_TIMEOUT_SECONDS", "300")
    monkeypatch.setenv("GUNICORN_LOG_LEVEL", "debug")
    deployed_like = HarnessServer(lambda: app, "127.0.0.1:1", workers=4).cfg
    assert (deployed_like.timeout, deployed_like.loglevel, deployed_like.workers) == (300, "debug", 4)
    assert deployed_like.threads == THREADS_PER_WORKER  # the default shape


def test_reload_watches_functions_and_shared_in_one_worker() -> None:
    cfg = HarnessServer(lambda: None, "127.0.0.1:1", reload=True, shape=ServerShape(3, 2, 2)).cfg
    assert cfg.reload is True and cfg.workers == 1
    watched = {path.replace(str(server.ROOT) + "/", "") for path in cfg.reload_extra_files}
    assert {
        "functions/random_fact.py",
        "functions/routes.toml",
        "shared/store.py",
        "shared/fast/__init__.py",
    } <= watched
    assert all(path.startswith(("functions/", "shared/")) and path.endswith((".py", ".toml")) for path in watched)


def test_a_worker_is_stopping_once_gunicorn_marks_it_not_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "_worker", None)
    assert server.worker_stopping() is False  # not under gunicorn
    worker = SimpleNamespace(alive=True)
    server._remember_worker(worker)
    assert server.worker_stopping() is False
    worker.alive = False
    assert server.worker_stopping() is True
