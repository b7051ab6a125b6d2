"""The three builds of the deploy (the migration job and both functions) against the rules of
Google's Python buildpacks: which builder or base image offers which Python is data
(deploy/build-rules.toml, a source on every row); how a build picks its Python and its process is
encoded here with the file it comes from.

Source: GoogleCloudPlatform/buildpacks at commit 21f28de8c499445ef1098016bfce35b16415e4b1
(BUILDPACKS below). Each upload is listed by gcloud itself from the folder the dry run staged, the
build variables come from the dry run's own flags, and the job's entrypoint is then run for real
with Python laid out as the buildpack lays it out (tests/support/buildpack_layout.py).
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from devkit.cloudrun.scratch_postgres import connect_url
from shared import schema

from .support.buildpack_layout import buildpack_python
from .support.deploy_copy import ROOT, dry_run, flags, gcloud_upload

# In the slow lane: the dry run's staged uploads listed by the gcloud CLI, the job run from one.
pytestmark = pytest.mark.slow

BUILDPACKS = "GoogleCloudPlatform/buildpacks@21f28de8c499445ef1098016bfce35b16415e4b1"


RULES = tomllib.loads((ROOT / "deploy" / "build-rules.toml").read_text())
IMAGES = {image["name"]: image for image in RULES["image"]}


@dataclass(frozen=True)
class Build:
    """One source build: its upload folder, the files gcloud uploads from it, its build variables,
    and the builder or base image it names (None: it names none, and gets gcloud's default)."""

    name: str
    argv: list[str]
    folder: Path
    files: list[str]
    build_env: dict[str, str]
    builder: str | None = None


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


def pack_settings(argv: list[str]) -> dict[str, str]:
    """`--pack=image=...,builder=...,env=NAME=VALUE` of `gcloud builds submit` (gcloud's ArgDict:
    comma-separated keys, each split at its first `=`)."""
    return dict(item.split("=", 1) for item in flags(argv).get("pack", "").split(",") if item)


def builds(tmp_path: Path, **env: str) -> list[Build]:
    """Every build of the dry run: the functions' `run deploy --source` lines and the job's
    `builds submit --pack` line (the job's `run jobs deploy` then builds nothing: --image)."""
    run = dry_run(tmp_path, **env)
    found = []
    for argv in run.named("run", "deploy"):
        folder = Path(flags(argv)["source"])
        build_env = dict(pair.split("=", 1) for pair in flags(argv).get("set-build-env-vars", "").split(",") if pair)
        build_env["GOOGLE_FUNCTION_TARGET"] = flags(argv)["function"]
        files = gcloud_upload(folder, tmp_path / "gcloud")
        found.append(Build(argv[3], argv, folder, files, build_env, flags(argv).get("base-image")))
    for argv in run.named("builds", "submit"):
        pack = pack_settings(argv)
        folder = Path(argv[3])
        build_env = dict([pack["env"].split("=", 1)]) if "env" in pack else {}
        image_name = pack["image"].rsplit("/", 1)[1].split(":")[0]
        found.append(Build(image_name, argv, folder, gcloud_upload(folder, tmp_path / "gcloud"), build_env,
                           pack.get("builder")))  # fmt: skip
    return found


def offered(build: Build) -> list[str]:
    """What is wrong with a build under the rule table (empty: nothing): it must name a builder or
    base image of the table, and pin a Python that one offers."""
    if build.builder is None:
        return [f"{build.name}: names no builder, so gets gcloud's default (deploy/build-rules.toml)"]
    image = IMAGES.get(build.builder)
    if image is None:
        return [f"{build.name}: {build.builder} is not in deploy/build-rules.toml"]
    constraint = python_constraint(build)
    minor = re.fullmatch(r"(3\.\d+)\.\*", constraint or "")
    if minor is None or minor.group(1) not in image["pythons"]:
        return [f"{build.name}: Python {constraint} is not among {image['pythons']} of {build.builder}"]
    return []


DRY_RUNS = [{}, {"CLOUDSQL_INSTANCE": "demo:europe-west1:facts"}, {"DRY_RUN_AS": "first"}]


@pytest.mark.parametrize("form", DRY_RUNS, ids=["ip", "socket", "first-deploy"])
def test_every_build_of_the_dry_run_follows_the_buildpack_rules(tmp_path, form):
    found = builds(tmp_path, **form)
    assert sorted(b.name for b in found) == ["facts-migrate", "random-fact", "today-fact"]
    runtime = flags(next(b for b in found if b.name == "random-fact").argv)["base-image"]
    assert runtime == "python312"  # the functions' runtime, which every build must match
    for build in found:
        assert offered(build) == []
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
            assert default_process(build) == "python3 -m shared.schema", build.name
    (job,) = dry_run(tmp_path / "again", **form).named("run", "jobs", "deploy")
    # The job runs the image built above, on its launcher: `--source` would rebuild it on the
    # default builder, and `--command` would replace the launcher that puts Python on PATH.
    image = pack_settings(next(b for b in found if b.name == "facts-migrate").argv)["image"]
    assert flags(job)["image"].rsplit(":", 1)[0] == image.rsplit(":", 1)[0]
    assert not any(arg.startswith(("--source", "--command", "--args")) for arg in job), job


def test_the_rule_table_gives_a_source_for_every_row_and_a_default_for_every_command():
    rows = RULES["image"] + RULES["command"] + [RULES["python"]]
    assert all(row.get("source") for row in rows), [row for row in rows if not row.get("source")]
    for command in RULES["command"]:
        assert command["default"] in IMAGES, command
    # The old job build: `gcloud run jobs deploy --source` names no builder, and its default has no 3.12.
    (jobs,) = [c for c in RULES["command"] if c["words"] == ["run", "jobs", "deploy"]]
    assert "3.12" not in IMAGES[jobs["default"]]["pythons"]


def test_the_rule_table_tells_a_pinned_build_from_one_that_leans_on_a_default(tmp_path):
    (tmp_path / ".python-version").write_text("3.12.*\n")
    files = [".python-version"]
    assert offered(Build("job", [], tmp_path, files, {}, "gcr.io/buildpacks/builder:google-22")) == []
    assert offered(Build("job", [], tmp_path, files, {}, None))  # the default builder
    assert offered(Build("job", [], tmp_path, files, {}, "gcr.io/buildpacks/builder:latest"))  # Ubuntu 24: no 3.12
    assert offered(Build("job", [], tmp_path, files, {}, "gcr.io/buildpacks/builder:google-99"))  # not in the table
    pinned_elsewhere = {"GOOGLE_PYTHON_VERSION": "3.14.*"}  # wins over .python-version
    assert offered(Build("fn", [], tmp_path, files, pinned_elsewhere, "python312"))


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


def test_the_jobs_procfile_command_migrates_a_fresh_database_as_the_buildpack_lays_python_out(tmp_path, empty_postgres):
    """As the launcher runs it: `bash -c COMMAND` in the app folder, with only `python3` and
    `python3.12` on PATH, the lock installed by `pip install --user`, no virtualenv."""
    admin_url, app_url, _ = empty_postgres
    (job,) = [b for b in builds(tmp_path) if b.name == "facts-migrate"]
    command = default_process(job)
    assert command is not None
    layout = buildpack_python()
    env = {**layout.environ(), "DATABASE_URL": app_url}
    assert sorted(p.name for p in layout.bin_dir.iterdir()) == ["python3", "python3.12"]

    def launch(line: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["/bin/bash", "-c", line], cwd=job.folder, env=env, capture_output=True, text=True,
                              timeout=120)  # fmt: skip

    # The bare name the Procfile once used does not exist there.
    missing = launch(command.replace("python3 ", "python ", 1))
    assert missing.returncode == 127 and "python: command not found" in missing.stderr
    result = launch(command)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("applied: 0001_schema"), result.stdout
    with connect_url(admin_url) as con:
        assert int(con.run("SELECT count(*) FROM schema_migrations")[0][0]) == len(schema.migrations())
    again = launch(command)
    assert again.returncode == 0 and "nothing to do" in again.stdout
