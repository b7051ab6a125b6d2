"""`python harness.py serve` as a real process on a free loopback port."""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping

from devservices.ports import free_port
from devservices.processes import spawn, terminate
from devservices.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def harness_server(env: Mapping[str, str], *args: str) -> Iterator[tuple[str, Path]]:
    """Yields the base URL and the server's log file; stops the server (SIGTERM) on exit."""
    port = free_port()
    log_path = Path(tempfile.mkstemp(prefix="facts-harness-", suffix=".log")[1])
    argv = [sys.executable, str(ROOT / "harness.py"), "serve", "--port", str(port), "--services", "external", *args]
    with open(log_path, "ab") as log:
        process = spawn(argv, log, None, signal.SIGTERM, env={**os.environ, **env}, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"

    def healthy() -> None:
        if process.poll() is not None:
            raise RuntimeError(f"harness exited with {process.returncode}")
        with urllib.request.urlopen(base + "/healthz", timeout=2) as response:
            assert response.status == 200

    try:
        wait_until(healthy, 60, "harness", lambda: log_path.read_text(errors="replace")[-3000:])
        yield base, log_path
    finally:
        terminate(process, signal.SIGTERM, grace_s=15)
        log_path.unlink(missing_ok=True)
