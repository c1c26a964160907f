"""Fixtures shared by the whole suite. Tests run against PostgreSQL (DATABASE_URL from ./dev test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import override_settings

REPO_ROOT = Path(__file__).resolve().parent.parent
REALDATA = REPO_ROOT.parent / "shared" / "realdata"


@pytest.fixture
def realdata() -> Path:
    """The shared real samples, referenced by relative path and never copied into the repo."""
    if not REALDATA.is_dir():
        pytest.fail(f"{REALDATA} is missing: the real-data samples must sit beside the repository")
    return REALDATA


@pytest.fixture(autouse=True, scope="session")
def fast_password_hashing() -> Iterator[None]:
    """Passwords hashed with few iterations for the whole run (see tests/hashers.py)."""
    hashers = [
        "tests.hashers.FewIterationsPBKDF2PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    ]
    with override_settings(PASSWORD_HASHERS=hashers):
        yield


@pytest.fixture(autouse=True)
def media_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every test writes frames into its own MEDIA_ROOT."""
    root = tmp_path_factory.mktemp("media")
    uploads = tmp_path_factory.mktemp("uploads")
    with override_settings(MEDIA_ROOT=root, CLEAR_UPLOAD_ROOT=uploads):
        yield root
