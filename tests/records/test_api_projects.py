"""Projects API: the caller's projects with their role, creation by staff, members for managers."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from records.models import Project, ProjectMembership
from tests.factories import ProjectFactory, UserFactory
from tests.records.api_support import Role, client_for, ids, member_of, results

pytestmark = pytest.mark.django_db


def test_member_lists_own_projects_with_their_role():
    mine, theirs = ProjectFactory.create(), ProjectFactory.create()
    user = member_of(mine, Role.COORDINATOR)

    rows = results(client_for(user).get("/api/projects/"))

    assert [(row["id"], row["role"]) for row in rows] == [(mine.pk, "coordinator")]
    assert theirs.pk not in {row["id"] for row in rows}


def test_superuser_sees_every_project_as_admin():
    projects = ProjectFactory.create_batch(2)
    superuser = UserFactory.create(is_superuser=True)

    rows = results(client_for(superuser).get("/api/projects/"))

    assert {row["id"] for row in rows} == {project.pk for project in projects}
    assert {row["role"] for row in rows} == {"admin"}


def test_member_retrieves_own_project_with_role():
    project = ProjectFactory.create()
    user = member_of(project, Role.DATA_MANAGER)

    body = client_for(user).get(f"/api/projects/{project.pk}/").json()

    assert body["slug"] == project.slug
    assert body["role"] == "data_manager"


def test_member_of_other_project_gets_404_for_project():
    user = member_of(ProjectFactory.create())
    other = ProjectFactory.create()

    assert client_for(user).get(f"/api/projects/{other.pk}/").status_code == 404


def test_projects_filter_by_slug():
    first, second = ProjectFactory.create(), ProjectFactory.create()
    user = member_of(first)
    ProjectMembership.objects.create(project=second, user=user)

    assert ids(client_for(user).get("/api/projects/", {"slug": second.slug})) == {second.pk}


def test_staff_creates_project_and_becomes_its_admin():
    staff = UserFactory.create(is_staff=True)

    response = client_for(staff).post(
        "/api/projects/", {"name": "Larynx CLE", "slug": "larynx-cle", "description": "pilot"}, format="json"
    )

    assert response.status_code == 201, response.content
    project = Project.objects.get(slug="larynx-cle")
    assert response.json()["id"] == project.pk
    assert response.json()["role"] == "admin"
    assert ProjectMembership.objects.get(project=project).user == staff


def test_non_staff_member_cannot_create_project():
    user = member_of(ProjectFactory.create(), Role.ADMIN)

    response = client_for(user).post("/api/projects/", {"name": "X", "slug": "x"}, format="json")

    assert response.status_code == 403
    assert not Project.objects.filter(slug="x").exists()


def test_project_slug_must_be_unique():
    existing = ProjectFactory.create()
    staff = UserFactory.create(is_superuser=True)

    response = client_for(staff).post(
        "/api/projects/", {"name": "Again", "slug": existing.slug}, format="json"
    )

    assert response.status_code == 400
    assert "slug" in response.json()


@pytest.mark.parametrize("role", [Role.ADMIN, Role.COORDINATOR])
def test_project_admin_or_coordinator_lists_members(role):
    project = ProjectFactory.create()
    manager = member_of(project, role, username="manager")
    reader = member_of(project, Role.READER, username="reader")
    member_of(ProjectFactory.create(), Role.READER, username="outsider")

    rows = results(client_for(manager).get(f"/api/projects/{project.pk}/members/"))

    assert {(row["username"], row["role"]) for row in rows} == {
        ("manager", role.value),
        ("reader", "reader"),
    }
    assert {row["user"] for row in rows} == {manager.pk, reader.pk}


@pytest.mark.parametrize("role", [Role.READER, Role.DATA_MANAGER])
def test_reader_or_data_manager_cannot_list_members(role):
    project = ProjectFactory.create()
    user = member_of(project, role)

    assert client_for(user).get(f"/api/projects/{project.pk}/members/").status_code == 403


def test_admin_of_other_project_gets_404_for_members():
    user = member_of(ProjectFactory.create(), Role.ADMIN)
    other = ProjectFactory.create()

    assert client_for(user).get(f"/api/projects/{other.pk}/members/").status_code == 404


@pytest.mark.parametrize("path", ["/api/projects/", "/api/projects/{pk}/", "/api/projects/{pk}/members/"])
def test_anonymous_cannot_read_projects(path):
    project = ProjectFactory.create()

    assert APIClient().get(path.format(pk=project.pk)).status_code in (401, 403)
