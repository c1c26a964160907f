"""The database work of the labelling loop, as the browser app and bench/label_bench.py drive it with a
token: "next" (GET the work queue after the frame labelled last) and "submit" (PUT the label with a
new Idempotency-Key). Each statement is a round trip to PostgreSQL under load, so the exact numbers
are pinned here: a change that adds one must change this test too (bench/README.md, label section).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotations.models import Annotation, IdempotencyRecord
from annotations.selectors import annotation_history
from annotations.services import _ANNOTATION_FIELDS
from records.models import ProjectMembership
from tests.annotations.support import quality_task
from tests.factories import ExaminationFactory, FrameFactory, VideoFactory
from tests.records.api_support import member_of

pytestmark = pytest.mark.django_db
Role = ProjectMembership.Role


@pytest.fixture
def scene() -> dict[str, Any]:
    reader = member_of(project := ExaminationFactory.create().patient.project, Role.READER)
    exam = ExaminationFactory.create(patient__project=project)
    video = VideoFactory.create(examination=exam, name="seq.mp4")
    frames = [FrameFactory.create(examination=exam, video=video, index_in_video=i) for i in range(8)]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=reader).key}")
    return {
        "project": project,
        "task": quality_task(project),
        "frames": frames,
        "reader": reader,
        "client": client,
    }


def next_page(scene: dict[str, Any], after: str | None = None) -> dict[str, Any]:
    path = f"/api/projects/{scene['project'].pk}/queue/?task={scene['task'].pk}&limit=3"
    response = scene["client"].get(path if after is None else f"{path}&after={after}")
    assert response.status_code == 200, response.content
    return dict(response.json())


def submit(scene: dict[str, Any], frame_id: int, value: str = "good", key: str | None = None) -> Any:
    return scene["client"].put(
        f"/api/frames/{frame_id}/annotations/{scene['task'].pk}/",
        {"value": value, "confidence": 4, "time_on_frame_ms": 900},
        format="json",
        headers={"Idempotency-Key": key or str(uuid.uuid4())},
    )


def test_next_is_three_queries_token_task_with_counts_and_page(scene, django_assert_num_queries):
    first = next_page(scene)  # warm-up: content types and the like
    assert first["total"] == 8 and first["remaining"] == 8

    # The token (with its user), the task with both counts as subqueries, the page (in the cursor's
    # video: the index on (video, index_in_video)).
    with django_assert_num_queries(3):
        body = next_page(scene, after=first["frames"][0]["cursor"])

    assert [frame["id"] for frame in body["frames"]] == [frame.pk for frame in scene["frames"][1:4]]
    assert (body["total"], body["remaining"]) == (8, 8)


def test_next_counts_the_callers_annotations_in_the_same_query(scene):
    for frame in scene["frames"][:3]:
        assert submit(scene, frame.pk).status_code == 201
    other = member_of(scene["project"], Role.READER)
    Annotation.objects.create(
        frame=scene["frames"][5], task=scene["task"], annotator=other, value="bad", confidence=2
    )

    with CaptureQueriesContext(connection) as captured:
        body = next_page(scene)

    assert (body["total"], body["remaining"]) == (8, 5)  # the other reader's label does not count
    assert [frame["id"] for frame in body["frames"]] == [frame.pk for frame in scene["frames"][3:6]]
    counted = [query["sql"] for query in captured.captured_queries if "SUM(" in query["sql"]]
    assert len(counted) == 1 and '"annotations_labeltask"' in counted[0]


def test_submit_of_a_new_label_is_eight_statements(scene, django_assert_num_queries):
    assert submit(scene, scene["frames"][0].pk).status_code == 201  # warm-up

    with CaptureQueriesContext(connection) as captured:
        response = submit(scene, scene["frames"][1].pk, value="bad", key="the-key")

    assert response.status_code == 201, response.content
    kinds = [" ".join(query["sql"].split()[:3]) for query in captured.captured_queries]
    # The token (with its user), the frame with the task and the choice; the transaction (a savepoint
    # inside the test's own); the key (one insert that also locks it), the annotation (one insert,
    # nothing where it exists), its history row, the stored outcome. No locking read, no savepoint
    # around the insert.
    assert [kind.split(" ")[0] for kind in kinds] == [
        "SELECT",
        "SELECT",
        "SAVEPOINT",
        "INSERT",
        "INSERT",
        "INSERT",
        "UPDATE",
        "RELEASE",
    ], kinds
    assert '"annotations_idempotencyrecord"' in kinds[3] and '"annotations_annotation"' in kinds[4]
    assert '"annotations_historicalannotation"' in kinds[5]
    with django_assert_num_queries(8):
        assert submit(scene, scene["frames"][2].pk).status_code == 201

    annotation = Annotation.objects.get(frame=scene["frames"][1], annotator=scene["reader"])
    assert (annotation.value, annotation.version, annotation.time_on_frame_ms) == ("bad", 1, 900)
    assert response.json()["id"] == annotation.pk and response["ETag"] == '"1"'
    # The audit trail: one creation by the reader, as save() would have recorded it.
    (entry,) = annotation_history(annotation)
    assert (entry.change_type, entry.changed_by_id, entry.state["value"]) == ("+", scene["reader"].pk, "bad")
    record = IdempotencyRecord.objects.get(user=scene["reader"], key="the-key")
    assert record.response is not None and (record.status_code, record.response["id"]) == (201, annotation.pk)


def test_a_second_first_submit_conflicts_and_writes_nothing(scene):
    frame = scene["frames"][0]
    assert submit(scene, frame.pk, value="good").status_code == 201

    response = submit(scene, frame.pk, value="bad")

    # The insert found the row: 409 with the server's state, no second history row, no key stored.
    assert response.status_code == 409, response.content
    assert response.json()["current"]["value"] == "good" and response["ETag"] == '"1"'
    annotation = Annotation.objects.get(frame=frame)
    assert annotation.value == "good" and len(annotation_history(annotation)) == 1
    assert IdempotencyRecord.objects.filter(user=scene["reader"]).count() == 1


def test_a_value_that_is_no_choice_is_refused_and_a_foreign_task_is_404(scene):
    frame = scene["frames"][0]

    refused = submit(scene, frame.pk, value="excellent")
    foreign = quality_task(ExaminationFactory.create().patient.project)
    elsewhere = scene["client"].put(
        f"/api/frames/{frame.pk}/annotations/{foreign.pk}/", {"value": "good", "confidence": 3}, format="json"
    )

    assert refused.status_code == 400 and "not a choice" in refused.json()["value"][0]
    assert elsewhere.status_code == 404
    assert not Annotation.objects.exists() and not IdempotencyRecord.objects.exists()


def test_the_insert_names_every_column_of_the_annotation():
    # The submit's INSERT lists its columns by hand: a new field must be added there too (else new
    # annotations would silently get the database default, and so would their history).
    fields = [field.name for field in Annotation._meta.concrete_fields if not field.primary_key]
    assert sorted(_ANNOTATION_FIELDS) == sorted(fields)


def test_a_malformed_body_is_still_a_404_for_an_unknown_task_and_a_400_otherwise(scene):
    frame = scene["frames"][0]
    foreign = quality_task(ExaminationFactory.create().patient.project)

    def put(task_id: int) -> Any:
        return scene["client"].generic(
            "PUT",
            f"/api/frames/{frame.pk}/annotations/{task_id}/",
            "{not json",
            content_type="application/json",
        )

    assert put(foreign.pk).status_code == 404
    malformed = put(scene["task"].pk)
    assert malformed.status_code == 400 and "JSON parse error" in malformed.json()["detail"]
    assert not Annotation.objects.exists()
