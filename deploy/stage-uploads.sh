#!/usr/bin/env bash
# Assemble the two source folders the deploy builds from (docs/deploy.md, "What is uploaded"):
#
#   DEST/functions      exactly what gcloud would upload from the checkout (gcloud itself reads
#                       .gcloudignore: `gcloud meta list-files-for-upload`), plus .python-version
#   DEST/migration-job  the same files, plus a Procfile whose web process is the migration
#
#   deploy/stage-uploads.sh DEST PYTHON_VERSION     (e.g. 3.12.*)
#
# Why staged: Google's Python buildpack builds an application (the job) only with an entrypoint,
# and a Procfile is its portable form; but a Procfile in the functions' upload would replace
# their functions-framework process on a Cloud Run source build. So the Procfile exists only in
# the job's folder, and the pinned Python in both, never in the checkout, where it would steer
# local tools (pyenv, uv) away from the development Python. Local only: needs no credentials.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -ne 2 ]; then
    echo "usage: $0 DEST PYTHON_VERSION" >&2
    exit 2
fi
dest=$1 python_version=$2
# The buildpack reads the file as a semver constraint: "3.12" would mean exactly 3.12.0.
if ! [[ "$python_version" =~ ^3\.[0-9]+\.\*$ ]]; then
    echo "PYTHON_VERSION must look like 3.12.* (got '$python_version')" >&2
    exit 2
fi

files=$(gcloud meta list-files-for-upload .)
if [ -z "$files" ]; then
    echo "gcloud lists nothing to upload from $PWD: is .gcloudignore intact?" >&2
    exit 1
fi
for folder in functions migration-job; do
    rm -rf "${dest:?}/$folder"
    mkdir -p "$dest/$folder"
    printf '%s\n' "$files" | tar --create --file=- --files-from=- | tar --extract --file=- --directory="$dest/$folder"
    printf '%s\n' "$python_version" >"$dest/$folder/.python-version"
done
# The launcher runs the web process with `bash -c` in the app's folder, with the buildpack's
# Python and the installed lock on PATH; the job keeps that launcher (no --command). `python3`:
# for 3.12 the buildpack installs with `pip --user` and makes no virtualenv, so no bare `python`.
printf 'web: python3 -m shared.schema\n' >"$dest/migration-job/Procfile"
