"""Spreadsheet formula guarding (records/csvsafe.py), shared by every CSV CLEAR writes."""

from __future__ import annotations

import pytest

from records.csvsafe import spreadsheet_safe, spreadsheet_unguarded


@pytest.mark.parametrize(
    ("value", "guarded"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("P-0123", "P-0123"),
        ("a=b", "a=b"),
        (None, ""),
        (3, "3"),
    ],
)
def test_cells_a_spreadsheet_would_run_are_prefixed_and_can_be_read_back(value, guarded):
    assert spreadsheet_safe(value) == guarded
    assert spreadsheet_unguarded(guarded) == ("" if value is None else str(value))


def test_a_quote_not_followed_by_a_formula_character_is_kept():
    assert spreadsheet_unguarded("'quoted") == "'quoted"
