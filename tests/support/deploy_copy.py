"""A copy of what Cloud Functions deploys, in a virtualenv holding only requirements.txt.

The virtualenv is built once per requirements file and shared by workers and runs (a file lock
keeps two workers from building it at once); a build cut short is rebuilt, never half-used.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOYED = ("functions", "shared", "requirements.txt")


def deploy_venv() -> Path:
    requirements = (ROOT / "requirements.txt").read_bytes()
    tag = hashlib.sha256(requirements + sys.version.encode()).hexdigest()[:12]
    venv = Path(tempfile.gettempdir()) / f"facts-deploy-venv-{tag}"
    done = venv / ".complete"
    with open(str(venv) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
            subprocess.run(
                [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                 "-r", str(ROOT / "requirements.txt")],
                check=True, timeout=600,
            )  # fmt: skip
            done.touch()
    return venv


def deployed_copy(into: Path) -> Path:
    """Copy exactly what a deployment uploads (functions/, shared/, requirements.txt)."""
    for name in DEPLOYED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, into / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, into / name)
    return into
