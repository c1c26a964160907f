"""Helpers shared by the records API tests (not a test module itself)."""

from __future__ import annotations

from typing import Any

from rest_framework.test import APIClient

from records.models import Project, ProjectMembership
from tests.factories import MembershipFactory, UserFactory

Role = ProjectMembership.Role


def client_for(user: Any) -> APIClient:
    """An API client logged in with a session, as the browser would be (CSRF checks off)."""
    client = APIClient()
    client.force_login(user)
    return client


def member_of(project: Project, role: str = Role.READER, **user_fields: Any) -> Any:
    user = UserFactory.create(**user_fields)
    MembershipFactory.create(project=project, user=user, role=role)
    return user


def results(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.content
    return list(response.json()["results"])


def ids(response: Any) -> set[int]:
    return {row["id"] for row in results(response)}
