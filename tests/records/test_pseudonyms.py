from __future__ import annotations

import pytest
from django.test import override_settings

from records.pseudonyms import pseudonym_for


def test_same_identifier_gives_same_pseudonym() -> None:
    assert pseudonym_for("MRN-000123") == pseudonym_for("  MRN-000123 ")


def test_pseudonym_does_not_contain_the_identifier() -> None:
    pseudonym = pseudonym_for("MRN-000123")
    assert "000123" not in pseudonym
    assert pseudonym.startswith("P-")
    assert len(pseudonym) == 18


def test_pseudonym_depends_on_the_installation_secret() -> None:
    with override_settings(CLEAR_PSEUDONYM_SECRET="installation-a"):
        first = pseudonym_for("MRN-000123")
    with override_settings(CLEAR_PSEUDONYM_SECRET="installation-b"):
        second = pseudonym_for("MRN-000123")
    assert first != second


def test_different_identifiers_give_different_pseudonyms() -> None:
    assert pseudonym_for("MRN-000123") != pseudonym_for("MRN-000124")


def test_empty_identifier_is_refused() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        pseudonym_for("   ")
