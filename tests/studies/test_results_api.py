"""The results API of reader studies: who may see results and the CSV export, the parameters, and
the streamed CSV (columns, rows, formula-injection guard)."""

from __future__ import annotations

import csv
import io
from typing import Any, cast

import pytest

from records.models import Patient
from studies.models import StudyCase
from tests.factories import ProjectFactory
from tests.records.api_support import Role, client_for, member_of
from tests.studies.test_results import ARMS, CAM_ANSWERS, UNAIDED_ANSWERS, ResultsStudy

pytestmark = pytest.mark.django_db


@pytest.fixture
def crossed() -> ResultsStudy:
    setup = ResultsStudy(arms=ARMS).open()
    for arm, answers in (("unaided", UNAIDED_ANSWERS), ("cam", CAM_ANSWERS)):
        setup.read(arm, setup.alice, answers["alice"])
        setup.read(arm, setup.bob, answers["bob"])
    return setup


def results_url(setup: ResultsStudy) -> str:
    return f"/api/studies/{setup.study.pk}/results/"


def csv_url(setup: ResultsStudy) -> str:
    return f"/api/studies/{setup.study.pk}/readings.csv"


def test_only_the_projects_coordinators_and_admins_get_results_and_csv(crossed: ResultsStudy) -> None:
    coordinator = client_for(member_of(crossed.project, Role.COORDINATOR))
    admin = client_for(member_of(crossed.project, Role.ADMIN))
    reader = client_for(crossed.alice)
    outsider = client_for(member_of(ProjectFactory.create(), Role.COORDINATOR))
    for url in (results_url(crossed), csv_url(crossed)):
        assert coordinator.get(url).status_code == 200
        assert admin.get(url).status_code == 200
        assert reader.get(url).status_code == 403
        assert outsider.get(url).status_code == 404
        assert client_for(member_of(crossed.project, Role.READER)).get(url).status_code == 404
    assert coordinator.get("/api/studies/999999/results/").status_code == 404


def test_results_json_with_parameters(crossed: ResultsStudy) -> None:
    coordinator = client_for(member_of(crossed.project, Role.COORDINATOR))
    response = coordinator.get(
        results_url(crossed), {"question": "diagnosis", "resamples": "300", "seed": "4"}
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["parameters"] == {
        "question": "diagnosis", "positive": "neoplastic", "resamples": 300, "seed": 4, "level": 0.95,
    }  # fmt: skip
    assert body["study"]["locked"] is False and body["study"]["status"] == "open"
    unaided = next(c for c in body["conditions"] if c["key"] == "unaided")
    assert unaided["pooled"]["sensitivity"]["value"] == 0.75
    assert unaided["pooled"]["bootstrap"]["accuracy"]["n_resamples"] == 300
    assert body["comparisons"][0]["fleiss_kappa_difference"]["seed"] == 4
    assert "2 readers" in body["methods"]
    # positive=healthy swaps sensitivity and specificity.
    swapped = coordinator.get(results_url(crossed), {"positive": "healthy", "resamples": "100"}).json()
    alice = next(c for c in swapped["conditions"] if c["key"] == "cam")["readers"][0]
    assert alice["sensitivity"]["denominator"] == 2 and swapped["cases"]["positive"] == 2
    assert (
        next(c for c in swapped["conditions"] if c["key"] == "cam")["pooled"]["sensitivity"]["value"] == 0.75
    )


@pytest.mark.parametrize(
    ("parameters", "field"),
    [
        ({"question": "nope"}, "question"),
        ({"positive": "maybe"}, "positive"),
        ({"resamples": "50"}, "resamples"),
        ({"resamples": "10001"}, "resamples"),
        ({"seed": "x"}, "seed"),
    ],
)
def test_bad_parameters_are_a_400_naming_the_parameter(
    crossed: ResultsStudy, parameters: dict[str, str], field: str
) -> None:
    coordinator = client_for(member_of(crossed.project, Role.COORDINATOR))
    response = coordinator.get(results_url(crossed), parameters)
    assert response.status_code == 400 and field in response.json()


def test_the_csv_streams_every_reading_with_formula_cells_guarded(crossed: ResultsStudy) -> None:
    # A pseudonym a spreadsheet would run as a formula.
    case = StudyCase.objects.filter(study=crossed.study, is_training=False).order_by("id").first()
    assert case is not None
    Patient.objects.filter(pk=case.examination.patient_id).update(pseudonym="=HYPERLINK(1)")
    coordinator = client_for(member_of(crossed.project, Role.COORDINATOR))
    response = coordinator.get(csv_url(crossed), HTTP_ACCEPT="text/csv")
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    text = b"".join(cast(Any, response).streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 20  # 2 readers x 2 arms x (4 cases + 1 training case)
    assert list(rows[0]) == [
        "study_id", "study_name", "reader", "reader_position", "reader_group", "session_id", "arm",
        "assistance", "sequential", "period", "case_position", "case_id", "frame_id", "examination_id",
        "patient_pseudonym", "question", "phase", "value", "confidence", "time_ms", "ai_shown",
        "cam_visible_ms", "ai_predicted_value", "created_at", "updated_at", "version", "is_training_case",
        "reference_value", "reference_source",
    ]  # fmt: skip
    guarded = [row for row in rows if row["case_id"] == str(case.pk)]
    assert len(guarded) == 4 and {row["patient_pseudonym"] for row in guarded} == {"'=HYPERLINK(1)"}
    alice_unaided = [
        r
        for r in rows
        if r["reader"] == "alice" and r["arm"] == "unaided" and r["is_training_case"] == "False"
    ]
    assert sorted(r["time_ms"] for r in alice_unaided) == ["1000", "2000", "3000", "4000"]
    assert {r["reference_source"] for r in rows} == {"histopathology"}
    # The case position is the position in that reader's session order (training case first).
    assert {r["case_position"] for r in rows if r["is_training_case"] == "True"} == {"0"}
