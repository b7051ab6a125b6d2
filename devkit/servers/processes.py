"""Child server processes that never outlive their parent, run unprivileged when we are root."""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import signal
import stat
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

SERVER_USER = "facts-servers"
_PR_SET_PDEATHSIG = 1


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (owned by anyone: EPERM means it does)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def server_user() -> str | None:
    """The unprivileged user to run servers as when we are root (Postgres refuses root), made if missing."""
    if not running_as_root():
        return None
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVER_USER],
            check=True,
            capture_output=True,
        )
    return SERVER_USER


def hand_over(path: Path, user: str | None) -> None:
    """Give `path` (made if missing) to `user`, and let that user traverse every parent folder.

    Only the execute (traverse) bit is added to parents, never read: other users still cannot list them.
    """
    path.mkdir(parents=True, exist_ok=True)
    if user is None:
        return
    entry = pwd.getpwnam(user)
    for folder in [path, *path.rglob("*")]:
        os.chown(folder, entry.pw_uid, entry.pw_gid, follow_symlinks=False)
    grant_traverse(path.parent)


def grant_traverse(path: Path) -> None:
    for folder in [path, *path.resolve().parents]:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(mode | stat.S_IXOTH)


def as_user(user: str | None) -> dict[str, Any]:
    """Popen arguments that drop to `user` entirely: uid, gid and supplementary groups.

    `user=` alone keeps root's groups, and root's group then decides what the server may read.
    """
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _die_with_parent(sig: int) -> None:
    # Linux only; elsewhere the stop() in a finally block is what cleans up.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, sig)
    except (OSError, AttributeError):
        pass


def spawn(
    argv: Sequence[str], log: IO[bytes], user: str | None, parent_death_signal: int, **popen: Any
) -> subprocess.Popen[bytes]:
    """Start a server in its own session (Ctrl-C in a terminal reaches us, not it) that dies with us."""
    return subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=lambda: _die_with_parent(parent_death_signal),
        **as_user(user),
        **popen,
    )


def terminate(
    process: subprocess.Popen[Any] | None,
    sig: int = signal.SIGTERM,
    grace_s: float = 10.0,
    whole_group: bool = False,
) -> None:
    """Stop `process`: `sig` (its own clean shutdown), up to `grace_s` to exit, then SIGKILL.

    `whole_group`: then SIGKILL whatever is left in its process group too (spawn gives each its own),
    such as a gunicorn worker that outlived its arbiter."""
    if process is None:
        return
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if whole_group:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)  # the group id is the leader's pid


def descendants(pid: int) -> list[int]:
    """The processes below `pid` (Linux /proc), children before grandchildren."""
    children: dict[int, list[int]] = {}
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended while we looked
        children.setdefault(int(fields[1]), []).append(int(stat_file.parent.name))
    found, queue = [], list(children.get(pid, []))
    while queue:
        child = queue.pop(0)
        found.append(child)
        queue.extend(children.get(child, []))
    return found
