from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def fresh_throttles() -> Iterator[None]:
    """Login throttles count per client address in the cache; every test starts from zero."""
    cache.clear()
    yield
    cache.clear()
