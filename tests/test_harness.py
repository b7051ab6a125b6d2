"""The harness end to end, over real HTTP on a loopback port."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from urllib.parse import urlsplit

import pytest

from devkit.servers.waiting import wait_until

from .support.harness_process import ROOT, harness_server
from .support.harness_process import project_copy as _copy_project
from .support.plain_http import get as http_get


def test_index_lists_the_routes(harness):
    status, headers, body = http_get(harness + "/")
    assert status == 200 and headers["Content-Type"] == "application/json; charset=utf-8"
    routes = {r["path"]: r["target"] for r in json.loads(body)["routes"]}
    assert routes == {"/random": "random_fact", "/today": "today_fact"}


def test_healthz_reports_both_stores(harness):
    status, _, body = http_get(harness + "/healthz")
    assert status == 200
    assert json.loads(body) == {"status": "ok", "postgres": "ok", "redis": "ok"}


@pytest.mark.parametrize("path", ["/random", "/today", "/random?language=de", "/today/"])
def test_function_paths_answer_directly_without_redirect(harness, path):
    parts = urlsplit(harness)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    connection.request("GET", path)
    response = connection.getresponse()
    body = json.loads(response.read())
    connection.close()
    assert response.status == 200  # http.client never follows redirects: a 308 would show here
    assert response.getheader("Access-Control-Allow-Origin") == "*"
    assert body["views"] == 1  # the worker's database is reset before each test: the first view


def test_served_function_matches_the_deployed_contract(harness, db):
    status, headers, body = http_get(harness + "/today")
    fact = json.loads(body)
    assert headers["ETag"] == f'W/"{fact["fact_id"]}-{fact["date"]}"'
    status, _, body = http_get(harness + "/today", headers={"If-None-Match": headers["ETag"]})
    assert status == 304 and body == b""
    assert db.run("SELECT views FROM fact_views WHERE fact_id = :id", id=fact["fact_id"]) == [[2]]
    status, headers, _ = http_get(harness + "/random", method="DELETE")
    assert status == 405 and headers["Allow"] == "GET, HEAD, OPTIONS"


def test_unknown_path_is_a_json_404_listing_routes(harness):
    status, headers, body = http_get(harness + "/nothing/here")
    assert status == 404 and headers["Content-Type"].startswith("application/json")
    assert json.loads(body)["error"]["routes"] == ["/random", "/today"]


def test_one_log_line_per_request_and_no_password(servers):
    with harness_server(servers.environ()) as (base, log_path):
        for path in ("/random", "/today", "/healthz", "/random?language=xx"):
            http_get(base + path)

        # Each worker writes its lines within the flush interval (0.25 s), and the requests may have
        # gone to different workers: wait until the file holds exactly the three requests' lines (a
        # line printed twice never matches) and the harness's line for /healthz.
        def one_line_per_request():
            text = log_path.read_text()
            lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
            requests = [
                (line.get("function"), line.get("status")) for line in lines if line["logger"] == "facts.requests"
            ]
            assert sorted(requests, key=str) == sorted(
                [("random_fact", 200), ("today_fact", 200), ("random_fact", 400)], key=str
            )
            assert any(line["logger"] == "facts.harness" and "/healthz" in line["message"] for line in lines)
            return text

        text = wait_until(one_line_per_request, 10, "one line per request in the harness log", log_path.read_text)
    password = servers.database_url.split("@")[0].rsplit(":", 1)[-1]
    assert password not in text


def _answers(url, status):
    answer = http_get(url)
    assert answer[0] == status, answer
    return answer


def _edit_until_answered(path, text, url, status):
    """Write `text` to `path` until `url` answers `status`, again (a newer mtime) every 2 s.

    gunicorn's reloader takes each file's first mtime when its thread first scans, which on a loaded
    machine can come after the edit: the edit is then its baseline, never a change, unless repeated.
    """
    written_at = -1e9

    def answered():
        nonlocal written_at
        if time.monotonic() - written_at > 2:
            path.write_text(text)
            written_at = time.monotonic()
        return _answers(url, status)

    return wait_until(answered, 60, f"{url} to answer {status} after the edit")


@pytest.mark.slow  # a harness of its own, on a copy of the project
def test_a_third_function_needs_no_change_to_the_harness(servers, tmp_path):
    copy = _copy_project(tmp_path)
    (copy / "functions" / "hello_fact.py").write_text(
        "import functions_framework\n\n\n@functions_framework.http\ndef hello_fact(request):\n"
        "    return {'hello': request.args.get('name', 'world')}\n"
    )
    with harness_server(servers.environ(), root=copy) as (base, _):
        index = json.loads(http_get(base + "/")[2])
        assert [r["path"] for r in index["routes"]] == ["/hello_fact", "/random", "/today"]
        status, _, body = http_get(base + "/hello_fact?name=tests")
        assert status == 200 and json.loads(body) == {"hello": "tests"}


@pytest.mark.slow  # a harness of its own, reloaded twice
def test_reload_survives_a_syntax_error_and_serves_again_once_fixed(servers, tmp_path):
    copy = _copy_project(tmp_path)
    source = copy / "functions" / "random_fact.py"
    good = source.read_text()
    with harness_server(servers.environ(), "--reload", root=copy) as (base, _):
        _answers(base + "/random", 200)
        failed = _edit_until_answered(source, good + "\ndef broken(:\n", base + "/random", 500)
        error = json.loads(failed[2])["error"]
        assert error["code"] == "function_failed_to_load" and "SyntaxError" in error["message"]
        assert http_get(base + "/today")[0] == 200  # the other function keeps serving
        _edit_until_answered(source, good, base + "/random", 200)


def _invoke(servers, *args):
    env = {**servers.environ(), "PATH": "/usr/bin:/bin"}
    argv = [sys.executable, "-m", "devharness", "invoke", *args, "--servers", "external"]  # python -m works
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)


@pytest.mark.slow  # the harness's command line in a process of its own (about 3 s)
def test_invoke_prints_status_and_json_and_takes_method_headers_and_body(servers):
    first = _invoke(servers, "today", "--query", "language=de")
    assert first.returncode == 0, first.stderr
    status_line, body = first.stdout.split("\n", 1)
    assert status_line == "HTTP 200"
    request_lines = [line for line in first.stderr.splitlines() if "[today_fact]" in line]
    assert len(request_lines) == 1 and "GET / -> 200" in request_lines[0], first.stderr  # exactly one, as text
    fact = json.loads(body)
    assert fact["language"] == "de"

    etag = f'W/"{fact["fact_id"]}-{fact["date"]}"'
    cached = _invoke(servers, "today", "--query", "language=de", "--header", f"If-None-Match: {etag}")
    assert cached.stdout.startswith("HTTP 304")

    refused = _invoke(servers, "random", "--method", "POST", "--data", '{"x": 1}')
    assert refused.returncode == 1
    assert refused.stdout.startswith("HTTP 405")
    assert json.loads(refused.stdout.split("\n", 1)[1])["error"]["code"] == "method_not_allowed"

    unknown = _invoke(servers, "nope")
    assert unknown.returncode != 0 and "unknown function" in unknown.stderr
