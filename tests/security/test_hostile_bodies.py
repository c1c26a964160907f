"""Bodies meant to hurt the server: too large, too many fields, nested too deeply. Each is a 4xx
answered without storing anything, never a server error."""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.test import Client

from records.models import Project
from tests.factories import ProjectFactory
from tests.records.api_support import Role, client_for, member_of

pytestmark = pytest.mark.django_db

DEPTH = 100_000


@pytest.fixture
def project() -> Project:
    return ProjectFactory.create(name="Before")


@pytest.fixture
def coordinator_client(project: Project) -> Client:
    return client_for(member_of(project, Role.COORDINATOR))


def _unchanged(project: Project) -> bool:
    project.refresh_from_db()
    return project.name == "Before"


def test_a_json_body_over_the_upload_limit_is_refused(project: Project, coordinator_client: Client) -> None:
    padding = "a" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    body = json.dumps({"name": "After", "padding": padding})  # valid, but too large

    response = coordinator_client.patch(f"/api/projects/{project.pk}/", body, content_type="application/json")

    assert response.status_code in (400, 413)
    assert _unchanged(project)


def test_an_anonymous_oversized_login_is_refused() -> None:
    body = json.dumps({"username": "x", "password": "p" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)})
    response = Client().post("/api/auth/session/", body, content_type="application/json")
    assert response.status_code in (400, 413)


def test_a_form_body_over_the_upload_limit_is_refused(project: Project, coordinator_client: Client) -> None:
    body = "name=After&padding=" + "a" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    response = coordinator_client.patch(
        f"/api/projects/{project.pk}/", body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code in (400, 413)
    assert _unchanged(project)


def test_too_many_form_fields_are_refused(project: Project, coordinator_client: Client) -> None:
    body = "name=After&" + "&".join(f"f{n}=1" for n in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))
    response = coordinator_client.patch(
        f"/api/projects/{project.pk}/", body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 400
    assert _unchanged(project)


def test_too_many_multipart_fields_are_refused(project: Project, coordinator_client: Client) -> None:
    fields = {f"f{n}": "1" for n in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1)}
    response = coordinator_client.post(f"/api/projects/{project.pk}/imports/", fields)  # multipart
    assert response.status_code in (400, 403)
    assert not project.jobs.exists()


@pytest.mark.parametrize("opening", ["[", '{"a":'])
def test_json_nested_too_deeply_is_a_400(project: Project, coordinator_client: Client, opening: str) -> None:
    closing = "]" if opening == "[" else "}"
    body = opening * DEPTH + "1" + closing * DEPTH

    response = coordinator_client.patch(f"/api/projects/{project.pk}/", body, content_type="application/json")

    assert response.status_code == 400
    assert "nested too deeply" in response.json()["detail"]
    assert _unchanged(project)


def test_anonymous_json_nested_too_deeply_is_a_400() -> None:
    body = "[" * DEPTH + "]" * DEPTH
    response = Client().post("/api/auth/session/", body, content_type="application/json")
    assert response.status_code in (400, 403)  # 403: no CSRF cookie, refused before parsing


def test_nesting_a_json_parser_can_take_still_works(project: Project, coordinator_client: Client) -> None:
    body = json.dumps({"name": "After", "ignored": json.loads("[" * 200 + "]" * 200)})
    response = coordinator_client.patch(f"/api/projects/{project.pk}/", body, content_type="application/json")
    assert response.status_code == 200
    assert not _unchanged(project)
