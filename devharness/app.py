"""The app one gunicorn worker serves: every function behind the dispatcher, /healthz and the dashboard."""

from __future__ import annotations

from typing import Any

from shared import instance, logs

from .dashboard import Dashboard, DashboardSetup
from .dispatcher import Dispatcher
from .livelog import RequestLog
from .platform_api import PlatformState
from .routes import discover
from .server import worker_stopping


def health() -> tuple[int, dict[str, Any]]:
    """/healthz: 200 while Postgres answers ("degraded" without Redis, which the functions can do without), else 503."""
    checks: dict[str, str] = {}
    try:
        current = instance.state(migrate=False)
    except Exception as exc:  # a configuration error: say what, never the URL
        return 503, {"status": "down", "error": str(exc)}
    try:
        checks["postgres"] = "ok" if current.store.ping() else "down"
    except Exception:
        checks["postgres"] = "down"
    checks["redis"] = "ok" if current.cache.ping() else "down"
    healthy = checks["postgres"] == "ok"
    status = "ok" if healthy and checks["redis"] == "ok" else ("degraded" if healthy else "down")
    return (200 if healthy else 503), {"status": status, **checks}


def build_app(dashboard: DashboardSetup | None = None, platform: PlatformState | None = None) -> Dispatcher:
    """The dispatcher of one gunicorn worker; with `dashboard`, the dashboard and this worker's live log too.

    Called in each worker after the fork, so each worker's RequestLog holds the lines it answered.
    `platform`: serve --like cloud-run's state, for the dashboard's Cloud Run panel."""
    logs.configure()
    if dashboard is None:
        return Dispatcher(discover(), health)
    requests = RequestLog().attach()
    return Dispatcher(
        discover(),
        health,
        lambda functions: Dashboard(dashboard, functions, health, worker_stopping, requests, platform),
    )
