from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from config.health import healthz, readyz
from config.login_throttle import throttle_login_posts

# A database outage outside a view is a 503 as well (config/database_errors.py).
handler500 = "config.database_errors.server_error"
# An /api/ path that matches nothing is a JSON 404 like the API's own (config/not_found.py).
handler404 = "config.not_found.page_not_found"

urlpatterns = [
    # Liveness and readiness probes (config/health.py): no login, no secrets in the answer.
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    # The two login forms, throttled (config/login_throttle.py); listed before the URLs they shadow.
    path("admin/login/", throttle_login_posts(admin.site.login)),
    path(
        "api-auth/login/",
        throttle_login_posts(LoginView.as_view(template_name="rest_framework/login.html")),
    ),
    path("admin/", admin.site.urls),
    # Browser login for every user (the admin's login page admits staff only); the single-page app
    # has its own login screen (/login, POST /api/auth/session/), this one serves the API docs and
    # the browsable API.
    path("api-auth/", include("rest_framework.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The docs are pages for people: a visitor who is not logged in is sent to the login page
    # instead of getting a bare 403 (the schema itself still requires authentication).
    path("api/docs/", login_required(SpectacularSwaggerView.as_view(url_name="api-schema")), name="api-docs"),
    path("api/redoc/", login_required(SpectacularRedocView.as_view(url_name="api-schema")), name="api-redoc"),
    path("api/", include("records.urls")),
    path("api/", include("jobs.urls")),
    path("api/", include("annotations.urls")),
    path("api/", include("inference.urls")),
    path("api/", include("studies.urls")),
    path("api/", include("exports.urls")),
    path("api/", include("frontend.api_urls")),
    # The browser app: `/` and its client-side routes (listed prefixes only, see frontend/urls.py).
    path("", include("frontend.urls")),
]
