"""Pseudonyms: a keyed HMAC of the source patient identifier.

The key is the installation's CLEAR_PSEUDONYM_SECRET, so the same hospital number always gives the
same pseudonym here (re-imports find the same patient) while nobody without the key can link a
pseudonym back to the number. The source identifier itself is never stored.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata

from django.conf import settings

PSEUDONYM_PREFIX = "P-"
PSEUDONYM_HEX_CHARS = 16  # 64 bits: collisions are negligible for any realistic cohort.


def normalise_identifier(source_identifier: str) -> str:
    """Whitespace and Unicode forms must not make two pseudonyms for the same patient."""
    return unicodedata.normalize("NFC", source_identifier).strip()


def pseudonym_for(source_identifier: str, *, secret: str | None = None) -> str:
    identifier = normalise_identifier(source_identifier)
    if not identifier:
        raise ValueError("a patient identifier must not be empty")
    key = (secret if secret is not None else settings.CLEAR_PSEUDONYM_SECRET).encode()
    digest = hmac.new(key, identifier.encode(), hashlib.sha256).hexdigest()
    return PSEUDONYM_PREFIX + digest[:PSEUDONYM_HEX_CHARS]
