"""Accounts and sessions: no open registration, every login throttled, CSRF on session-authenticated
writes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotations.models import LabelTask
from records.models import Project
from studies.models import ReaderStudy
from tests.factories import FrameFactory, LabelChoiceFactory, LabelTaskFactory, ProjectFactory, UserFactory
from tests.records.api_support import Role, member_of

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_throttles() -> Iterator[None]:
    """Login throttles count per address in the cache; every test starts from zero."""
    cache.clear()
    yield
    cache.clear()


# --- No open registration -------------------------------------------------------------------------


def _routes(patterns: list[Any], prefix: str = "") -> Iterator[str]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern) + f" [{pattern.name or ''}]"


def test_no_route_offers_sign_up() -> None:
    routes = list(_routes(get_resolver().url_patterns))
    assert len(routes) > 50
    sign_up = re.compile(r"regist|sign.?up|join|create.?account|invit|password.?reset", re.IGNORECASE)
    assert [route for route in routes if sign_up.search(route)] == []


@pytest.mark.parametrize(
    "path", ["/api/auth/register/", "/api/users/", "/api/auth/users/", "/accounts/signup/", "/signup"]
)
def test_an_anonymous_sign_up_attempt_creates_no_account(path: str) -> None:
    before = get_user_model().objects.count()
    response = Client().post(
        path, {"username": "intruder", "password": "Long-enough-pw-1", "email": "i@example.org"}
    )
    assert response.status_code in (403, 404, 405)
    assert get_user_model().objects.count() == before


def test_signing_in_as_an_unknown_user_creates_no_account() -> None:
    client = APIClient()
    response = client.post("/api/auth/session/", {"username": "newcomer", "password": "pw"}, format="json")
    assert response.status_code == 400
    assert not get_user_model().objects.filter(username="newcomer").exists()
    response = client.post("/api/auth/token/", {"username": "newcomer", "password": "pw"}, format="json")
    assert response.status_code == 400
    assert not get_user_model().objects.filter(username="newcomer").exists()


# --- Login rate limiting --------------------------------------------------------------------------


def _guesses(post: Any, count: int) -> list[int]:
    return [post(n).status_code for n in range(count)]


def test_the_apps_session_login_is_throttled() -> None:
    UserFactory.create(username="expert")
    client = APIClient()
    statuses = _guesses(
        lambda n: client.post(
            "/api/auth/session/", {"username": "expert", "password": f"g{n}"}, format="json"
        ),
        21,
    )
    assert statuses == [400] * 20 + [429]


def test_the_scripts_token_login_is_throttled() -> None:
    UserFactory.create(username="script")
    client = APIClient()
    statuses = _guesses(
        lambda n: client.post("/api/auth/token/", {"username": "script", "password": f"g{n}"}, format="json"),
        11,
    )
    assert statuses == [400] * 10 + [429]
    assert not Token.objects.exists()


@pytest.mark.parametrize("path", ["/api-auth/login/", "/admin/login/"])
def test_the_django_login_forms_are_throttled(path: str) -> None:
    UserFactory.create(username="expert", is_staff=True)
    client = Client()
    assert client.get(path).status_code == 200  # showing the form is never limited
    statuses = _guesses(lambda n: client.post(path, {"username": "expert", "password": f"g{n}"}), 21)

    assert statuses == [200] * 20 + [429]  # a failed form login re-renders the form (200)
    assert client.get(path).status_code == 200
    # Even the right password waits: the address, not the account, is slowed down.
    right = client.post(path, {"username": "expert", "password": "pw-for-tests"})
    assert right.status_code == 429
    assert int(right["Retry-After"]) > 0
    assert "_auth_user_id" not in client.session


def test_a_correct_form_login_still_works() -> None:
    UserFactory.create(username="expert", is_staff=True)
    response = Client().post("/api-auth/login/", {"username": "expert", "password": "pw-for-tests"})
    assert response.status_code == 302


def test_a_forged_forwarded_for_header_does_not_escape_the_throttle() -> None:
    """Each guess claims another client address; without a trusted proxy the header is ignored."""
    UserFactory.create(username="expert")
    client = APIClient()
    statuses = _guesses(
        lambda n: client.post(
            "/api/auth/session/",
            {"username": "expert", "password": f"g{n}"},
            format="json",
            headers={"X-Forwarded-For": f"203.0.113.{n}"},
        ),
        21,
    )
    assert statuses[-1] == 429


def test_behind_one_proxy_the_address_it_appends_is_the_client() -> None:
    UserFactory.create(username="expert")
    client = APIClient()
    with override_settings(REST_FRAMEWORK={**_rest_framework(), "NUM_PROXIES": 1}):
        # The client forges the first entry; the proxy appends the address it saw (the same one).
        forged = _guesses(
            lambda n: client.post(
                "/api/auth/session/",
                {"username": "expert", "password": f"g{n}"},
                format="json",
                headers={"X-Forwarded-For": f"203.0.113.{n}, 198.51.100.7"},
            ),
            21,
        )
        other_client = client.post(
            "/api/auth/session/",
            {"username": "expert", "password": "g"},
            format="json",
            headers={"X-Forwarded-For": "198.51.100.8"},
        )
    assert forged[-1] == 429
    assert other_client.status_code == 400  # another real address has its own count


def _rest_framework() -> dict[str, Any]:
    return dict(settings.REST_FRAMEWORK)


# --- CSRF on session-authenticated writes ---------------------------------------------------------


def _signed_in_browser(user: Any) -> tuple[Client, str]:
    """A client that checks CSRF like a browser's requests are checked, signed in with a session."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get("/api-auth/login/")  # a page with a form sets the CSRF cookie
    return client, client.cookies["csrftoken"].value


