"""CSV cells that a spreadsheet will not run as formulas (CSV injection, OWASP).

Every CSV CLEAR writes (reader-study readings, dataset exports) passes its cells through
`spreadsheet_safe`; `spreadsheet_unguarded` undoes it for a CLEAR import reading such a CSV back.
"""

from __future__ import annotations

# A spreadsheet runs a cell starting with one of these as a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> str:
    """The cell as text, prefixed with ' where a spreadsheet would read it as a formula."""
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(FORMULA_PREFIXES) else text


def spreadsheet_unguarded(text: str) -> str:
    """The cell as it was before `spreadsheet_safe` (a text that itself began with ' followed by a
    formula character cannot be told apart, and loses its ')."""
    if text.startswith("'") and text[1:].startswith(FORMULA_PREFIXES):
        return text[1:]
    return text
