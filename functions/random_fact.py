"""HTTP function `random_fact`: a uniformly random fact; every view is counted in Postgres."""

import _source_root  # noqa: F401 - makes `shared` importable; see that file
import functions_framework

from shared import handlers


@functions_framework.http
def random_fact(request):
    return handlers.handle_random(request)
