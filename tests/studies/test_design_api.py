"""The reader-study design API: a coordinator's whole flow, what readers may see, and refusals."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from records.models import Project
from studies.models import ReaderStudy, ReadingSession
from tests.factories import ProjectFactory
from tests.records.api_support import Role, client_for, member_of
from tests.studies.test_design import designed_study, diagnosis_task, frames_of_patients

pytestmark = pytest.mark.django_db


def test_a_coordinator_designs_and_opens_a_crossover_study() -> None:
    project = ProjectFactory.create()
    diagnosis_task(project)
    frames = frames_of_patients(project, patients=3, frames_each=2)
    readers = [member_of(project, Role.READER) for _ in range(2)]
    coordinator = client_for(member_of(project, Role.COORDINATOR))

    created = coordinator.post(
        "/api/studies/",
        {"project": project.pk, "name": "Lite0 aid", "design": "crossover", "washout_days": 28},
        format="json",
    )
    assert created.status_code == 201, created.content
    url = f"/api/studies/{created.json()['id']}/"
    steps = [
        coordinator.put(url + "questions/", {"questions": [{"task": "diagnosis"}]}, format="json"),
        coordinator.put(
            url + "arms/",
            {
                "arms": [
                    {"name": "unaided", "assistance": "unaided"},
                    {"name": "aided", "assistance": "prediction_and_cam", "sequential": True},
                ]
            },
            format="json",
        ),
        coordinator.post(
            url + "cases/",
            {"cases": [{"frame": frame.pk, "is_training": index == 0} for index, frame in enumerate(frames)]},
            format="json",
        ),
        coordinator.put(
            url + "readers/", {"readers": [{"user": user.pk} for user in readers]}, format="json"
        ),
        coordinator.post(url + "open/"),
    ]

    assert [step.status_code for step in steps] == [200, 200, 201, 200, 200], [s.content for s in steps]
    study = steps[-1].json()
    assert study["status"] == "open" and study["case_count"] == 6 and study["training_case_count"] == 1
    assert [arm["sequential"] for arm in study["arms"]] == [False, True]
    sessions = coordinator.get(url + "sessions/").json()
    assert len(sessions) == 4
    assert {(s["reader_username"], s["period"], s["arm"]["name"]) for s in sessions} == {
        (readers[0].username, 1, "unaided"),
        (readers[0].username, 2, "aided"),
        (readers[1].username, 1, "aided"),
        (readers[1].username, 2, "unaided"),
    }
    # Frozen once open.
    frozen = coordinator.put(url + "arms/", {"arms": [{"name": "x", "assistance": "unaided"}]}, format="json")
    assert frozen.status_code == 409


def test_a_reader_sees_their_own_sessions_and_the_washout_refusal() -> None:
    study, users = designed_study(washout_days=14)
    reader = client_for(users[0])
    other_reader = client_for(users[1])
    draft = reader.get(f"/api/studies/{study.pk}/")
    assert draft.status_code == 404  # a draft is the coordinator's business

    client_for(member_of(study.project, Role.COORDINATOR)).post(f"/api/studies/{study.pk}/open/")

    mine = reader.get("/api/reading-sessions/").json()["results"]
    assert {row["reader"] for row in mine} == {users[0].pk} and len(mine) == 2
    first, second = sorted(mine, key=lambda row: row["period"])
    assert first["available"] and not second["available"]
    assert second["unavailable_reason"] == "Finish period 1 first."
    assert reader.post(f"/api/reading-sessions/{first['id']}/start/").status_code == 200
    assert other_reader.post(f"/api/reading-sessions/{first['id']}/start/").status_code == 404
    ReadingSession.objects.filter(pk=first["id"]).update(completed_at=timezone.now() - timedelta(days=2))

    refused = reader.post(f"/api/reading-sessions/{second['id']}/start/")

    assert refused.status_code == 409
    assert refused.json()["detail"].startswith("Washout: period 2 opens on")
    assert refused.json()["available_from"] is not None


def test_readers_never_get_the_reference_standard_nor_design_the_study() -> None:
    study, users = designed_study()
    client_for(member_of(study.project, Role.COORDINATOR)).post(f"/api/studies/{study.pk}/open/")
    reader = client_for(users[0])

    detail = reader.get(f"/api/studies/{study.pk}/")

    assert detail.status_code == 200 and "reference" not in detail.content.decode()
    assert reader.get(f"/api/studies/{study.pk}/cases/").status_code == 403
    assert reader.get(f"/api/studies/{study.pk}/sessions/").status_code == 403
    sessions = reader.get("/api/reading-sessions/")
    assert "reference" not in sessions.content.decode()


def _outsider_calls(study: ReaderStudy) -> list[Any]:
    outsider = client_for(member_of(ProjectFactory.create(), Role.COORDINATOR))
    url = f"/api/studies/{study.pk}/"
    return [
        outsider.get(url),
        outsider.get(url + "cases/"),
        outsider.post(url + "open/"),
        outsider.put(url + "arms/", {"arms": []}, format="json"),
    ]


def test_another_projects_coordinator_gets_404_everywhere() -> None:
    study, _ = designed_study()

    assert [response.status_code for response in _outsider_calls(study)] == [404, 404, 404, 404]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"design": "crossover", "washout_days": 400}, "detail"),
        ({"design": "split_plot", "reader_groups": 1}, "detail"),
        ({"design": "latin"}, "design"),
    ],
)
def test_a_bad_design_is_a_400_and_nothing_is_stored(body: dict[str, Any], field: str) -> None:
    project: Project = ProjectFactory.create()
    coordinator = client_for(member_of(project, Role.COORDINATOR))

    response = coordinator.post("/api/studies/", {"project": project.pk, "name": "s", **body}, format="json")

    assert response.status_code == 400 and field in response.json()
    assert not ReaderStudy.objects.exists()


def test_a_reader_may_not_create_a_study() -> None:
    project = ProjectFactory.create()
    reader = client_for(member_of(project, Role.READER))

    response = reader.post(
        "/api/studies/", {"project": project.pk, "name": "s", "design": "fully_crossed"}, format="json"
    )

    assert response.status_code == 403
