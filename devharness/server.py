"""gunicorn, configured like functions-framework's production server, serving the dispatcher."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import gunicorn.app.base

from shared.config import ServerShape, server_shape

ROOT = Path(__file__).resolve().parents[1]


def harness_shape(workers: int | None = None) -> ServerShape:
    """The harness's shape: `workers` (serve --workers), else WORKERS, else ONE worker, so that the
    dashboard's live log (one process's ring, devharness/livelog.py) shows every request; threads
    and the pool as everywhere (shared.config.server_shape)."""
    shape = server_shape(os.environ, cpus=1)  # the CPU count is WORKERS's default: here, one
    return shape if workers is None else replace(shape, workers=workers)


_worker: Any = None


def _remember_worker(worker: Any) -> None:
    global _worker
    _worker = worker


def worker_stopping() -> bool:
    """Whether this gunicorn worker is shutting down (stop, reload): long answers should end now."""
    return _worker is not None and not _worker.alive


class HarnessServer(gunicorn.app.base.BaseApplication):
    def __init__(
        self,
        app_factory: Callable[[], Any],
        bind: str,
        reload: bool = False,
        shape: ServerShape | None = None,
        **options: Any,
    ) -> None:
        self.app_factory = app_factory
        self.shape = shape or harness_shape()
        # The workers' pools size themselves by THREADS (shared.config.pool_size): say what they serve with.
        os.environ["THREADS"] = str(self.shape.threads)
        self.options: dict[str, Any] = {
            "bind": bind,
            "workers": self.shape.workers,
            "threads": self.shape.threads,
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
