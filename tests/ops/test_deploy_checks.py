"""Production settings pass `manage.py check --deploy` and behave as HTTPS-only behind a TLS proxy.

Each check starts a fresh interpreter with production's environment: settings are read once, at
start-up, exactly as a deployed process reads them.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

from django.conf import settings

from tests.conftest import REPO_ROOT

HOST = "clear.example.org"


def _production_env(**extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CLEAR_", "DJANGO_"))}
    return {
        **clean,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "CLEAR_MODE": "production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "CLEAR_PSEUDONYM_SECRET": secrets.token_urlsafe(32),
        "DJANGO_ALLOWED_HOSTS": HOST,
        **extra,
    }


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_check_deploy_reports_nothing_for_production_settings() -> None:
    result = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], _production_env())

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    # The one silenced check is HSTS preload, the domain owner's decision (config/settings.py).
    assert "(1 silenced)" in result.stdout


def test_check_deploy_would_warn_without_the_production_hardening() -> None:
    """The check above can fail: turning the hardening off is reported."""
    env = _production_env(DJANGO_SECURE_SSL_REDIRECT="false", DJANGO_SECURE_HSTS_SECONDS="0")
    result = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)

    assert result.returncode != 0
    assert "security.W004" in result.stderr and "security.W008" in result.stderr


# Requests over plain HTTP, as the proxy forwards them, answered by a production process.
PROBE = f"""
import json
import django
django.setup()
from django.test import Client

client = Client(HTTP_HOST={HOST!r})
answers = {{}}
for name, path, headers in [
    ("healthz", "/healthz", {{}}),
    ("api_http", "/api/auth/me/", {{}}),
    ("api_via_tls_proxy", "/api/auth/me/", {{"X-Forwarded-Proto": "https"}}),
]:
    response = client.get(path, headers=headers)
    hsts = response.get("Strict-Transport-Security")
    answers[name] = [response.status_code, response.get("Location"), hsts]
print(json.dumps(answers))
"""


def test_production_redirects_to_https_except_the_probes_and_trusts_the_proxy_header() -> None:
    result = _run(["-c", PROBE], _production_env())
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout.strip().splitlines()[-1])

    assert answers["healthz"][0] == 200  # a probe inside the host speaks plain HTTP
    assert answers["api_http"][:2] == [301, f"https://{HOST}/api/auth/me/"]
    status, _, hsts = answers["api_via_tls_proxy"]
    assert status == 403  # reached the API (no login), not redirected
    assert hsts == "max-age=31536000; includeSubDomains"


def test_development_mode_keeps_plain_http() -> None:
    assert settings.PRODUCTION is False
    assert settings.SECURE_SSL_REDIRECT is False
    assert settings.SECURE_HSTS_SECONDS == 0
    assert settings.SECURE_PROXY_SSL_HEADER is None
    assert settings.SESSION_COOKIE_SECURE is False
