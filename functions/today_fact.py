"""HTTP function `today_fact`: the fact of the UTC day, chosen once in Postgres and cached in Redis."""

import _source_root  # noqa: F401 - makes `shared` importable; see that file
import functions_framework

from shared import handlers


@functions_framework.http
def today_fact(request):
    return handlers.handle_today(request)
