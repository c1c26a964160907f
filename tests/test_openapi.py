"""The OpenAPI schema generates cleanly and the self-hosted docs load for a signed-in user."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_schema_generates_and_validates_without_warnings(tmp_path: Path):
    target = tmp_path / "schema.yaml"

    # --fail-on-warn turns any drf-spectacular warning or error into a failure of the command.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))

    text = target.read_text()
    for path in (
        "/api/projects/{id}/imports/",
        "/api/frames/{id}/image/",
        "/api/frames/{id}/preview/",
        "/api/auth/token/",
        "/api/auth/me/",
        "/api/jobs/{id}/",
    ):
        assert f"{path}:" in text


def test_schema_endpoint_serves_json_to_a_signed_in_user():
    client = APIClient()
    client.force_login(UserFactory.create())

    response = client.get("/api/schema/", {"format": "json"})

    assert response.status_code == 200
    schema = response.json()
    assert schema["info"]["title"] == "CLEAR API"
    image = schema["paths"]["/api/frames/{id}/image/"]["get"]["responses"]
    assert "image/png" in image["200"]["content"]
    imports = schema["paths"]["/api/projects/{id}/imports/"]["post"]
    assert "multipart/form-data" in imports["requestBody"]["content"]
    assert "202" in imports["responses"]


def test_swagger_ui_loads_from_the_sidecar_for_a_signed_in_user():
    client = APIClient()
    client.force_login(UserFactory.create())

    response = client.get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert "cdn" not in html.lower()  # assets come from drf-spectacular-sidecar's static files


def test_docs_and_schema_need_a_signed_in_user():
    docs = APIClient().get("/api/docs/")
    assert docs.status_code == 302 and docs["Location"] == "/api-auth/login/?next=/api/docs/"
    assert APIClient().get("/api/schema/").status_code in (401, 403)
