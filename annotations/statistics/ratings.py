"""Ratings in long form (one row per item, rater and value), validated into a raters x items table.

Every agreement and accuracy statistic works on a :class:`RatingsTable`: the categories in their
declared order (the scale), each rating as the index of its category (``MISSING`` where a rater did
not rate an item), and per item the reference standard and the patient (the cluster that the
bootstrap resamples). Bad input raises :class:`StatisticsInputError` with a message that says what
is wrong and where; nothing is silently dropped or guessed.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, TextIO, cast, get_args

import numpy as np
from numpy.typing import NDArray

MeasurementLevel = Literal["nominal", "ordinal", "interval", "ratio"]
MEASUREMENT_LEVELS: tuple[str, ...] = get_args(MeasurementLevel)
MISSING = -1
REQUIRED_COLUMNS = ("item", "rater", "value")
OPTIONAL_COLUMNS = ("reference", "patient", "modality")


class StatisticsInputError(ValueError):
    """The ratings cannot give the requested statistic; the message says why, in the user's terms."""


def canonical_value(raw: object) -> str:
    """The key a value is matched by: stripped text, and numbers written one way ("2.0" == "2").

    Numeric scales arrive as 1, "1" or "1.0" depending on the source (CSV, JSON, a model); matching
    them as text would make "1.0" an unknown category of the declared scale 1..5.
    """
    text = str(raw).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    if not math.isfinite(number):
        return text
    if number.is_integer():
        return str(int(number))
    return repr(number)


