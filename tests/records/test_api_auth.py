"""Authentication: browser sessions with CSRF, API tokens for scripts, and /api/auth/me/."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import ProjectFactory, UserFactory
from tests.records.api_support import Role, client_for, member_of

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_throttle():
    """The login throttle counts in the cache; every test starts with a clean count."""
    cache.clear()
    yield
    cache.clear()


def test_script_exchanges_password_for_token_and_uses_it():
    user = UserFactory.create(username="script")
    client = APIClient()

    response = client.post(
        "/api/auth/token/", {"username": "script", "password": "pw-for-tests"}, format="json"
    )

    assert response.status_code == 200
    token = response.json()["token"]
    assert Token.objects.get(user=user).key == token
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/auth/me/").json()["username"] == "script"


def test_token_request_is_stable_for_the_same_user():
    UserFactory.create(username="script")
    client = APIClient()
    credentials = {"username": "script", "password": "pw-for-tests"}

    first = client.post("/api/auth/token/", credentials, format="json").json()["token"]
    second = client.post("/api/auth/token/", credentials).json()["token"]  # form-encoded works too

    assert first == second


def test_wrong_password_gets_no_token():
    UserFactory.create(username="script")

    response = APIClient().post("/api/auth/token/", {"username": "script", "password": "nope"}, format="json")

    assert response.status_code == 400
    assert "token" not in response.json()
    assert not Token.objects.exists()


def test_token_endpoint_throttles_password_guessing():
    UserFactory.create(username="script")
    client = APIClient()

    codes = [
        client.post("/api/auth/token/", {"username": "script", "password": f"guess{n}"}).status_code
        for n in range(11)
    ]

    assert codes[:10] == [400] * 10
    assert codes[10] == 429


def test_invalid_token_is_refused():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-token")

    assert client.get("/api/auth/me/").status_code in (401, 403)


def test_session_post_without_csrf_token_is_rejected():
    project = ProjectFactory.create()
    staff = UserFactory.create(username="staff", is_staff=True)
    member_of(project, Role.DATA_MANAGER, username="dm")
    client = APIClient(enforce_csrf_checks=True)
    client.login(username="staff", password="pw-for-tests")

    response = client.post("/api/projects/", {"name": "P", "slug": "p"}, format="json")

    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert staff.memberships.count() == 0


def test_session_post_with_csrf_token_is_accepted():
    UserFactory.create(username="staff", is_staff=True)
    client = APIClient(enforce_csrf_checks=True)
    client.login(username="staff", password="pw-for-tests")
    client.get("/api/auth/me/")  # the browser app's first call sets the CSRF cookie
    csrf = client.cookies["csrftoken"].value

    response = client.post("/api/projects/", {"name": "P", "slug": "p"}, format="json", HTTP_X_CSRFTOKEN=csrf)

    assert response.status_code == 201, response.content


def test_token_post_needs_no_csrf_token():
    UserFactory.create(username="staff", is_staff=True)
    token = APIClient().post("/api/auth/token/", {"username": "staff", "password": "pw-for-tests"}).json()
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token['token']}")

    response = client.post("/api/projects/", {"name": "P", "slug": "p"}, format="json")

    assert response.status_code == 201


def test_me_returns_user_and_project_roles():
    first, second = ProjectFactory.create(name="A"), ProjectFactory.create(name="B")
    ProjectFactory.create(name="C")
    user = member_of(first, Role.READER, username="dr-who", first_name="Dr")
    user.memberships.create(project=second, role=Role.DATA_MANAGER)

    body = client_for(user).get("/api/auth/me/").json()

    assert body["username"] == "dr-who"
    assert body["first_name"] == "Dr"
    assert body["is_superuser"] is False
    assert [(row["slug"], row["role"]) for row in body["projects"]] == [
        (first.slug, "reader"),
        (second.slug, "data_manager"),
    ]


def test_me_lists_every_project_as_admin_for_a_superuser():
    ProjectFactory.create_batch(2)
    superuser = UserFactory.create(is_superuser=True)

    body = client_for(superuser).get("/api/auth/me/").json()

    assert len(body["projects"]) == 2
    assert {row["role"] for row in body["projects"]} == {"admin"}


def test_anonymous_me_is_refused():
    assert APIClient().get("/api/auth/me/").status_code in (401, 403)


def test_reader_without_staff_rights_logs_in_through_the_browser_with_csrf():
    from django.test import Client

    reader = UserFactory.create(username="browser-reader", password="pw-for-tests")
    browser = Client(enforce_csrf_checks=True)
    browser.get("/api-auth/login/")
    token = browser.cookies["csrftoken"].value

    refused = Client(enforce_csrf_checks=True).post(
        "/api-auth/login/", {"username": reader.username, "password": "pw-for-tests"}
    )
    response = browser.post(
        "/api-auth/login/",
        {
            "username": reader.username,
            "password": "pw-for-tests",
            "csrfmiddlewaretoken": token,
            "next": "/api/docs/",
        },
    )

    assert refused.status_code == 403
    assert response.status_code == 302 and response["Location"] == "/api/docs/"
    assert browser.get("/api/docs/").status_code == 200
    assert browser.get("/api/auth/me/").json()["username"] == reader.username
