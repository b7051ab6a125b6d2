"""Making a PostgreSQL data folder: initdb, or a copy of a cached template (tests start faster).

Copying a fresh cluster is much quicker than initdb. The template is
made once per machine and binaries (under a file lock, so parallel workers wait for one build)
with a password nobody knows: a clone gets its own through the local socket once started.
"""

from __future__ import annotations

import fcntl
import hashlib
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

from devkit.servers.processes import as_user, hand_over
from devkit.servers.protocol import ServerStartError


def initdb(bin_dir: Path, data: Path, user: str | None, password: str, durable: bool) -> None:
    data.parent.mkdir(parents=True, exist_ok=True)
    pwfile = data.parent / f".pwfile-{secrets.token_hex(4)}"
    pwfile.write_text(password)
    hand_over(data.parent, user)
    try:
        argv = [
            str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--pwfile", str(pwfile),
            "--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8",
        ]  # fmt: skip
        if not durable:
            argv.append("--no-sync")
        subprocess.run(argv, check=True, capture_output=True, timeout=120, **as_user(user))
    except subprocess.CalledProcessError as exc:
        raise ServerStartError(f"initdb failed: {exc.stderr.decode(errors='replace')[-2000:]}") from None
    finally:
        pwfile.unlink(missing_ok=True)


def _template(bin_dir: Path, user: str | None) -> Path:
    tag = hashlib.sha256(f"{bin_dir.resolve()}:{(bin_dir / 'postgres').stat().st_mtime}:{user}".encode()).hexdigest()
    template = Path(tempfile.gettempdir()) / f"facts-pg-template-{tag[:12]}"
    with open(f"{template}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (template / "data" / "PG_VERSION").exists():
            shutil.rmtree(template, ignore_errors=True)  # a build cut short
            initdb(bin_dir, template / "data", user, secrets.token_hex(16), durable=False)
    return template / "data"


def clone_template(bin_dir: Path, data: Path, user: str | None) -> None:
    """A fresh cluster in `data`, copied from the cached template. Its password must be set after start."""
    shutil.copytree(_template(bin_dir, user), data, symlinks=True)
    hand_over(data.parent, user)