def _numeric(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def measurement_level(raw: str) -> MeasurementLevel:
    if raw not in MEASUREMENT_LEVELS:
        raise StatisticsInputError(
            f"Unknown measurement level {raw!r}; use one of {', '.join(MEASUREMENT_LEVELS)}."
        )
    return cast(MeasurementLevel, raw)


@dataclass(frozen=True)
class RatingRecord:
    """One row of a long-form ratings file (missing optional fields are None)."""

    item: str
    rater: str
    value: str | None
    reference: str | None = None
    patient: str | None = None
    modality: str | None = None


@dataclass(frozen=True, eq=False)
class RatingsTable:
    """Ratings of ``raters`` x ``items`` as category indices into ``categories`` (``MISSING`` if none).

    ``categories`` is the scale in its order: declared by the caller (``categories_declared``) or, if
    none was declared, the observed values sorted (numerically when all are numbers).
    ``references[i]`` is the reference-standard value of item ``i`` (None if unknown) and
    ``patients[i]`` its cluster for the bootstrap; both are None when the input has no such column.
    """

    items: tuple[str, ...]
    raters: tuple[str, ...]
    categories: tuple[str, ...]
    codes: NDArray[np.int64]
    level: MeasurementLevel = "nominal"
    categories_declared: bool = False
    references: tuple[str | None, ...] | None = None
    patients: tuple[str, ...] | None = None

    @property
    def n_raters(self) -> int:
        return len(self.raters)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_categories(self) -> int:
        return len(self.categories)

    def category_counts(self) -> NDArray[np.float64]:
        """items x categories: how many raters put each item in each category (missing not counted)."""
        counts = np.zeros((self.n_items, self.n_categories + 1), dtype=np.float64)
        item_index = np.broadcast_to(np.arange(self.n_items), self.codes.shape)
        # Missing (-1) lands in the extra last column, which is then dropped.
        np.add.at(counts, (item_index.ravel(), self.codes.ravel()), 1.0)
        return counts[:, : self.n_categories]

    def rater_index(self, rater: str) -> int:
        try:
            return self.raters.index(rater)
        except ValueError:
            raise StatisticsInputError(f"No rater {rater!r} in the ratings.") from None

    def numeric_categories(self) -> NDArray[np.float64]:
        """The categories as numbers, for interval/ratio statistics; an error if one is not a number."""
        numbers = [_numeric(category) for category in self.categories]
        if any(number is None for number in numbers):
            non_numeric = [c for c, n in zip(self.categories, numbers, strict=True) if n is None]
            raise StatisticsInputError(
                f"An {self.level} scale needs numeric values; not numbers: {', '.join(non_numeric[:5])}."
            )
        return np.array(numbers, dtype=np.float64)

    def with_raters(self, raters: Sequence[str]) -> RatingsTable:
        """The same items with only `raters` (in that order)."""
        rows = [self.rater_index(rater) for rater in raters]
        return RatingsTable(
            items=self.items,
            raters=tuple(raters),
            categories=self.categories,
            codes=self.codes[rows],
            level=self.level,
            categories_declared=self.categories_declared,
            references=self.references,
            patients=self.patients,
        )


def _sorted_observed(values: Iterable[str]) -> tuple[str, ...]:
    distinct = set(values)
    numbers = {value: _numeric(value) for value in distinct}
    if all(number is not None for number in numbers.values()):
        return tuple(sorted(distinct, key=lambda value: cast(float, numbers[value])))
    return tuple(sorted(distinct))


def _declared_scale(categories: Sequence[object]) -> tuple[str, ...]:
    scale = tuple(canonical_value(category) for category in categories)
    if any(category == "" for category in scale):
        raise StatisticsInputError("A declared category is empty.")
    duplicates = sorted({category for category in scale if scale.count(category) > 1})
    if duplicates:
        raise StatisticsInputError(f"Categories declared twice: {', '.join(duplicates)}.")
    return scale


def _per_item_attribute(
    records: Sequence[RatingRecord], items: Sequence[str], attribute: str
) -> tuple[str | None, ...] | None:
    """The one value of `attribute` per item; None if no record carries it; an error if an item has two."""
    if all(getattr(record, attribute) is None for record in records):
        return None
    by_item: dict[str, str | None] = {}
    for record in records:
        raw = getattr(record, attribute)
        value = None if raw is None or str(raw).strip() == "" else canonical_value(raw)
        if value is None:
            by_item.setdefault(record.item, None)
            continue
        known = by_item.get(record.item)
        if known is not None and known != value:
            raise StatisticsInputError(
                f"Item {record.item!r} has two different {attribute} values: {known!r} and {value!r}."
            )
        by_item[record.item] = value
    return tuple(by_item.get(item) for item in items)


def ratings_table_from_records(
    records: Iterable[RatingRecord],
    *,
    categories: Sequence[object] | None = None,
    level: MeasurementLevel = "nominal",
) -> RatingsTable:
    """Validate long-form records into a :class:`RatingsTable`.

    An empty value is a missing rating. A value outside the declared categories, one rater rating the
    same item twice, an item with two references or two patients, a patient column with a blank, or
    an ordinal scale of words without a declared order is a :class:`StatisticsInputError`.
    """
    level = measurement_level(level)
    rows = list(records)
    if not rows:
        raise StatisticsInputError("No ratings: the input has no rows.")
    items = tuple(dict.fromkeys(str(record.item).strip() for record in rows))
    raters = tuple(dict.fromkeys(str(record.rater).strip() for record in rows))
    if "" in items:
        raise StatisticsInputError("A row has an empty item.")
    if "" in raters:
        raise StatisticsInputError("A row has an empty rater.")
    rows = [
        RatingRecord(
            item=str(r.item).strip(),
            rater=str(r.rater).strip(),
            value=None if r.value is None or str(r.value).strip() == "" else canonical_value(r.value),
            reference=r.reference,
            patient=r.patient,
            modality=r.modality,
        )
        for r in rows
    ]
    observed = [record.value for record in rows if record.value is not None]
    if categories is not None and len(categories) > 0:
        scale = _declared_scale(categories)
        unknown = sorted(set(observed) - set(scale))
        if unknown:
            raise StatisticsInputError(
                f"Values outside the declared categories ({', '.join(scale)}): {', '.join(unknown[:10])}."
            )
        declared = True
    else:
        if not observed:
            raise StatisticsInputError("All ratings are missing: there is nothing to compare.")
        scale = _sorted_observed(observed)
        declared = False
        if level == "ordinal" and any(_numeric(value) is None for value in scale):
            raise StatisticsInputError(
                "An ordinal scale of words has no natural order: declare the categories in scale order."
            )
    item_position = {item: index for index, item in enumerate(items)}
    rater_position = {rater: index for index, rater in enumerate(raters)}
    category_position = {category: index for index, category in enumerate(scale)}
    codes = np.full((len(raters), len(items)), MISSING, dtype=np.int64)
    seen: set[tuple[int, int]] = set()
    for record in rows:
        cell = (rater_position[record.rater], item_position[record.item])
        if cell in seen:
            raise StatisticsInputError(f"Rater {record.rater!r} rated item {record.item!r} more than once.")
        seen.add(cell)
        if record.value is not None:
            codes[cell] = category_position[record.value]
    references = _per_item_attribute(rows, items, "reference")
    patients = _per_item_attribute(rows, items, "patient")
    if patients is not None and any(patient is None for patient in patients):
        missing = [item for item, patient in zip(items, patients, strict=True) if patient is None]
        raise StatisticsInputError(f"Items without a patient: {', '.join(missing[:10])}.")
    return RatingsTable(
        items=items,
        raters=raters,
        categories=scale,
        codes=codes,
        level=level,
        categories_declared=declared,
        references=references,
        patients=cast("tuple[str, ...] | None", patients),
    )


def ratings_table_from_matrix(
    matrix: Sequence[Sequence[object | None]],
    *,
    raters: Sequence[str] | None = None,
    categories: Sequence[object] | None = None,
    level: MeasurementLevel = "nominal",
) -> RatingsTable:
    """A raters x items matrix (None or NaN = missing) as a table; items are named by position."""
    records: list[RatingRecord] = []
    names = list(raters) if raters is not None else [f"rater{index + 1}" for index in range(len(matrix))]
    if len(names) != len(matrix):
        raise StatisticsInputError(f"{len(names)} rater names for {len(matrix)} rows of ratings.")
    for name, row in zip(names, matrix, strict=True):
        for item_index, value in enumerate(row):
            is_missing = value is None or (isinstance(value, float) and math.isnan(value))
            records.append(RatingRecord(str(item_index + 1), name, None if is_missing else str(value)))
    return ratings_table_from_records(records, categories=categories, level=level)


@dataclass(frozen=True)
class ParsedRatings:
    """A ratings file: all records, and whether it carries the optional columns."""

    records: tuple[RatingRecord, ...]
    columns: tuple[str, ...]

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.modality for r in self.records if r.modality is not None))


