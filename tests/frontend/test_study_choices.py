"""The study pages offer the designs, case units and arm assistances the API takes: the frontend's
lists (frontend/src/studyapi.ts) name exactly the model's choices, with the model's labels."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.db.models import TextChoices

from studies.models import ReaderStudy, StudyArm

STUDY_API = Path(__file__).resolve().parents[2] / "frontend" / "src" / "studyapi.ts"


def frontend_choices(constant: str) -> list[tuple[str, str]]:
    source = STUDY_API.read_text()
    block = re.search(rf"export const {constant} = \[(.*?)\] as const;", source, re.S)
    assert block, f"{constant} is missing from {STUDY_API.name}"
    return re.findall(r'\{ value: "([^"]+)", label: "([^"]+)" \}', block.group(1))


@pytest.mark.parametrize(
    ("constant", "choices"),
    [
        ("DESIGNS", ReaderStudy.Design),
        ("CASE_UNITS", ReaderStudy.CaseUnit),
        ("ASSISTANCES", StudyArm.Assistance),
    ],
)
def test_the_frontend_offers_the_models_choices(constant: str, choices: type[TextChoices]) -> None:
    assert frontend_choices(constant) == [(value, str(label)) for value, label in choices.choices]
