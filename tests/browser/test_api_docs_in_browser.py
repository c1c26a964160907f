"""A reader logs in with a browser and reads the API documentation, served entirely by CLEAR."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Page, Route, expect

from tests.factories import UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_reader_logs_in_and_sees_swagger_ui_without_any_outside_request(
    page: Page, live_server: object, tmp_path: Path
) -> None:
    base = str(live_server)
    UserFactory.create(username="browser-reader", password="pw-for-tests")
    outside: list[str] = []

    def only_this_server(route: Route) -> None:
        host = urlparse(route.request.url).hostname
        if host in {"localhost", "127.0.0.1"}:
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_this_server)
    page.goto(f"{base}/api/docs/")
    expect(page).to_have_url(f"{base}/api-auth/login/?next=/api/docs/")
    page.fill("input[name=username]", "browser-reader")
    page.fill("input[name=password]", "pw-for-tests")
    page.click("input[type=submit], button[type=submit]")

    expect(page).to_have_url(f"{base}/api/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("CLEAR API", timeout=15_000)
    expect(page.locator(".swagger-ui .opblock-summary-path").first).to_be_visible()
    page.screenshot(path=str(tmp_path / "api-docs.png"))
    assert outside == [], f"the page reached outside this server: {outside}"


def test_anonymous_visitor_is_sent_to_login_and_a_wrong_password_is_refused(
    page: Page, live_server: object
) -> None:
    base = str(live_server)
    UserFactory.create(username="browser-reader", password="pw-for-tests")
    page.goto(f"{base}/api-auth/login/?next=/api/docs/")
    page.fill("input[name=username]", "browser-reader")
    page.fill("input[name=password]", "wrong")
    page.click("input[type=submit], button[type=submit]")

    expect(page.locator("body")).to_contain_text("Please enter a correct username and password")
    assert urlparse(page.url).path == "/api-auth/login/"
