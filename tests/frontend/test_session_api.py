"""The browser app's session login and logout: CSRF enforced, a clear 400 for a wrong password."""

from __future__ import annotations

import pytest
from django.test import Client

from frontend.apis import WRONG_CREDENTIALS
from records.models import ProjectMembership
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def _csrf_client() -> tuple[Client, str]:
    client = Client(enforce_csrf_checks=True)
    client.get("/")  # the app page sets the CSRF cookie
    return client, client.cookies["csrftoken"].value


def test_login_starts_a_session_and_answers_the_user_with_roles():
    membership = MembershipFactory.create(user__username="expert", role=ProjectMembership.Role.READER)
    client, token = _csrf_client()

    response = client.post(
        "/api/auth/session/",
        {"username": "expert", "password": "pw-for-tests"},
        content_type="application/json",
        headers={"X-CSRFToken": token},
    )

    assert response.status_code == 200
    body = response.json()
    assert body["username"] == "expert"
    assert body["projects"] == [
        {
            "id": membership.project.pk,
            "slug": membership.project.slug,
            "name": membership.project.name,
            "role": "reader",
        }
    ]
    me = client.get("/api/auth/me/")
    assert me.status_code == 200 and me.json()["username"] == "expert"
    # Django rotates the CSRF token on login; the app reads the new cookie for its next write.
    assert client.cookies["csrftoken"].value != token


def test_wrong_password_is_a_400_with_a_clear_message_and_no_session():
    UserFactory.create(username="expert")
    client, token = _csrf_client()

    response = client.post(
        "/api/auth/session/",
        {"username": "expert", "password": "wrong"},
        content_type="application/json",
        headers={"X-CSRFToken": token},
    )

    assert response.status_code == 400
    assert response.json() == {"detail": WRONG_CREDENTIALS}
    assert client.get("/api/auth/me/").status_code == 403


def test_inactive_user_cannot_sign_in():
    UserFactory.create(username="gone", is_active=False)
    client, token = _csrf_client()
    response = client.post(
        "/api/auth/session/",
        {"username": "gone", "password": "pw-for-tests"},
        content_type="application/json",
        headers={"X-CSRFToken": token},
    )
    assert response.status_code == 400


def test_login_without_the_csrf_token_is_refused():
    UserFactory.create(username="expert")
    client = Client(enforce_csrf_checks=True)

    response = client.post(
        "/api/auth/session/",
        {"username": "expert", "password": "pw-for-tests"},
        content_type="application/json",
    )

    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert client.get("/api/auth/me/").status_code == 403


def test_logout_ends_the_session_and_needs_the_csrf_token():
    UserFactory.create(username="expert")
    client, token = _csrf_client()
    client.post(
        "/api/auth/session/",
        {"username": "expert", "password": "pw-for-tests"},
        content_type="application/json",
        headers={"X-CSRFToken": token},
    )
    token = client.cookies["csrftoken"].value

    assert client.delete("/api/auth/session/").status_code == 403  # no CSRF token
    assert client.delete("/api/auth/session/", headers={"X-CSRFToken": token}).status_code == 204
    assert client.get("/api/auth/me/").status_code == 403
    assert Client().delete("/api/auth/session/").status_code == 204  # nobody signed in: still 204


def test_password_guessing_is_throttled():
    UserFactory.create(username="expert")
    client, token = _csrf_client()
    statuses = [
        client.post(
            "/api/auth/session/",
            {"username": "expert", "password": f"guess-{n}"},
            content_type="application/json",
            headers={"X-CSRFToken": token},
        ).status_code
        for n in range(21)
    ]
    assert statuses[:20] == [400] * 20
    assert statuses[20] == 429
