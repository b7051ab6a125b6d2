"""gunicorn, configured like functions-framework's production server, serving the dispatcher."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gunicorn.app.base

ROOT = Path(__file__).resolve().parents[1]


def default_workers() -> int:
    # Measured on 2 cores (bench/run.py): one worker per core beats one worker with more threads.
    return int(os.environ.get("WORKERS", os.cpu_count() or 1))


def default_threads() -> int:
    return int(os.environ.get("THREADS", 4))


_worker: Any = None


def _remember_worker(worker: Any) -> None:
    global _worker
    _worker = worker


def worker_stopping() -> bool:
    """Whether this gunicorn worker is shutting down (stop, reload): long answers should end now."""
    return _worker is not None and not _worker.alive


class HarnessServer(gunicorn.app.base.BaseApplication):
    def __init__(self, app_factory: Callable[[], Any], bind: str, reload: bool = False, **options: Any) -> None:
        self.app_factory = app_factory
        self.options: dict[str, Any] = {
            "bind": bind,
            "workers": default_workers(),
            "threads": default_threads(),
            "worker_class": "gthread",
            "timeout": int(os.environ.get("CLOUD_RUN_TIMEOUT_SECONDS", 0)) or 60,
            "graceful_timeout": 5,
            "loglevel": os.environ.get("GUNICORN_LOG_LEVEL", "warning"),
            # As functions-framework does: long request lines reach the application.
            "limit_request_line": 0,
            "accesslog": None,
            "post_worker_init": _remember_worker,
        }
        if reload:
            watched = [str(p) for p in (ROOT / "functions").glob("*") if p.suffix in (".py", ".toml")]
            watched += [str(p) for p in (ROOT / "shared").rglob("*.py")]
            self.options.update(reload=True, reload_extra_files=watched, workers=1)
        self.options.update(options)
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self.app_factory()
