#!/usr/bin/env bash
# Print the path of the Python interpreter of the exact release asked for (e.g. 3.12.1), for a CI
# lane: pyenv's build of it, the one stated source (pyproject.toml's [tool.facts-api.sources]).
# Exit 1 with the remedy when pyenv has no such build.
set -euo pipefail
want=${1:?usage: ci/find-python.sh X.Y.Z}
root=${PYENV_ROOT:-$HOME/.pyenv}
candidate=$root/versions/$want/bin/python${want%.*}
if [ ! -x "$candidate" ] ||
    [ "$("$candidate" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null)" != "$want" ]; then
    echo "no Python $want from pyenv at $candidate; install it: pyenv install $want" >&2
    exit 1
fi
echo "$candidate"
