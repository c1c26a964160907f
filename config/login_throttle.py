"""Password guessing through Django's login forms (the admin's and the browsable API's) is throttled
like the API's logins (records.apis.LoginThrottle, frontend.apis.SessionLoginThrottle): those forms
are Django views, which DRF's throttles do not reach on their own."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBase
from rest_framework.throttling import AnonRateThrottle


class FormLoginThrottle(AnonRateThrottle):
    """Per client address, shared by both login forms."""

    scope = "form-login"
    rate = "20/minute"


def throttle_login_posts(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Answer 429 to a login form's POST beyond the rate; showing the form (GET) is never limited."""

    @wraps(view)
    def throttled(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method == "POST":
            throttle = FormLoginThrottle()
            if not throttle.allow_request(request, None):  # type: ignore[arg-type]
                wait = throttle.wait()
                response = HttpResponse(
                    "Too many login attempts from this address; try again later.",
                    status=429,
                    content_type="text/plain; charset=utf-8",
                )
                response["Retry-After"] = str(int(wait) + 1 if wait is not None else 60)
                return response
        return view(request, *args, **kwargs)

    return throttled
