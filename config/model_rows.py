"""Model instances from hand-written SQL, for the few hot paths where the ORM's own work dominates.

Building and compiling a queryset costs about half a millisecond of Python per statement on the
reference machine, more than PostgreSQL spends answering the labelling loop's look-ups (see
bench/README.md, "Next frame + submit label"). These helpers let such a path write its SQL once
while still handing real model instances to the rest of the code: the column list is generated from
the model's own fields (a new field is selected without touching the SQL), values pass through the
same converters the ORM applies (JSON, for one), and related instances are cached on each other as
`select_related` would, so later attribute access does not query again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Generic, TypeVar

from django.db import connection
from django.db.models import Model

M = TypeVar("M", bound=Model)

Converter = Callable[[Any, Any, Any], Any]


@dataclass(frozen=True)
class ModelColumns(Generic[M]):
    """Every concrete column of `model` under a table alias, in field order: `sql` for the SELECT
    list, `width` columns; `instance(row, start)` builds the model from row[start:start + width]."""

    model: type[M]
    alias: str
    sql: str
    attnames: tuple[str, ...]
    converters: tuple[tuple[Any, tuple[Converter, ...]], ...]
    primary_key: int  # the primary key's position among the columns

    @property
    def width(self) -> int:
        return len(self.attnames)

    def instance(self, row: Sequence[Any], start: int = 0) -> M:
        values = list(row[start : start + self.width])
        for position, (expression, functions) in enumerate(self.converters):
            if functions:
                value = values[position]
                for function in functions:
                    value = function(value, expression, connection)
                values[position] = value
        return self.model.from_db(connection.alias, self.attnames, values)

    def instance_or_none(self, row: Sequence[Any], start: int = 0) -> M | None:
        """None where an outer join found no row (the primary key column is NULL)."""
        return None if row[start + self.primary_key] is None else self.instance(row, start)


@cache
def model_columns(model: type[M], alias: str) -> ModelColumns[M]:
    quote = connection.ops.quote_name
    fields = model._meta.concrete_fields
    converters = []
    for field in fields:
        expression = field.get_col(alias)
        field_converters = field.get_db_converters(connection)  # type: ignore[attr-defined]
        functions = (*connection.ops.get_db_converters(expression), *field_converters)
        converters.append((expression, tuple(functions)))
    return ModelColumns(
        model=model,
        alias=alias,
        sql=", ".join(f"{quote(alias)}.{quote(field.column)}" for field in fields),
        attnames=tuple(field.attname for field in fields),
        converters=tuple(converters),
        primary_key=[field.primary_key for field in fields].index(True),
    )


def cache_related(instance: Model, field_name: str, related: Model | None) -> None:
    """Remember `related` as `instance.<field_name>`, as select_related does."""
    instance._meta.get_field(field_name).set_cached_value(instance, related)  # type: ignore[union-attr]


def table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)
