"""A language the settings support but the catalogue has no facts in yet: a 404 that says so."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from shared import instance


@pytest.mark.usefixtures("fresh_instance")
@pytest.mark.parametrize("function", ["random", "today"])
def test_a_supported_language_without_facts_is_a_404_that_names_it(
    monkeypatch: pytest.MonkeyPatch, random_client: FlaskClient, today_client: FlaskClient, function: str
) -> None:
    monkeypatch.setenv("FACTS_LANGUAGES", "en,de,fr")
    monkeypatch.delenv("FACTS_UPSTREAM_URL", raising=False)  # nothing to fetch a French fact from
    instance.reset()
    client = {"random": random_client, "today": today_client}[function]
    response = client.get("/", query_string={"language": "fr"})
    assert response.status_code == 404
    assert response.get_json()["error"] == {
        "code": "no_facts",
        "message": "the catalogue has no facts in language 'fr' yet",
    }
