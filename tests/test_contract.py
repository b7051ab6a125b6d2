"""The HTTP contract of both functions, through functions-framework's own test client."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

JSON_TYPE = "application/json; charset=utf-8"
FACT_KEYS = {"fact_id", "fact", "language", "source", "views"}


@pytest.fixture(params=["random", "today"])
def client(request, random_client, today_client):
    return {"random": random_client, "today": today_client}[request.param]


def _is_json_error(response, status, code):
    assert response.status_code == status
    assert response.headers["Content-Type"] == JSON_TYPE
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    error = response.get_json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    return error


def test_random_shape_and_headers(random_client):
    response = random_client.get("/")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == JSON_TYPE
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    body = response.get_json()
    assert set(body) == FACT_KEYS
    assert body["language"] == "en" and body["views"] == 1 and len(body["fact_id"]) == 16


def test_today_shape_headers_and_etag(today_client):
    response = today_client.get("/")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-cache"
    body = response.get_json()
    assert set(body) == FACT_KEYS | {"date"}
    assert response.headers["ETag"] == f'W/"{body["fact_id"]}-{body["date"]}"'


def test_today_is_the_same_fact_for_every_caller(today_client):
    bodies = [today_client.get("/").get_json() for _ in range(5)]
    assert len({b["fact_id"] for b in bodies}) == 1
    assert [b["views"] for b in bodies] == [1, 2, 3, 4, 5]


def test_today_if_none_match_gets_304_and_still_counts(today_client, db):
    first = today_client.get("/")
    etag = first.headers["ETag"]
    again = today_client.get("/", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.get_data() == b""
    assert again.headers["ETag"] == etag
    views = db.run("SELECT views FROM fact_views WHERE fact_id = :id", id=first.get_json()["fact_id"])[0][0]
    assert views == 2


def test_today_stale_etag_gets_the_body(today_client):
    stale = 'W/"0000000000000000-2000-01-01"'
    response = today_client.get("/", headers={"If-None-Match": stale})
    assert response.status_code == 200
    body = response.get_json()
    # The body comes with the day's own validator, which the client revalidates with next time.
    current = response.headers["ETag"]
    assert current == f'W/"{body["fact_id"]}-{body["date"]}"' and current != stale
    assert today_client.get("/", headers={"If-None-Match": f"{stale}, {current}"}).status_code == 304


@pytest.mark.parametrize("language", ["en", "de"])
def test_languages(client, language):
    response = client.get("/", query_string={"language": language})
    assert response.status_code == 200
    assert response.get_json()["language"] == language


def test_today_differs_per_language_table(today_client, db):
    today_client.get("/", query_string={"language": "en"})
    today_client.get("/", query_string={"language": "de"})
    assert sorted(row[0] for row in db.run("SELECT language FROM daily_facts")) == ["de", "en"]


@pytest.mark.parametrize("language", ["xx", "EN", "", "en-US", "e\u00f1", "x" * 5000])
def test_unsupported_language_is_a_400_listing_the_supported(client, language):
    error = _is_json_error(client.get("/", query_string={"language": language}), 400, "unsupported_language")
    assert error["supported_languages"] == ["en", "de"]
    assert len(error["message"]) < 200  # the bad value is shortened, never echoed whole


def test_repeated_language_is_a_400(client):
    _is_json_error(client.get("/?language=en&language=de"), 400, "invalid_parameter")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_other_methods_get_405_with_allow(client, method, db):
    response = client.open("/", method=method, data=b'{"x": 1}')
    _is_json_error(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert db.run("SELECT coalesce(sum(views), 0) FROM fact_views")[0][0] == 0


def test_head_answers_without_counting_a_view(client, db):
    response = client.head("/")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == JSON_TYPE
    assert response.get_data() == b""
    assert db.run("SELECT coalesce(sum(views), 0) FROM fact_views")[0][0] == 0


def test_options_answers_a_cors_preflight(client):
    response = client.options("/", headers={"Origin": "https://example.org", "Access-Control-Request-Method": "GET"})
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert set(response.headers["Access-Control-Allow-Methods"].split(", ")) == {"GET", "HEAD", "OPTIONS"}


def test_unknown_query_parameters_are_ignored(random_client, db):
    response = random_client.get("/?_=12345")
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == FACT_KEYS and body["language"] == "en" and body["views"] == 1  # as without it
    assert db.run("SELECT views FROM fact_views WHERE fact_id = :id", id=body["fact_id"]) == [[1]]


def test_random_counts_views_atomically_in_postgres(random_client, db):
    """Eight threads at once on three hot rows: a read-then-write count would lose views here."""
    db.run("UPDATE fact_counts SET n = 3 WHERE language = 'en'")
    threads, per_thread = 8, 25
    start = threading.Barrier(threads)

    def views(_):
        client = random_client.application.test_client()  # a client per thread; the app is shared
        start.wait(timeout=30)
        return [client.get("/").get_json()["fact_id"] for _ in range(per_thread)]

    with ThreadPoolExecutor(threads) as pool:
        seen = [fact_id for batch in pool.map(views, range(threads)) for fact_id in batch]
    assert db.run("SELECT sum(views) FROM fact_views")[0][0] == threads * per_thread
    for fact_id in set(seen):
        assert db.run("SELECT views FROM fact_views WHERE fact_id = :id", id=fact_id)[0][0] == seen.count(fact_id)


def test_head_on_a_cached_today_counts_no_view(today_client):
    first = today_client.get("/")  # chooses and caches the day's fact: the requests below are cache hits
    etag = first.headers["ETag"]
    head = today_client.head("/")
    assert head.status_code == 200 and head.get_data() == b""
    assert head.headers["ETag"] == etag
    conditional = today_client.head("/", headers={"If-None-Match": etag})
    assert conditional.status_code == 304 and conditional.get_data() == b""
    assert conditional.headers["ETag"] == etag
    assert today_client.get("/").get_json()["views"] == 2  # the two GETs, neither HEAD
