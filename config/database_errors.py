"""A request that finds the database gone (restart, failover, network) is answered 503, not 500.

`DatabaseUnavailableMiddleware.process_exception` turns an OperationalError or InterfaceError raised
by a view (DRF re-raises what it does not handle) into `503 {"detail": ...}` with Retry-After, so
clients (the browser app retries saves) know to try again. `server_error`, the project's handler500,
does the same for such an error raised outside a view, where Django would otherwise render its 500
page (production; with DEBUG Django shows its debug page there instead).

Either way the broken connection is closed at once. The next request opens a fresh one
(CONN_HEALTH_CHECKS also checks a persistent connection before reuse), so service resumes by itself
as soon as PostgreSQL is back.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from django.conf import settings
from django.db import InterfaceError, OperationalError, connections
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.views.defaults import server_error as django_server_error

logger = logging.getLogger(__name__)

DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)
DETAIL = "The database is unavailable for the moment; please retry shortly."


def database_unavailable_response() -> JsonResponse:
    for conn in connections.all(initialized_only=True):
        # (Inside a transaction, e.g. a test's, the connection is not ours to close.)
        if not conn.in_atomic_block:
            conn.close_if_unusable_or_obsolete()
    response = JsonResponse({"detail": DETAIL}, status=503)
    response["Retry-After"] = str(settings.CLEAR_DATABASE_RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, DATABASE_UNAVAILABLE):
            return None
        # The error names hosts and users: the log gets it, the client only the 503.
        logger.warning("database unavailable during %s %s: %r", request.method, request.path, exception)
        return database_unavailable_response()


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: a database outage outside a view is a 503 too; anything else Django's 500 page."""
    exception = sys.exc_info()[1]
    if isinstance(exception, DATABASE_UNAVAILABLE):
        logger.warning("database unavailable during %s %s: %r", request.method, request.path, exception)
        return database_unavailable_response()
    return django_server_error(request)
