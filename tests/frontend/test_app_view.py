"""Django serves the single-page app at / and its routes, never in place of the API, admin or files."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client

from frontend import views
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

BUILT = "<!doctype html><html><body><div id=app></div><script src=/static/frontend/assets/x.js></script>"


@pytest.fixture
def built_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in build, so that these tests do not depend on npm having run."""
    index = tmp_path / "index.html"
    index.write_text(BUILT)
    monkeypatch.setattr(views, "INDEX", index)
    return index


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/login",
        "/login/",
        "/projects",
        "/projects/3",
        "/label/3/4",
        "/label/3/4?prefetch=0",
        "/review/3/4",
        "/classify/3",
        "/studies/new/3",
        "/studies/5",
        "/read/8",
        "/training/3",
        "/training/3/9",
    ],
)
def test_app_routes_answer_the_built_page_with_a_csrf_cookie(built_index: Path, path: str):
    response = Client().get(path)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert response.content.decode() == BUILT
    assert "csrftoken" in response.cookies
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.parametrize(
    "path", ["/api/", "/api/nothing-here/", "/admin/", "/api-auth/login/", "/static/x.js", "/other"]
)
def test_other_paths_are_not_the_app(built_index: Path, path: str):
    response = Client().get(path)
    assert response.content.decode() != BUILT


def test_api_404_stays_json_not_the_app(built_index: Path):
    client = Client()
    client.force_login(UserFactory.create())
    response = client.get("/api/projects/999999/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"


def test_missing_build_says_how_to_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(views, "INDEX", tmp_path / "missing.html")

    response = Client().get("/")

    assert response.status_code == 503
    assert "npm run build" in response.content.decode()


def test_the_page_only_answers_reads(built_index: Path):
    assert Client().post("/").status_code in (403, 405)