@pytest.fixture
def project() -> Project:
    return ProjectFactory.create(name="Before")


def _writes(project: Project, task: LabelTask) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        ("post", "/api/label-tasks/", {"project": project.pk, "key": "new_task", "name": "New"}),
        ("patch", f"/api/projects/{project.pk}/", {"name": "After"}),
        ("post", "/api/studies/", {"project": project.pk, "name": "A study", "design": "fully_crossed"}),
        ("patch", f"/api/label-tasks/{task.pk}/", {"name": "Renamed"}),
    ]


def test_a_session_write_without_the_csrf_token_is_refused_and_stores_nothing(project: Project) -> None:
    coordinator = member_of(project, Role.COORDINATOR)
    task = LabelTaskFactory.create(project=project, name="Task")
    client, _ = _signed_in_browser(coordinator)

    for method, path, body in _writes(project, task):
        response = getattr(client, method)(path, body, content_type="application/json")
        assert response.status_code == 403, (method, path)
        assert "CSRF" in response.json()["detail"]

    project.refresh_from_db()
    task.refresh_from_db()
    assert (project.name, task.name) == ("Before", "Task")
    assert not LabelTask.objects.filter(key="new_task").exists()
    assert not ReaderStudy.objects.filter(project=project).exists()


def test_a_session_write_with_a_wrong_csrf_token_is_refused(project: Project) -> None:
    client, token = _signed_in_browser(member_of(project, Role.COORDINATOR))
    wrong = token[:-4] + ("aaaa" if not token.endswith("aaaa") else "bbbb")
    response = client.patch(
        f"/api/projects/{project.pk}/",
        {"name": "After"},
        content_type="application/json",
        headers={"X-CSRFToken": wrong},
    )
    assert response.status_code == 403
    project.refresh_from_db()
    assert project.name == "Before"


def test_a_session_write_with_the_csrf_token_goes_through(project: Project) -> None:
    coordinator = member_of(project, Role.COORDINATOR)
    task = LabelTaskFactory.create(project=project, name="Task")
    client, token = _signed_in_browser(coordinator)

    for method, path, body in _writes(project, task):
        response = getattr(client, method)(
            path, body, content_type="application/json", headers={"X-CSRFToken": token}
        )
        assert response.status_code in (200, 201), (method, path, response.content)


def test_a_labels_put_and_delete_need_the_csrf_token(project: Project) -> None:
    reader = member_of(project, Role.READER)
    task = LabelTaskFactory.create(project=project)
    LabelChoiceFactory.create(task=task, value="healthy")
    frame = FrameFactory.create(examination__patient__project=project)
    client, token = _signed_in_browser(reader)
    path = f"/api/frames/{frame.pk}/annotations/{task.pk}/"
    body = {"value": "healthy", "confidence": 3}

    assert client.put(path, body, content_type="application/json").status_code == 403
    assert not task.annotations.exists()
    created = client.put(path, body, content_type="application/json", headers={"X-CSRFToken": token})
    assert created.status_code == 201
    assert client.delete(path, headers={"If-Match": created["ETag"]}).status_code == 403
    assert task.annotations.exists()


def test_a_token_authenticated_script_needs_no_csrf_token(project: Project) -> None:
    """CSRF protects cookies a browser sends by itself; a token header is never sent by itself."""
    coordinator = member_of(project, Role.COORDINATOR)
    token = Token.objects.create(user=coordinator)
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    response = client.patch(f"/api/projects/{project.pk}/", {"name": "After"}, format="json")
    assert response.status_code == 200
