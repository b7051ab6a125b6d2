"""The three builds of the deploy (the migration job and both functions) against the rules of
Google's Python buildpacks, each rule encoded here with the file it comes from.

Source: GoogleCloudPlatform/buildpacks at commit 21f28de8c499445ef1098016bfce35b16415e4b1
(BUILDPACKS below). Each upload is listed by gcloud itself from the folder the dry run staged, the
build variables come from the dry run's own flags, and the job's entrypoint is then run for real.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from devkit.cloudrun.scratch_postgres import connect_url
from shared import schema

from .support.deploy_copy import deploy_venv, dry_run, flags, gcloud_upload

# In the slow lane: the dry run's staged uploads listed by the gcloud CLI, the job run from one.
pytestmark = pytest.mark.slow

BUILDPACKS = "GoogleCloudPlatform/buildpacks@21f28de8c499445ef1098016bfce35b16415e4b1"


@dataclass(frozen=True)
class Build:
    """One source build: its upload folder, the files gcloud uploads from it, its build variables."""

    name: str
    argv: list[str]
    folder: Path
    files: list[str]
    build_env: dict[str, str]


def procfile_processes(text: str) -> dict[str, str]:
    """pkg/entrypoint/procfile.go Parse: `name: command` lines; the first of a name wins."""
    processes: dict[str, str] = {}
    for name, command in re.findall(r"(?m)^(\w+):\s*(.+)$", text):
        processes.setdefault(name, command.strip())
    return processes


def default_process(build: Build) -> str | None:
    """cmd/config/entrypoint/lib/lib.go BuildFn (a build off Cloud Functions' own platform):
    GOOGLE_ENTRYPOINT, else the Procfile's `web` process, becomes the default process."""
    if build.build_env.get("GOOGLE_ENTRYPOINT"):
        return build.build_env["GOOGLE_ENTRYPOINT"]
    if "Procfile" in build.files:
        return procfile_processes((build.folder / "Procfile").read_text()).get("web")
    return None


def is_function_build(build: Build) -> bool:
    """cmd/python/functions_framework/lib/lib.go DetectFn: only with GOOGLE_FUNCTION_TARGET, which
    `gcloud run deploy --function=TARGET` sets."""
    return "GOOGLE_FUNCTION_TARGET" in build.build_env


def python_constraint(build: Build) -> str | None:
    """pkg/python/python.go RuntimeVersion: GOOGLE_PYTHON_VERSION, then GOOGLE_RUNTIME_VERSION,
    then `.python-version`; None means the newest Python of the builder's stack (3.13 on
    Ubuntu 22.04, 3.14 on 24.04: latestPythonVersionPerStack)."""
    for variable in ("GOOGLE_PYTHON_VERSION", "GOOGLE_RUNTIME_VERSION"):
        if build.build_env.get(variable):
            return build.build_env[variable]
    if ".python-version" in build.files:
        return (build.folder / ".python-version").read_text().strip()
    return None


def pins_runtime(constraint: str | None, runtime: str) -> bool:
    """The constraint picks the newest patch of the runtime's Python: the buildpack resolves it
    with github.com/Masterminds/semver v1.5.0 (go.mod), where `3.12` means exactly 3.12.0
    (constraints.go parseConstraint: only an `x`/`*` patch is a wildcard), so `3.12.*`, the form
    latestPythonVersionPerStack itself uses."""
    minor = re.fullmatch(r"python3(\d+)", runtime)
    return constraint is not None and minor is not None and constraint == f"3.{minor.group(1)}.*"


def builds(tmp_path: Path, **env: str) -> list[Build]:
    run = dry_run(tmp_path, **env)
    found = []
    named = [(argv[4], argv) for argv in run.named("run", "jobs", "deploy")]
    named += [(argv[3], argv) for argv in run.named("run", "deploy")]
    for name, argv in named:
        folder = Path(flags(argv)["source"])
        build_env = dict(pair.split("=", 1) for pair in flags(argv).get("set-build-env-vars", "").split(",") if pair)
        if "function" in flags(argv):
            build_env["GOOGLE_FUNCTION_TARGET"] = flags(argv)["function"]
        found.append(Build(name, argv, folder, gcloud_upload(folder, tmp_path / "gcloud"), build_env))
    return found


@pytest.mark.parametrize("form", [{}, {"CLOUDSQL_INSTANCE": "demo:europe-west1:facts"}], ids=["ip", "socket"])
def test_every_build_of_the_dry_run_follows_the_buildpack_rules(tmp_path, form):
    found = builds(tmp_path, **form)
    assert sorted(b.name for b in found) == ["facts-migrate", "random-fact", "today-fact"]
    runtime = flags(next(b for b in found if b.name == "random-fact").argv)["base-image"]
    assert runtime == "python312"  # the functions' runtime, which every build must match
    for build in found:
        # Every build, the same way: Python pinned to the functions' runtime.
        assert pins_runtime(python_constraint(build), runtime), (build.name, python_constraint(build))
        if is_function_build(build):
            # functions_framework validateSource: GOOGLE_FUNCTION_SOURCE must name an uploaded file.
            assert build.build_env["GOOGLE_FUNCTION_SOURCE"] in build.files, build.name
            # config.entrypoint runs after functions-framework in the function order groups
            # (builders/gcp/base/google.22.builder.toml) and would make a Procfile's web process,
            # or GOOGLE_ENTRYPOINT, the default process in place of the function.
            assert default_process(build) is None, build.name
        else:
            # The application order group's google.config.entrypoint is not optional (the same
            # builder.toml); python/missing_entrypoint fails a build without one.
            assert default_process(build) == "python -m shared.schema", build.name
            # Keep the launcher: `--command` would replace the image's entrypoint (the CNB
            # launcher), and with it the buildpack's Python and packages on PATH.
            assert not any(arg.startswith(("--command", "--args")) for arg in build.argv), build.argv


def test_the_rules_tell_a_working_upload_from_a_broken_one(tmp_path):
    (tmp_path / "Procfile").write_text("worker: python -m shared.schema\nweb: python -m shared.schema\nweb: other\n")
    (tmp_path / ".python-version").write_text("3.12\n")
    app = Build("job", [], tmp_path, ["Procfile", ".python-version"], {})
    assert default_process(app) == "python -m shared.schema"  # web, and the first one
    assert not pins_runtime(python_constraint(app), "python312")  # "3.12" is exactly 3.12.0
    assert pins_runtime("3.12.*", "python312") and not pins_runtime("3.13.*", "python312")
    assert python_constraint(Build("x", [], tmp_path, [], {})) is None  # the stack's newest
    # A build variable wins over the file, and GOOGLE_ENTRYPOINT over the Procfile.
    overridden = Build("job", [], tmp_path, app.files, {"GOOGLE_PYTHON_VERSION": "3.12.*", "GOOGLE_ENTRYPOINT": "x"})
    assert python_constraint(overridden) == "3.12.*" and default_process(overridden) == "x"
    no_web = tmp_path / "no-web"
    no_web.mkdir()
    (no_web / "Procfile").write_text("worker: python -m shared.schema\n")
    assert default_process(Build("job", [], no_web, ["Procfile"], {})) is None


def test_the_jobs_procfile_command_migrates_a_fresh_database_from_its_staged_upload(tmp_path, empty_postgres):
    admin_url, app_url, _ = empty_postgres
    (job,) = [b for b in builds(tmp_path) if b.name == "facts-migrate"]
    command = default_process(job)
    assert command is not None
    venv = deploy_venv()  # exactly the lock, as the pip buildpack installs it
    # As the launcher runs it: `bash -c COMMAND` in the app folder, its Python first on PATH.
    env = {"PATH": f"{venv}/bin:/usr/bin:/bin", "DATABASE_URL": app_url}
    result = subprocess.run(["bash", "-c", command], cwd=job.folder, env=env, capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("applied: 0001_schema"), result.stdout
    with connect_url(admin_url) as con:
        assert int(con.run("SELECT count(*) FROM schema_migrations")[0][0]) == len(schema.migrations())
    again = subprocess.run(["bash", "-c", command], cwd=job.folder, env=env, capture_output=True, text=True,
                           timeout=120)  # fmt: skip
    assert again.returncode == 0 and "nothing to do" in again.stdout
