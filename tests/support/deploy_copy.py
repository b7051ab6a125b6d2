"""What a deployment uploads and installs: the upload set `.gcloudignore` describes, in a
virtualenv that installs exactly the lock requirements.txt; and the deploy script's dry run.

The upload set is computed from `.gcloudignore` (with its `#!include:.gitignore`) by a
gitignore-pattern library, as gcloud reads it, never listed by hand. The virtualenv is built once
per lock and shared by workers and runs (a file lock keeps two workers from building it at once);
a build cut short is rebuilt, never half-used.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pathspec
import pytest

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


# --- the deploy script's dry run, read back as a shell would, and gcloud's own upload lists ---

SCRIPT = ROOT / "deploy" / "cloud-functions.sh"
# The dry run stages the uploads with `gcloud meta list-files-for-upload` (local), so gcloud's
# folder is on PATH. CLOUDSDK_CONFIG is an empty folder (gcloud_env), so any call that would reach
# Google fails for want of an account, and the dry run with it.
_GCLOUD = shutil.which("gcloud")
_PATH = f"{Path(_GCLOUD).parent}:/usr/bin:/bin" if _GCLOUD else "/usr/bin:/bin"
BASE_ENV = {"PROJECT": "demo", "REGION": "europe-west1", "PATH": _PATH}


def gcloud_env(config_dir: Path) -> dict[str, str]:
    """gcloud with an empty configuration of its own: no account, no project, no prompts.

    Without the gcloud CLI the deploy's tests are skipped, saying so, except in CI (CI=true), where
    they must run: .ci/run and the GitHub workflow have it."""
    if _GCLOUD is None:
        reason = "no gcloud CLI (https://cloud.google.com/sdk/docs/install); the deploy's tests need it"

        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    config_dir.mkdir(parents=True, exist_ok=True)
    return {"PATH": _PATH, "HOME": str(config_dir), "CLOUDSDK_CONFIG": str(config_dir),
            "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"}  # fmt: skip


def gcloud_upload(source: Path, config_dir: Path) -> list[str]:
    """What `gcloud ... --source=source` uploads, as gcloud itself lists it."""
    listed = subprocess.run(["gcloud", "meta", "list-files-for-upload", str(source)], capture_output=True,
                            text=True, env=gcloud_env(config_dir), timeout=60, check=True)  # fmt: skip
    return sorted(line for line in listed.stdout.splitlines() if line)


@dataclass(frozen=True)
class DryRun:
    commands: list[list[str]]
    comments: list[str]
    stage: Path

    def named(self, *words: str) -> list[list[str]]:
        return [argv for argv in self.commands if argv[1 : 1 + len(words)] == list(words)]


def dry_run(workdir: Path, **env: str) -> DryRun:
    """The dry run's gcloud commands (shlex, as a shell reads them), its comments, and the folder
    it staged the uploads in (under workdir)."""
    stage = workdir / "stage"
    full_env = {**gcloud_env(workdir / "gcloud"), **BASE_ENV, "STAGE_DIR": str(stage), **env}
    result = subprocess.run(["bash", str(SCRIPT), "--dry-run"], capture_output=True, text=True, env=full_env,
                            timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    commands = [shlex.split(line) for line in lines if not line.startswith("#")]
    assert all(argv[0] == "gcloud" for argv in commands), commands
    return DryRun(commands, [line for line in lines if line.startswith("#")], stage)


def flags(argv: list[str]) -> dict[str, str]:
    """--name=value flags of a command line (a flag without a value is not in it)."""
    return dict(arg[2:].split("=", 1) for arg in argv if arg.startswith("--") and "=" in arg)
