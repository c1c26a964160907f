"""DELETE /api/frames/{frame}/annotations/{task}/ (the browser app's undo) and annotation_delete."""

from __future__ import annotations

from typing import Any

import pytest

from annotations.models import Annotation
from annotations.services import (
    AnnotationConflict,
    AnnotationMissing,
    AnnotationRefused,
    annotation_delete,
    label_task_update,
)
from records.models import ProjectMembership
from tests.annotations.support import annotate, frame_in, quality_task
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
    client = client_for(reader)
    url = f"/api/frames/{frame.pk}/annotations/{task.pk}/"
    created = client.put(url, {"value": "good", "confidence": 4}, format="json")
    assert created.status_code == 201
    return {
        "project": project,
        "task": task,
        "frame": frame,
        "reader": reader,
        "client": client,
        "url": url,
        "annotation": Annotation.objects.get(),
    }


def delete(scene: dict[str, Any], client: Any = None, **headers: str) -> Any:
    return (client or scene["client"]).delete(scene["url"], headers=headers)


def test_delete_with_the_current_version_is_204_and_the_annotation_is_gone(scene):
    response = delete(scene, **{"If-Match": '"1"'})

    assert response.status_code == 204 and response.content == b""
    assert not Annotation.objects.exists()
    assert scene["client"].get(scene["url"]).status_code == 404


def test_after_an_undo_the_frame_can_be_annotated_anew_from_version_one(scene):
    delete(scene, **{"If-Match": '"1"'})

    again = scene["client"].put(scene["url"], {"value": "bad", "confidence": 2}, format="json")

    assert again.status_code == 201 and again.json()["version"] == 1


def test_the_deletion_is_kept_in_the_audit_history_with_the_acting_user(scene):
    pk = scene["annotation"].pk
    scene["client"].put(scene["url"], {"value": "bad", "confidence": 4, "version": 1}, format="json")

    delete(scene, **{"If-Match": 'W/"2"'})

    rows = list(Annotation.history.filter(id=pk).order_by("history_date", "history_id"))
    assert [row.history_type for row in rows] == ["+", "~", "-"]
    assert rows[-1].history_user == scene["reader"]
    assert (rows[-1].value, rows[-1].version) == ("bad", 2)


def test_without_if_match_it_is_428_and_nothing_is_deleted(scene):
    response = delete(scene)

    assert response.status_code == 428 and "If-Match" in response.json()["detail"]
    assert Annotation.objects.exists()


def test_a_stale_version_is_409_with_the_current_state_and_nothing_is_deleted(scene):
    scene["client"].put(scene["url"], {"value": "bad", "confidence": 2, "version": 1}, format="json")

    response = delete(scene, **{"If-Match": '"1"'})

    assert response.status_code == 409 and response["ETag"] == '"2"'
    body = response.json()
    assert "version 2" in body["detail"]
    assert (body["current"]["value"], body["current"]["version"]) == ("bad", 2)
    assert Annotation.objects.get().version == 2


def test_an_if_match_that_is_no_version_is_400(scene):
    assert delete(scene, **{"If-Match": '"abc"'}).status_code == 400
    assert Annotation.objects.exists()


def test_only_the_callers_own_annotation_is_deleted(scene):
    coordinator = client_for(member_of(scene["project"], Role.COORDINATOR))
    other_reader = client_for(member_of(scene["project"], Role.READER))

    # Nobody else has an annotation there: a 404, whatever their role, and the reader's stays.
    assert delete(scene, client=coordinator, **{"If-Match": '"1"'}).status_code == 404
    assert delete(scene, client=other_reader, **{"If-Match": '"1"'}).status_code == 404
    assert Annotation.objects.get().annotator == scene["reader"]


def test_outsiders_get_404(scene):
    outsider = client_for(member_of(ProjectFactory.create(), Role.ADMIN))

    assert delete(scene, client=outsider, **{"If-Match": '"1"'}).status_code == 404
    assert Annotation.objects.exists()


def test_an_inactive_task_refuses_the_delete(scene):
    label_task_update(task=scene["task"], is_active=False, changed_by=None)

    response = delete(scene, **{"If-Match": '"1"'})

    assert response.status_code == 400 and "inactive" in response.json()["task"][0]
    assert Annotation.objects.exists()


def test_a_reader_study_reading_is_not_deleted_here(scene):
    Annotation.objects.update(context=Annotation.Context.STUDY)

    response = delete(scene, **{"If-Match": '"1"'})

    assert response.status_code == 400 and "context" in response.json()
    assert Annotation.objects.exists()


def test_the_service_refuses_stale_and_missing_annotations(scene):
    frame, task, reader = scene["frame"], scene["task"], scene["reader"]
    other = UserFactory.create()
    annotate(frame, task, other, "bad")

    with pytest.raises(AnnotationConflict) as caught:
        annotation_delete(frame=frame, task=task, annotator=reader, version=2)
    with pytest.raises(AnnotationMissing):
        annotation_delete(frame=frame, task=task, annotator=UserFactory.create(), version=1)
    annotation_delete(frame=frame, task=task, annotator=other, version=1)

    assert caught.value.current is not None and caught.value.current.version == 1
    assert list(Annotation.objects.values_list("annotator_id", flat=True)) == [reader.pk]


def test_the_service_refuses_an_inactive_task(scene):
    label_task_update(task=scene["task"], is_active=False, changed_by=None)
    scene["task"].refresh_from_db()

    with pytest.raises(AnnotationRefused):
        annotation_delete(frame=scene["frame"], task=scene["task"], annotator=scene["reader"], version=1)
