"""The project's handler404: a path under /api/ that matches no URL is answered in JSON, as every
other API error is (`{"detail": ...}`), so a script that calls a wrong path reads why instead of an
HTML page. Other paths keep Django's page. (With DEBUG, Django shows its debug page instead.)

CommonMiddleware runs after this, so "/api/frames" is still redirected to "/api/frames/".
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import page_not_found as django_page_not_found


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return django_page_not_found(request, exception)
