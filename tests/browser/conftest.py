"""Headless Chromium for browser tests: Debian's /usr/bin/chromium driven by Playwright (never a
downloaded browser; ./dev test installs the Debian package)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.docs_shots import VIEWPORT, docs_screenshots_enabled

CHROMIUM = os.environ.get("CLEAR_CHROMIUM", "/usr/bin/chromium")

# Playwright's sync API runs an event loop in the test thread; Django's ORM refuses to run while
# one is running unless told that this single-threaded use is safe (it is: one test, one thread).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: ./dev test installs Debian's chromium package")
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        # Without these, Chromium keeps trying to reach Google's services, which this closed
        # network refuses; they change nothing a page under test can see.
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    """The guides' screenshots share one viewport; an ordinary run keeps Playwright's default."""
    if not docs_screenshots_enabled():
        return browser_context_args
    return {**browser_context_args, "viewport": VIEWPORT}


# --- The browser app ------------------------------------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
FRONTEND = REPO_ROOT / "frontend"
FRONTEND_INDEX = FRONTEND / "static" / "frontend" / "index.html"
BUILD_HINT = "run `./dev install` (or `npm ci && npm run build` in frontend/); `./dev test` does it first"


@pytest.fixture
def app_built() -> Path:
    """The Vite build the tests drive: missing or older than its sources is a failure that says so."""
    if not FRONTEND_INDEX.is_file():
        pytest.fail(f"The browser app is not built ({FRONTEND_INDEX} is missing): {BUILD_HINT}")
    built = FRONTEND_INDEX.stat().st_mtime
    sources = [FRONTEND / "index.html", *(FRONTEND / "src").rglob("*")]
    stale = [
        path
        for path in sources
        if path.is_file() and not path.name.endswith(".test.ts") and path.stat().st_mtime > built
    ]
    if stale:
        pytest.fail(f"The browser app's build is older than {stale[0].relative_to(REPO_ROOT)}: {BUILD_HINT}")
    return FRONTEND_INDEX


@pytest.fixture(autouse=True)
def fresh_throttles() -> Iterator[None]:
    """The login throttle counts per address in the (in-process) cache the live server shares."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()
