"""Unknown paths: JSON under /api/, Django's page elsewhere; the trailing-slash redirect stays."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "signed-in"])
def test_an_api_path_that_matches_nothing_is_a_json_404(signed_in: bool) -> None:
    client = Client()
    if signed_in:
        client.force_login(UserFactory.create())

    response = client.get("/api/no-such-resource/")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}


def test_an_api_path_without_its_slash_is_still_redirected_to_it() -> None:
    response = Client().get("/api/frames")
    assert response.status_code == 301 and response["Location"] == "/api/frames/"


def test_other_unknown_paths_keep_the_html_page() -> None:
    response = Client().get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
