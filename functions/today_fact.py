"""HTTP function `today_fact`: the fact of the UTC day, chosen once in Postgres and cached in Redis."""

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
def today_fact(request):
    return endpoints.today_fact(request)
