"""The optional metadata sheet (CSV or XLSX) of an import.

One row per file (a `file`/`path` column: a relative path, its tail, or a bare filename) or per
examination (no file: the row describes the whole examination of `patient` + `examination`).
Headers are matched leniently: case, spaces, hyphens and common synonyms (`anatomical_site`,
`histology`, ...) all work. Problems are reported per row and never stop the import.

Patient identifiers from the sheet are source identifiers: the importer turns them into pseudonyms
and never stores them; error messages here name rows by number, never by identifier.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

# Canonical field -> accepted header spellings (after normalisation: lower case, runs of
# non-alphanumerics as one underscore).
HEADER_SYNONYMS: dict[str, tuple[str, ...]] = {
    "file": (
        "file",
        "path",
        "filename",
        "file_name",
        "filepath",
        "file_path",
        "relative_path",
        "image",
        "frame",
    ),
    "patient": ("patient", "patient_id", "patientid", "subject", "subject_id", "case", "case_id", "pid"),
    "examination": (
        "examination",
        "exam",
        "examination_code",
        "exam_code",
        "examination_id",
        "exam_id",
        "session",
        "procedure",
        "visit",
    ),
    "date": ("date", "exam_date", "examination_date", "study_date", "procedure_date"),
    "site": ("site", "anatomical_site", "anatomic_site", "anatomy", "location", "organ", "body_site"),
    "device": ("device", "probe", "endoscope", "scope", "instrument"),
    "reference_label": (
        "reference_label",
        "reference",
        "histology",
        "histopathology",
        "pathology",
        "label",
        "diagnosis",
        "ground_truth",
        "class",
    ),
    "reference_source": ("reference_source", "label_source", "reference_standard", "reference_type"),
}
_HEADER_TO_FIELD = {spelling: name for name, spellings in HEADER_SYNONYMS.items() for spelling in spellings}
_NON_ALNUM = re.compile(r"[^0-9a-z]+")
_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%d.%m.%Y", "%d/%m/%Y", "%d-%m-%Y", "%Y%m%d")
# Examination fields a row can set, as (metadata field, Examination attribute).
EXAMINATION_FIELDS = (
    ("date", "date"),
    ("site", "anatomical_site"),
    ("device", "device"),
    ("reference_label", "reference_label"),
    ("reference_source", "reference_source"),
)


class MetadataRejected(Exception):
    """The sheet as a whole cannot be read."""


@dataclass
class MetadataRow:
    line: int  # 1-based line / spreadsheet row, header included, as the user sees it
    file: str = ""
    patient: str = ""
    examination: str = ""
    date: dt.date | None = None
    site: str = ""
    device: str = ""
    reference_label: str = ""
    reference_source: str = ""

    def examination_values(self) -> dict[str, Any]:
        """Examination attributes this row sets (non-empty ones only)."""
        values = {attribute: getattr(self, name) for name, attribute in EXAMINATION_FIELDS}
        return {attribute: value for attribute, value in values.items() if value not in ("", None)}


@dataclass
class Metadata:
    file_rows: list[MetadataRow] = field(default_factory=list)
    examination_rows: list[MetadataRow] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # "row N: ..." messages
    warnings: list[str] = field(default_factory=list)


def normalise_header(header: object) -> str:
    return _NON_ALNUM.sub("_", str(header or "").strip().lower()).strip("_")


def normalise_file_key(value: str) -> PurePosixPath:
    """A `file` cell as a relative POSIX path (Windows separators and a leading ./ tolerated)."""
    parts = [part for part in value.strip().replace("\\", "/").split("/") if part not in {"", "."}]
    return PurePosixPath(*parts) if parts else PurePosixPath()


def read_metadata(path: Path) -> Metadata:
    """Parse a CSV or XLSX sheet; raises MetadataRejected when it cannot be read at all."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            rows = list(_csv_rows(path))
        elif suffix in {".xlsx", ".xlsm"}:
            rows = list(_xlsx_rows(path))
        else:
            raise MetadataRejected(f"metadata must be a .csv or .xlsx file, not {suffix or 'no suffix'}")
    except MetadataRejected:
        raise
    except (OSError, UnicodeDecodeError, csv.Error, ValueError, KeyError) as exc:
        raise MetadataRejected(f"cannot read the metadata file: {exc}") from exc
    return parse_rows(rows)


def _csv_rows(path: Path) -> Iterator[list[Any]]:
    text = path.read_text(encoding="utf-8-sig")
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:8192], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    yield from csv.reader(text.splitlines(), dialect)


def _xlsx_rows(path: Path) -> Iterator[list[Any]]:
    from openpyxl import load_workbook

    workbook = load_workbook(path, read_only=True, data_only=True)
    try:
        sheet = workbook.worksheets[0]
        for values in sheet.iter_rows(values_only=True):
            yield list(values)
    finally:
        workbook.close()


def parse_rows(rows: Iterable[list[Any]]) -> Metadata:
    result = Metadata()
    iterator = iter(rows)
    header = next(iterator, None)
    if header is None:
        raise MetadataRejected("the metadata file is empty")
    columns: dict[int, str] = {}
    unknown: list[str] = []
    for position, cell in enumerate(header):
        key = normalise_header(cell)
        if not key:
            continue
        name = _HEADER_TO_FIELD.get(key)
        if name is None:
            unknown.append(str(cell).strip())
        elif name in columns.values():
            result.warnings.append(f"column '{cell}' repeats the {name} column and is ignored")
        else:
            columns[position] = name
    if unknown:
        result.warnings.append(f"unknown columns ignored: {', '.join(unknown)}")
    if not columns:
        raise MetadataRejected(
            "no known column in the header (expected some of: " + ", ".join(HEADER_SYNONYMS) + ")"
        )

    for line, values in enumerate(iterator, start=2):
        cells = {name: values[position] for position, name in columns.items() if position < len(values)}
        if all(_text(value) == "" for value in cells.values()):
            continue
        if any("\x00" in _text(value) for value in cells.values()):
            # PostgreSQL cannot store a NUL character: such a cell would fail the import's writes.
            result.errors.append(f"row {line}: contains a NUL character, so the row is ignored")
            continue
        row = MetadataRow(line=line)
        for name, value in cells.items():
            if name == "date":
                try:
                    row.date = parse_date(value)
                except ValueError as exc:
                    result.errors.append(f"row {line}: {exc}")
            else:
                setattr(row, name, _text(value))
        if row.file:
            result.file_rows.append(row)
        elif row.examination:
            result.examination_rows.append(row)
        else:
            result.errors.append(
                f"row {line}: names neither a file nor an examination, so it applies to nothing"
            )
    return result


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # spreadsheet numbers: patient 12 must not become "12.0"
    return str(value).strip()


def parse_date(value: object) -> dt.date | None:
    """Dates as ISO or European day-first text, or spreadsheet date cells; '' is no date."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = _text(value)
    if not text:
        return None
    for date_format in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, date_format).date()
        except ValueError:
            continue
    try:
        return dt.datetime.fromisoformat(text).date()
    except ValueError:
        raise ValueError(f"'{text}' is not a date (use YYYY-MM-DD)") from None
