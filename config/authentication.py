"""Token authentication in one hand-written query.

DRF's TokenAuthentication reads `Token.objects.select_related("user").get(key=...)`: about 1.5 ms of
Python per request on the reference machine, a tenth of the labelling loop's "next + submit" (see
bench/README.md). This reads the same row and user with one SQL statement and builds the same
instances; the answers (the user and token, 401 "Invalid token." or "User inactive or deleted.") are
DRF's.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token

from config.model_rows import cache_related, model_columns, table


class TokenAuthentication(authentication.TokenAuthentication):
    def authenticate_credentials(self, key: str) -> tuple[Any, Token]:
        user_model = get_user_model()
        token_columns = model_columns(Token, "t")
        user_columns = model_columns(user_model, "u")
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {token_columns.sql}, {user_columns.sql} FROM {table(Token)} t "  # noqa: S608 (only model identifiers)
                f"JOIN {table(user_model)} u ON u.id = t.user_id WHERE t.key = %s",
                [key],
            )
            row = cursor.fetchone()
        if row is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        token = token_columns.instance(row)
        user = user_columns.instance(row, token_columns.width)
        cache_related(token, "user", user)
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        return user, token
