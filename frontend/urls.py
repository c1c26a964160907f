"""The app's client-side routes, all answered by the same page; anything else is not the app's.

Listed prefixes rather than a catch-all, so that /api/, /admin/, /static/ and /api-auth/ (and any
unknown path) keep their own answers, including their 404s.
"""

from django.urls import path, re_path

from frontend.views import spa

urlpatterns = [
    path("", spa, name="app"),
    re_path(
        r"^(?:login|projects|label|review|classify|studies|read|training)(?:/.*)?$", spa, name="app-route"
    ),
]
