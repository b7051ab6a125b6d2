"""Reference `hello`: the cost of functions-framework + gunicorn alone, no I/O."""

import json

import functions_framework

_BODY = json.dumps({"hello": "world"})
_HEADERS = {"Content-Type": "application/json; charset=utf-8"}


@functions_framework.http
def hello(request):
    return _BODY, 200, _HEADERS
