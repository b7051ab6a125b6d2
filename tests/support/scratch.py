"""Per-worker scratch folders under the system temp dir, removed afterwards.

Not pytest's tmp_path: that lives in a 0700 folder which the unprivileged server user (when
tests run as root) could not enter. A run killed hard leaves its folder; the next run removes it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devkit.servers.processes import pid_alive

PREFIX = "facts-test-"


def _owner_alive(folder: Path) -> bool:
    try:
        pid = int(folder.name[len(PREFIX) :].split("-", 1)[0])
    except ValueError:
        return False
    return pid_alive(pid)


def remove_stale() -> None:
    for folder in Path(tempfile.gettempdir()).glob(PREFIX + "*"):
        if folder.is_dir() and not _owner_alive(folder):
            shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def scratch_dir(name: str) -> Iterator[Path]:
    remove_stale()
    folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-{name}-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
