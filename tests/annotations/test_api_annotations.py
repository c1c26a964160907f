"""Annotation API: GET/PUT per (frame, task), versions and If-Match, idempotency keys, scoping, history."""

from __future__ import annotations

from typing import Any

import pytest

from annotations.models import Annotation
from records.models import ProjectMembership
from tests.annotations.support import frame_in, quality_task
from tests.factories import ProjectFactory, UserFactory
from tests.records.api_support import client_for, member_of

pytestmark = pytest.mark.django_db
Role = ProjectMembership.Role


@pytest.fixture
def scene() -> dict[str, Any]:
    project = ProjectFactory.create()
    task = quality_task(project)
    frame = frame_in(project)
    reader = member_of(project, Role.READER)
    return {
        "project": project,
        "task": task,
        "frame": frame,
        "reader": reader,
        "client": client_for(reader),
        "url": f"/api/frames/{frame.pk}/annotations/{task.pk}/",
    }


def put(scene: dict[str, Any], body: dict[str, Any], **headers: str) -> Any:
    payload = {"value": "good", "confidence": 4, **body}
    return scene["client"].put(scene["url"], payload, format="json", headers=headers)


def test_put_creates_then_updates_with_the_version_in_the_body_or_if_match(scene):
    created = put(scene, {"time_on_frame_ms": 900, "ai_shown": False})
    updated = put(scene, {"value": "bad", "version": 1})
    via_header = put(scene, {"value": "good"}, **{"If-Match": '"2"'})
    fetched = scene["client"].get(scene["url"])

    assert created.status_code == 201 and created.json()["version"] == 1 and created["ETag"] == '"1"'
    assert updated.status_code == 200 and updated.json()["version"] == 2
    assert via_header.status_code == 200 and via_header.json()["version"] == 3
    assert fetched.status_code == 200 and fetched.json()["value"] == "good" and fetched["ETag"] == '"3"'


def test_get_before_any_annotation_is_404(scene):
    assert scene["client"].get(scene["url"]).status_code == 404


def test_stale_put_is_a_409_with_the_current_server_state(scene):
    put(scene, {})
    put(scene, {"value": "bad", "confidence": 2, "version": 1})

    stale = put(scene, {"value": "good", "confidence": 5, "version": 1})

    assert stale.status_code == 409
    body = stale.json()
    assert "version 2" in body["detail"]
    assert (body["current"]["value"], body["current"]["confidence"], body["current"]["version"]) == (
        "bad",
        2,
        2,
    )
    assert Annotation.objects.get().value == "bad"


def test_retry_with_the_same_idempotency_key_returns_the_same_result_without_a_second_write(scene):
    first = put(scene, {}, **{"Idempotency-Key": "abc"})
    retry = put(scene, {}, **{"Idempotency-Key": "abc"})

    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.json() == first.json() and retry["Idempotent-Replayed"] == "true"
    assert Annotation.objects.get().version == 1


def test_reusing_an_idempotency_key_with_another_payload_is_422(scene):
    put(scene, {}, **{"Idempotency-Key": "abc"})

    response = put(scene, {"value": "bad", "version": 1}, **{"Idempotency-Key": "abc"})

    assert response.status_code == 422
    assert Annotation.objects.get().value == "good"


@pytest.mark.parametrize(
    ("body", "field"),
    [({"value": "maybe"}, "value"), ({"confidence": 0}, "confidence"), ({"confidence": 6}, "confidence")],
)
def test_value_not_in_the_task_or_confidence_out_of_range_is_400(scene, body, field):
    response = put(scene, body)

    assert response.status_code == 400 and field in response.json()


def test_deactivated_choice_is_refused_for_new_annotations_and_old_ones_stay_readable(scene):
    put(scene, {"value": "bad"})
    scene["task"].choices.filter(value="bad").update(is_active=False)
    other = client_for(member_of(scene["project"], Role.READER))

    refused = other.put(scene["url"], {"value": "bad", "confidence": 3}, format="json")
    readable = scene["client"].get(scene["url"])

    assert refused.status_code == 400 and "inactive" in refused.json()["value"][0]
    assert readable.status_code == 200 and readable.json()["value"] == "bad"


def test_another_projects_frame_or_task_is_404(scene):
    other = ProjectFactory.create()
    foreign_frame = frame_in(other)
    foreign_task = quality_task(other)

    frame_404 = scene["client"].put(
        f"/api/frames/{foreign_frame.pk}/annotations/{scene['task'].pk}/", {"value": "good", "confidence": 3}
    )
    task_404 = scene["client"].put(
        f"/api/frames/{scene['frame'].pk}/annotations/{foreign_task.pk}/", {"value": "good", "confidence": 3}
    )

    assert (frame_404.status_code, task_404.status_code) == (404, 404)
    assert not Annotation.objects.exists()


@pytest.mark.parametrize(
    ("role", "expected"),
    [(Role.READER, 404), (Role.DATA_MANAGER, 404), (Role.COORDINATOR, 200), (Role.ADMIN, 200), (None, 404)],
)
def test_annotation_history_is_for_coordinators_and_admins(scene, role, expected):
    """Other readers and data managers do not even see the annotation (404)."""
    put(scene, {})
    put(scene, {"value": "bad", "version": 1})
    annotation = Annotation.objects.get()
    user = member_of(scene["project"], role) if role else UserFactory.create()

    response = client_for(user).get(f"/api/annotations/{annotation.pk}/history/")

    assert response.status_code == expected


def test_annotation_history_says_who_changed_what_and_when(scene):
    put(scene, {})
    put(scene, {"value": "bad", "version": 1})
    annotation = Annotation.objects.get()
    coordinator = client_for(member_of(scene["project"], Role.COORDINATOR))

    history = coordinator.get(f"/api/annotations/{annotation.pk}/history/").json()

    assert [row["change_type"] for row in history] == ["+", "~"]
    assert {row["changed_by"] for row in history} == {scene["reader"].username}
    assert {(c["field"], c["old"], c["new"]) for c in history[1]["changes"]} == {
        ("value", "good", "bad"),
        ("version", 1, 2),
    }
    assert all(row["changed_at"] for row in history)


def test_the_reader_sees_their_own_annotation_but_not_their_own_history(scene):
    put(scene, {})
    annotation = Annotation.objects.get()

    assert scene["client"].get(f"/api/annotations/{annotation.pk}/").status_code == 200
    assert scene["client"].get(f"/api/annotations/{annotation.pk}/history/").status_code == 403
