"""`python harness.py serve` as a real process on a free loopback port."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from devkit.servers.ports import start_on_free_port
from devkit.servers.processes import spawn, terminate
from devkit.servers.waiting import ServerExited, wait_until

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ROOT / "functions"
# What `harness.py serve` needs from the repository, for a copy a test may break.
HARNESS_FILES = ("functions", "shared", "devharness", "devkit", "harness.py", "openapi.json")


def project_copy(into: Path) -> Path:
    """A copy of the harness and the functions that a test may edit (say, to break a function)."""
    for name in HARNESS_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, into / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.exists():
            shutil.copy2(source, into / name)
    return into


def _start_on(
    port: int, env: Mapping[str, str], args: tuple[str, ...], log_path: Path, root: Path
) -> tuple[subprocess.Popen[bytes], str]:
    argv = [sys.executable, str(root / "harness.py"), "serve", "--port", str(port), "--servers", "external", *args]
    with open(log_path, "ab") as log:
        process = spawn(argv, log, None, signal.SIGTERM, env={**os.environ, **env}, cwd=root)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _healthy(process, base), 60, "harness", lambda: log_path.read_text(errors="replace")[-3000:])
    except BaseException:
        terminate(process, signal.SIGTERM)
        raise
    return process, base


@contextmanager
def harness_server(env: Mapping[str, str], *args: str, root: Path = ROOT) -> Iterator[tuple[str, Path]]:
    """Yields the base URL and the server's log file; stops the server (SIGTERM) on exit.

    `root`: serve another copy of the project (see project_copy)."""
    log_path = Path(tempfile.mkstemp(prefix="facts-harness-", suffix=".log")[1])
    process = None
    try:
        process, base = start_on_free_port(lambda port: _start_on(port, env, args, log_path, root))
        yield base, log_path
    finally:
        terminate(process, signal.SIGTERM, grace_s=15)
        log_path.unlink(missing_ok=True)


def _healthy(process: subprocess.Popen[bytes], base: str) -> None:
    if process.poll() is not None:
        raise ServerExited(f"harness exited with {process.returncode}")
    with urllib.request.urlopen(base + "/healthz", timeout=2) as response:
        assert response.status == 200


class LogSince:
    """What a harness has written to its log file since this object was made."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.start = path.stat().st_size

    def text(self) -> str:
        with open(self.path, "rb") as log:
            log.seek(self.start)
            return log.read().decode("utf-8", "replace")

    def wait_for(self, needle: str, within_s: float = 10.0) -> str:
        """The text once it holds `needle` (lines reach the file within the log flush interval)."""

        def holds_needle() -> str:
            text = self.text()
            assert needle in text
            return text

        return wait_until(holds_needle, within_s, f"{needle!r} in the harness log", lambda: self.text()[-3000:])
