#!/usr/bin/env bash
# Print the path of a Python interpreter of the version asked for (e.g. 3.12), for a CI lane:
# pythonX.Y on PATH, else the one the gcloud CLI bundles when it is that version (the gcloud CLI,
# which the deploy needs anyway, ships its own Python). Exit 1, saying so, when neither is.
set -euo pipefail
want=${1:?usage: ci/find-python.sh X.Y}
is_wanted() {
    [ -n "$1" ] && [ "$("$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$want" ]
}
candidate=$(command -v "python$want" || true)
if ! is_wanted "$candidate" && command -v gcloud >/dev/null; then
    config=$(mktemp -d)  # an empty gcloud configuration: nothing of the user's is read or written
    candidate=$(CLOUDSDK_CONFIG=$config gcloud info --format='value(basic.python_location)' 2>/dev/null || true)
    rm -rf "$config"
fi
if ! is_wanted "$candidate"; then
    echo "no Python $want found (python$want on PATH, or the gcloud CLI's bundled Python); install one" >&2
    exit 1
fi
echo "$candidate"
