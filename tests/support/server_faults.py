"""Stopping the worker's own Postgres or Redis in a test, and starting it again whatever happens."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest


def require_control(servers: Any, which: str) -> Any:
    """The server `which` ("postgres", "redis") if this run started it; skip (saying why) if not."""
    server = getattr(servers, which)
    if server is None:
        pytest.skip(f"{servers.kind} servers are not ours to stop; run with --servers=embedded or containers")
    return server


@contextmanager
def stopped(server: Any) -> Iterator[None]:
    server.stop()
    try:
        yield
    finally:
        server.start()
