"""The deploy script's dry run, read back as a shell would, and gcloud's own upload lists.

What a deployment uploads and installs (the upload set, its virtualenv) is devkit.cloudrun.upload_copy's;
its names are here too, for the deploy's tests that use both.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from devkit.cloudrun.deployed import flags
from devkit.cloudrun.upload_copy import ROOT, deploy_venv, deployed_copy, upload_set

__all__ = ["BASE_ENV", "ROOT", "SCRIPT", "DryRun", "deploy_venv", "deployed_copy", "dry_run", "flags", "gcloud_env",
           "gcloud_upload", "upload_set"]  # fmt: skip

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
