"""Production mode refuses to start without its secrets; development gets marked defaults."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO_ROOT

CHECK = [sys.executable, "-c", "import django; django.setup(); print('started')"]


def _start(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CLEAR_", "DJANGO_"))}
    clean.update(DJANGO_SETTINGS_MODULE="config.settings", **env)
    return subprocess.run(CHECK, cwd=REPO_ROOT, env=clean, capture_output=True, text=True, timeout=60)


def test_production_refuses_to_start_without_pseudonym_secret() -> None:
    result = _start(CLEAR_MODE="production", DJANGO_SECRET_KEY="x" * 50, DJANGO_ALLOWED_HOSTS="clear.example")
    assert result.returncode != 0
    assert "CLEAR_PSEUDONYM_SECRET must be set when CLEAR_MODE=production" in result.stderr


def test_production_refuses_to_start_without_secret_key() -> None:
    result = _start(CLEAR_MODE="production", CLEAR_PSEUDONYM_SECRET="s" * 40)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


def test_production_starts_with_both_secrets() -> None:
    result = _start(
        CLEAR_MODE="production",
        CLEAR_PSEUDONYM_SECRET="s" * 40,
        DJANGO_SECRET_KEY="k" * 50,
        DJANGO_ALLOWED_HOSTS="clear.example",
    )
    assert result.returncode == 0, result.stderr
    assert "started" in result.stdout


def test_a_database_other_than_postgresql_or_sqlite_is_refused() -> None:
    result = _start(DATABASE_URL="mysql://clear@127.0.0.1:3306/clear")
    assert result.returncode != 0
    assert "DATABASE_URL must name PostgreSQL (or SQLite for the demo)" in result.stderr


def test_unknown_mode_is_refused() -> None:
    result = _start(CLEAR_MODE="staging")
    assert result.returncode != 0
    assert "CLEAR_MODE must be" in result.stderr


def test_production_refuses_the_published_development_secrets() -> None:
    """Copying a development value (this repository's default, Django's template key) is as bad as none."""
    for name, value in [
        ("DJANGO_SECRET_KEY", "dev-only-not-secret-django_secret_key"),
        ("DJANGO_SECRET_KEY", "django-insecure-" + "k" * 50),
        ("CLEAR_PSEUDONYM_SECRET", "dev-only-not-secret-clear_pseudonym_secret"),
    ]:
        secrets = {"DJANGO_SECRET_KEY": "k" * 50, "CLEAR_PSEUDONYM_SECRET": "s" * 40, name: value}
        result = _start(CLEAR_MODE="production", DJANGO_ALLOWED_HOSTS="clear.example", **secrets)
        assert result.returncode != 0, name
        assert f"{name} is a published development value" in result.stderr


def test_development_mode_marks_its_secrets_as_not_secret() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; "
            "print(settings.SECRET_KEY, settings.CLEAR_PSEUDONYM_SECRET)",
        ],
        cwd=REPO_ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith(("CLEAR_", "DJANGO_"))}
        | {"DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "dev-only-not-secret-django_secret_key",
        "dev-only-not-secret-clear_pseudonym_secret",
    ]
