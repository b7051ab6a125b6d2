"""What deploy/cloud-functions.sh gives each function, read from its dry run (never copied): the
environment, and the service's limits (--max-instances, --concurrency, --timeout)."""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from devkit.cloudrun.upload_copy import ROOT


@dataclass(frozen=True)
class DeployedService:
    env: dict[str, str]
    max_instances: int
    concurrency: int
    timeout_s: float


def _dry_run() -> str:
    with tempfile.TemporaryDirectory(prefix="facts-dry-run-") as scratch:
        env = {
            "PROJECT": "rehearsal",
            "REGION": "local",
            "CONNECTOR": "none",  # the connector form's one required setting; ignored by the others
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "CLOUDSDK_CONFIG": str(Path(scratch) / "gcloud"),  # gcloud (staging the uploads) asks nothing
            "STAGE_DIR": str(Path(scratch) / "stage"),
        }
        return subprocess.run(
            ["bash", str(ROOT / "deploy" / "cloud-functions.sh"), "--dry-run"],
            capture_output=True, text=True, env=env, timeout=120, check=True,
        ).stdout  # fmt: skip


def flags(argv: list[str]) -> dict[str, str]:
    """--name=value flags of a command line (a flag without a value is not in it)."""
    return dict(arg[2:].split("=", 1) for arg in argv if arg.startswith("--") and "=" in arg)


def deployed_service() -> DeployedService:
    """The first function's deploy line of the dry run (the functions share their settings)."""
    for line in _dry_run().splitlines():
        # A function's deploy line (gcloud functions deploy or gcloud run deploy --function): the
        # one with --max-instances, which the migration job's line has not.
        if not (line.startswith("gcloud ") and "--max-instances=" in line):
            continue
        deploy_flags = flags(shlex.split(line))
        if "set-env-vars" not in deploy_flags:
            break
        env = dict(pair.split("=", 1) for pair in deploy_flags["set-env-vars"].split(","))
        return DeployedService(
            env=env,
            max_instances=int(deploy_flags["max-instances"]),
            concurrency=int(deploy_flags.get("concurrency", "80")),  # Cloud Run's default
            timeout_s=float(deploy_flags.get("timeout", "300s").rstrip("s")),  # Cloud Run's default
        )
    raise RuntimeError("deploy/cloud-functions.sh --dry-run printed no function deploy with --set-env-vars")


def deployed_environment() -> dict[str, str]:
    """The environment variables deploy/cloud-functions.sh gives the functions (from its dry run)."""
    return deployed_service().env
