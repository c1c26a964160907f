"""Serves the single-page app's built index.html for `/` and the app's client-side routes.

Vite builds `frontend/src` into `frontend/static/frontend/` (index.html plus hashed assets), which the
staticfiles app finds like any app's static folder: whitenoise serves the assets under
`/static/frontend/` (runserver, gunicorn) and the test live server serves them through the finders.
The page itself is this view, so that the CSRF cookie is always set before the app's first request.
"""

from __future__ import annotations

from pathlib import Path

from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_safe

BUILD_DIR = Path(__file__).resolve().parent / "static" / "frontend"
INDEX = BUILD_DIR / "index.html"

NOT_BUILT = (
    "The CLEAR browser app is not built: run `./dev install` (or `npm ci && npm run build` in "
    "frontend/), then reload."
)


@require_safe
@never_cache
@ensure_csrf_cookie
def spa(request: HttpRequest) -> HttpResponse:
    """index.html of the build, read per request (a rebuild shows without restarting the server; the
    file is a few hundred bytes). The app decides what to show from the URL."""
    try:
        html = INDEX.read_text(encoding="utf-8")
    except FileNotFoundError:
        return HttpResponse(NOT_BUILT, status=503, content_type="text/plain; charset=utf-8")
    return HttpResponse(html, content_type="text/html; charset=utf-8")
