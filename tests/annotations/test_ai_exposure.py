"""AI exposure recorded with an annotation (`ai_shown`, `cam_visible_ms`): stored, in the history, and
refused where the project hides model output from the annotator (the server decides blinding, not
the page)."""

from __future__ import annotations

from typing import Any

import pytest

from annotations.models import Annotation, IdempotencyRecord
from records.models import Project, ProjectMembership
from tests.annotations.support import frame_in, quality_task
from tests.factories import ProjectFactory
from tests.records.api_support import client_for, member_of

pytestmark = pytest.mark.django_db
Role = ProjectMembership.Role
Ai = Project.AiAssistance


def scene(ai_assistance: str, role: str = Role.READER) -> dict[str, Any]:
    project = ProjectFactory.create(ai_assistance=ai_assistance)
    task = quality_task(project)
    frame = frame_in(project)
    user = member_of(project, role)
    return {
        "task": task,
        "user": user,
        "client": client_for(user),
        "url": f"/api/frames/{frame.pk}/annotations/{task.pk}/",
    }


def put(setup: dict[str, Any], body: dict[str, Any], **headers: str) -> Any:
    payload = {"value": "good", "confidence": 4, **body}
    return setup["client"].put(setup["url"], payload, format="json", headers=headers)


def test_cam_time_is_stored_answered_and_kept_in_the_history():
    setup = scene(Ai.PREDICTION_AND_CAM)

    created = put(setup, {"ai_shown": True, "cam_visible_ms": 1500})
    changed = put(setup, {"value": "bad", "ai_shown": True, "cam_visible_ms": 4200, "version": 1})

    assert created.status_code == 201, created.content
    assert (created.json()["ai_shown"], created.json()["cam_visible_ms"]) == (True, 1500)
    assert changed.status_code == 200 and changed.json()["cam_visible_ms"] == 4200
    annotation = Annotation.objects.get()
    assert (annotation.ai_shown, annotation.cam_visible_ms) == (True, 4200)
    assert [row.cam_visible_ms for row in annotation.history.order_by("history_date")] == [1500, 4200]
    coordinator = client_for(member_of(annotation.task.project, Role.COORDINATOR))
    history = coordinator.get(f"/api/annotations/{annotation.pk}/history/").json()
    assert history[0]["state"]["cam_visible_ms"] == 1500
    assert {"field": "cam_visible_ms", "old": 1500, "new": 4200} in history[1]["changes"]


def test_without_exposure_the_fields_default_to_not_shown():
    setup = scene(Ai.PREDICTION_AND_CAM)

    response = put(setup, {})

    assert response.status_code == 201
    assert (response.json()["ai_shown"], response.json()["cam_visible_ms"]) == (False, 0)


def test_an_idempotent_replay_answers_the_stored_cam_time_and_another_cam_time_is_another_payload():
    setup = scene(Ai.PREDICTION_AND_CAM)
    body = {"ai_shown": True, "cam_visible_ms": 800}

    first = put(setup, body, **{"Idempotency-Key": "k1"})
    replay = put(setup, body, **{"Idempotency-Key": "k1"})
    other = put(setup, {**body, "cam_visible_ms": 900}, **{"Idempotency-Key": "k1"})

    assert first.status_code == replay.status_code == 201
    assert replay["Idempotent-Replayed"] == "true" and replay.json()["cam_visible_ms"] == 800
    assert other.status_code == 422
    assert Annotation.objects.count() == 1


def test_cam_time_without_ai_shown_is_refused():
    setup = scene(Ai.PREDICTION_AND_CAM)

    response = put(setup, {"ai_shown": False, "cam_visible_ms": 300})

    assert response.status_code == 400
    assert "requires ai_shown" in response.json()["cam_visible_ms"][0]
    assert not Annotation.objects.exists()


def test_negative_cam_time_is_refused():
    response = put(scene(Ai.PREDICTION_AND_CAM), {"ai_shown": True, "cam_visible_ms": -1})

    assert response.status_code == 400 and "cam_visible_ms" in response.json()


@pytest.mark.parametrize("body", [{"ai_shown": True}, {"ai_shown": True, "cam_visible_ms": 50}])
def test_a_reader_of_a_hidden_project_cannot_record_ai_exposure(body):
    setup = scene(Ai.HIDDEN)

    response = put(setup, body, **{"Idempotency-Key": "hidden-1"})

    assert response.status_code == 400
    assert "hidden from you in this project" in response.json()["ai_shown"][0]
    assert not Annotation.objects.exists()
    assert not IdempotencyRecord.objects.exists()  # a refused submit stores nothing
    assert put(setup, {}).status_code == 201  # unexposed answers are fine


def test_a_reader_of_a_prediction_only_project_may_see_the_prediction_but_not_a_cam():
    setup = scene(Ai.PREDICTION)

    cam = put(setup, {"ai_shown": True, "cam_visible_ms": 10})
    prediction = put(setup, {"ai_shown": True, "cam_visible_ms": 0})

    assert cam.status_code == 400
    assert "CAMs are hidden from you" in cam.json()["cam_visible_ms"][0]
    assert prediction.status_code == 201 and prediction.json()["ai_shown"] is True


@pytest.mark.parametrize("role", [Role.COORDINATOR, Role.ADMIN, Role.REVIEWER])
def test_curators_always_see_model_output_so_their_exposure_is_accepted_in_a_hidden_project(role):
    setup = scene(Ai.HIDDEN, role)

    response = put(setup, {"ai_shown": True, "cam_visible_ms": 2500})

    assert response.status_code == 201, response.content
    assert Annotation.objects.get().cam_visible_ms == 2500


def test_a_data_manager_follows_the_project_setting():
    hidden = put(scene(Ai.HIDDEN, Role.DATA_MANAGER), {"ai_shown": True})
    with_cam = put(scene(Ai.PREDICTION_AND_CAM, Role.DATA_MANAGER), {"ai_shown": True, "cam_visible_ms": 5})

    assert hidden.status_code == 400
    assert with_cam.status_code == 201
