"""HTTP function `random_fact`: a uniformly random fact; every view is counted in Postgres."""

import sys
from pathlib import Path

# functions-framework puts only this file's folder on sys.path; the shared package sits one
# level up (the repository root, which is also the deployed source root).
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.append(_ROOT)

import functions_framework  # noqa: E402

from shared import endpoints  # noqa: E402


@functions_framework.http
def random_fact(request):
    return endpoints.random_fact(request)
