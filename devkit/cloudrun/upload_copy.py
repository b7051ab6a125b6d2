"""What a deployment uploads and installs: the upload set `.gcloudignore` describes, in a
virtualenv that installs exactly the lock requirements.txt. Used by the tests and by the
benchmark's scale-out rehearsal, which start the functions from this copy as Cloud Run would.

The upload set is computed from `.gcloudignore` (with its `#!include:.gitignore`) by a
gitignore-pattern library, as gcloud reads it, never listed by hand. The virtualenv is built once
per lock and shared by workers and runs (a file lock keeps two workers from building it at once);
a build cut short is rebuilt, never half-used.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pathspec

ROOT = Path(__file__).resolve().parents[2]
_INCLUDE = "#!include:"


def gcloudignore_lines(root: Path = ROOT) -> list[str]:
    """`.gcloudignore` with each `#!include:FILE` line replaced by that file's lines, in place."""
    lines = []
    for line in (root / ".gcloudignore").read_text().splitlines():
        if line.startswith(_INCLUDE):
            lines += (root / line[len(_INCLUDE) :].strip()).read_text().splitlines()
        else:
            lines.append(line)
    return lines


def upload_set(root: Path = ROOT) -> list[str]:
    """The files (relative POSIX paths) that `gcloud ... --source=root` uploads."""
    spec = pathspec.GitIgnoreSpec.from_lines(gcloudignore_lines(root))
    found = []
    for folder, dirs, files in os.walk(root):
        relative = Path(folder).relative_to(root)
        # An ignored folder is not entered (its contents cannot be brought back), as gcloud does.
        dirs[:] = sorted(d for d in dirs if not spec.match_file(f"{(relative / d).as_posix()}/"))
        found += [(relative / f).as_posix() for f in files if not spec.match_file((relative / f).as_posix())]
    return sorted(found)


def deploy_venv() -> Path:
    """A virtualenv holding exactly the lock requirements.txt (hash-checked), built once per lock."""
    requirements = (ROOT / "requirements.txt").read_bytes()
    tag = hashlib.sha256(requirements + sys.version.encode()).hexdigest()[:12]
    venv = Path(tempfile.gettempdir()) / f"facts-deploy-venv-{tag}"
    done = venv / ".complete"
    with open(str(venv) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
            installed = subprocess.run(
                [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                 "--require-hashes", "--no-deps", "-r", str(ROOT / "requirements.txt")],
                capture_output=True, text=True, timeout=600,
            )  # fmt: skip
            if installed.returncode != 0:
                raise RuntimeError(f"installing the lock requirements.txt failed:\n{installed.stderr[-4000:]}")
            done.touch()
    return venv


def deployed_copy(into: Path, root: Path = ROOT) -> Path:
    """Copy exactly the upload set into `into` (made if missing)."""
    for name in upload_set(root):
        target = into / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target)
    return into
