"""JSON conversion shared by every statistics result.

Results are frozen dataclasses. A statistic that cannot be computed from the data at hand is NaN with
a ``reason``; JSON has no NaN, so :func:`jsonable` writes ``null`` instead and the reason travels
next to it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np


def jsonable(value: Any) -> Any:
    """Plain JSON types from results, numpy scalars/arrays and containers; NaN and infinities -> None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: jsonable(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return [jsonable(item) for item in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return number if math.isfinite(number) else None
    return value


class JsonResult:
    """Mixin for the result dataclasses: ``to_dict()`` gives the JSON-ready form."""

    def to_dict(self) -> dict[str, Any]:
        converted = jsonable(self)
        assert isinstance(converted, dict)
        return converted
