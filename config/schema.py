"""The OpenAPI schema's view class (REST_FRAMEWORK's DEFAULT_SCHEMA_CLASS): drf-spectacular's, plus
the error answers that DRF itself gives and drf-spectacular does not document.

Without this the schema lists only the answers an endpoint's author wrote down, so a client (and
tests/security/test_schema_fuzz.py) meets undocumented 400, 403 and 404 answers on nearly every
operation. Each status is added where DRF can produce it for the operation:

- 403: the view needs a signed-in user (anonymous callers get 403, not 401: SessionAuthentication
  comes first and sends no challenge) or a role in the project;
- 404: a path with ids (no such object, or one the caller may not see), and cursor-paginated
  lists (an invalid `cursor`);
- 400: a request body or query parameters (DRF's validation errors and parse errors);
- 415: a request body (a Content-Type no parser accepts);
- 429: a throttled view (the login endpoints).

An error response an endpoint already documents without a body (an `OpenApiResponse` with only a
description) gets the body DRF sends for it, so the documented answer describes the real one.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ResolvedComponent
from rest_framework import serializers
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import AllowAny


class ErrorDetailSerializer(serializers.Serializer[Any]):
    """DRF's body for every error that is not a validation error."""

    detail = serializers.CharField(help_text="What went wrong, for people.")


# DRF's validation error body: messages per field (nested for nested input; `non_field_errors` or
# `detail` when no single field is at fault), or a list of messages.
VALIDATION_ERROR = ResolvedComponent(
    name="ValidationError",
    type=ResolvedComponent.SCHEMA,
    object="ValidationError",
    schema={
        "oneOf": [
            {
                "type": "object",
                "additionalProperties": {},
                "description": "Messages per field: a list of strings, or an object for nested input.",
            },
            {"type": "array", "items": {"type": "string"}, "description": "Messages."},
        ]
    },
)

# An id in a path: Django's `<int:...>` converter matches digits only, so a negative id is no route
# at all (Django's HTML 404, not the API's). SPECTACULAR_SETTINGS' PATH_CONVERTER_OVERRIDES gives
# converted paths this schema; views that declare their path ids use it too.
PATH_ID: dict[str, Any] = {"type": "integer", "minimum": 0}

DESCRIPTIONS = {
    "400": "Invalid input: the body says what is wrong with which field. Nothing was stored.",
    "403": "Not signed in, or the caller's role does not allow this.",
    "404": "No such object, or none the caller may see (or an invalid `cursor`).",
    "415": "The request's Content-Type is not one the endpoint reads.",
    "429": "Too many attempts from this client: wait and retry.",
}


class ClearAutoSchema(AutoSchema):
    def get_operation(self, *args: Any, **kwargs: Any) -> Any:
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        responses: dict[str, Any] = operation.setdefault("responses", {})
        for code in self._error_codes(operation):
            responses.setdefault(code, {"description": DESCRIPTIONS[code]})
        for code, response in responses.items():
            if code.startswith("4") and "content" not in response:
                response["content"] = {"application/json": {"schema": self._error_schema(code)}}
                response["description"] = response.get("description") or DESCRIPTIONS.get(code, "")
        return operation

    def _error_codes(self, operation: dict[str, Any]) -> list[str]:
        codes = []
        if "requestBody" in operation or any(p.get("in") == "query" for p in operation.get("parameters", [])):
            codes.append("400")
        if not all(isinstance(permission, AllowAny) for permission in self.view.get_permissions()):
            codes.append("403")
        paginator = self._get_paginator()
        cursor_list = isinstance(paginator, CursorPagination) and self._is_list_view()
        if "{" in self.path or cursor_list:
            codes.append("404")
        if "requestBody" in operation:
            codes.append("415")
        if self.view.get_throttles():
            codes.append("429")
        return codes

    def _error_schema(self, code: str) -> dict[str, Any]:
        if code == "400":
            self.registry.register_on_missing(VALIDATION_ERROR)
            return VALIDATION_ERROR.ref
        component = self.resolve_serializer(ErrorDetailSerializer, "response")
        return component.ref
