"""Python laid out as Google's Python buildpack lays it out for 3.12, here on this machine: the
packages of requirements.txt alone installed with `pip install --user` into a layer
(PYTHONUSERBASE), no virtualenv, and a PATH whose only interpreters are `python3` and
`python3.12` (GoogleCloudPlatform/buildpacks pkg/python/python.go InstallRequirements: `--user`
for every runtime but python37/python38; the runtime layer's bin names no bare `python`).

Built once per lock and interpreter, shared by xdist workers under a file lock; a build cut short
is rebuilt, never half-used.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from .deploy_copy import ROOT

MINOR = "3.12"


@dataclass(frozen=True)
class BuildpackPython:
    bin_dir: Path  # python3 and python3.12, nothing else
    user_base: Path  # PYTHONUSERBASE: the pip layer

    def environ(self) -> dict[str, str]:
        return {"PATH": str(self.bin_dir), "PYTHONUSERBASE": str(self.user_base)}


def python_312() -> Path:
    """The deployed Python's minor version on this machine: pyenv's, else ci/find-python.sh's."""
    found = None
    if shutil.which("pyenv"):
        found = subprocess.run(["pyenv", "root"], capture_output=True, text=True, timeout=30)
    if found is not None and found.returncode == 0:
        for candidate in sorted(Path(found.stdout.strip(), "versions").glob(f"{MINOR}.*/bin/python{MINOR}")):
            return candidate
    located = subprocess.run(["bash", str(ROOT / "ci" / "find-python.sh"), MINOR], capture_output=True, text=True,
                             timeout=60)  # fmt: skip
    if located.returncode == 0:
        return Path(located.stdout.strip())
    reason = f"no Python {MINOR} here (pyenv, or ci/find-python.sh): the buildpack layout needs the deployed Python"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def buildpack_python() -> BuildpackPython:
    python = python_312()
    requirements = (ROOT / "requirements.txt").read_bytes()
    tag = hashlib.sha256(requirements + str(python).encode()).hexdigest()[:12]
    root = Path(tempfile.gettempdir()) / f"facts-buildpack-python-{tag}"
    layout = BuildpackPython(root / "bin", root / "layer")
    with open(str(root) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / ".complete").exists():
            shutil.rmtree(root, ignore_errors=True)
            layout.bin_dir.mkdir(parents=True)
            for name in ("python3", f"python{MINOR}"):
                (layout.bin_dir / name).symlink_to(python)
            installed = subprocess.run(
                [str(python), "-m", "pip", "install", "--quiet", "--user", "--require-hashes", "--no-deps",
                 "--no-warn-script-location", "-r", str(ROOT / "requirements.txt")],
                capture_output=True, text=True, timeout=600,
                env={**os.environ, "PYTHONUSERBASE": str(layout.user_base)},
            )  # fmt: skip
            if installed.returncode != 0:
                raise RuntimeError(f"pip install --user of requirements.txt failed:\n{installed.stderr[-4000:]}")
            (root / ".complete").touch()
    return layout