def parse_ratings_csv(stream: TextIO | str) -> ParsedRatings:
    """Read a long-form ratings CSV with a header: item, rater, value [, reference, patient, modality]."""
    text_stream = io.StringIO(stream) if isinstance(stream, str) else stream
    try:
        reader = csv.DictReader(text_stream)
        header = [name.strip().lower() for name in (reader.fieldnames or [])]
    except csv.Error as error:
        raise StatisticsInputError(f"Not a readable CSV file: {error}.") from None
    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    if missing:
        raise StatisticsInputError(
            f"The CSV needs the columns item, rater, value; missing: {', '.join(missing)} "
            f"(found: {', '.join(header) or 'no header'})."
        )
    raw_names = reader.fieldnames or []
    column_of = {name.strip().lower(): name for name in raw_names}
    records: list[RatingRecord] = []
    try:
        for line_number, row in enumerate(reader, start=2):
            if None in row:
                raise StatisticsInputError(f"Line {line_number} has more fields than the header.")

            def cell(column: str, row: dict[str, str] = row) -> str | None:
                name = column_of.get(column)
                if name is None:
                    return None
                value = row.get(name)
                return None if value is None or value.strip() == "" else value.strip()

            item, rater = cell("item"), cell("rater")
            if item is None or rater is None:
                raise StatisticsInputError(f"Line {line_number} has no item or no rater.")
            records.append(
                RatingRecord(
                    item=item,
                    rater=rater,
                    value=cell("value"),
                    reference=cell("reference"),
                    patient=cell("patient"),
                    modality=cell("modality"),
                )
            )
    except csv.Error as error:
        raise StatisticsInputError(f"Not a readable CSV file: {error}.") from None
    if not records:
        raise StatisticsInputError("No ratings: the CSV has a header but no rows.")
    present = tuple(column for column in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if column in header)
    return ParsedRatings(records=tuple(records), columns=present)
