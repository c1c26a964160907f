"""Work queue: GET /api/projects/{project}/queue/?task=: the caller's next unannotated frames."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from records.models import Frame, ProjectMembership
from tests.annotations.support import quality_task
from tests.factories import (
    AnnotationFactory,
    ExaminationFactory,
    FrameFactory,
    LabelTaskFactory,
    ProjectFactory,
    VideoFactory,
)
from tests.records.api_support import client_for, member_of

pytestmark = pytest.mark.django_db
Role = ProjectMembership.Role


@pytest.fixture
def scene() -> dict[str, Any]:
    """Two patients (given out of order), examinations with videos and loose frames, frames created
    out of queue order, two readers and a quality task."""
    project = ProjectFactory.create()
    task = LabelTaskFactory.create(project=project, key="site")
    quality = quality_task(project)
    exam_b = ExaminationFactory.create(
        patient__project=project,
        patient__pseudonym="P-b",
        code="E1",
        device="eCLE",
        anatomical_site="larynx",
        reference_label="neoplastic",
    )
    exam_a2 = ExaminationFactory.create(patient__project=project, patient__pseudonym="P-a", code="E2")
    exam_a1 = ExaminationFactory.create(patient=exam_a2.patient, code="E1", reference_label="healthy")
    video_a1_y = VideoFactory.create(examination=exam_a1, name="y.mp4")
    video_a1_x = VideoFactory.create(examination=exam_a1, name="x.mp4")
    created = [
        FrameFactory.create(examination=exam_b, reference_label="neoplastic"),  # b/E1, loose
        FrameFactory.create(video=video_a1_y, index_in_video=0),  # a/E1/y #0
        FrameFactory.create(examination=exam_a1),  # a/E1, loose: after its videos
        FrameFactory.create(video=video_a1_x, index_in_video=5),  # a/E1/x #5
        FrameFactory.create(video=video_a1_x, index_in_video=2, reference_label="healthy"),  # a/E1/x #2
        FrameFactory.create(examination=exam_a2),  # a/E2, loose
    ]
    expected = [created[i].pk for i in (4, 3, 1, 2, 5, 0)]
    reader = member_of(project, Role.READER)
    other = member_of(project, Role.READER)
    return {
        "project": project,
        "task": task,
        "quality": quality,
        "exams": {"a1": exam_a1, "a2": exam_a2, "b": exam_b},
        "order": expected,
        "reader": reader,
        "other": other,
        "client": client_for(reader),
        "url": f"/api/projects/{project.pk}/queue/",
    }


def annotate(frame_id: int, **fields: Any) -> None:
    AnnotationFactory.create(frame=Frame.objects.get(pk=frame_id), **fields)


def queue(scene: dict[str, Any], client: Any = None, **params: Any) -> Any:
    return (client or scene["client"]).get(scene["url"], {"task": scene["task"].pk, **params})


def ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.content
    return dict(response.json())


def frame_ids(response: Any) -> list[int]:
    return [frame["id"] for frame in ok(response)["frames"]]


def test_queue_order_is_pseudonym_code_video_index_then_id_and_repeatable(scene):
    first = ok(queue(scene))
    again = ok(queue(scene))

    assert [frame["id"] for frame in first["frames"]] == scene["order"]
    assert again == first
    assert (first["task"], first["remaining"], first["total"]) == (scene["task"].pk, 6, 6)


def test_a_new_frame_takes_its_place_without_reshuffling_the_others(scene):
    video_x = scene["exams"]["a1"].videos.get(name="x.mp4")
    new = FrameFactory.create(video=video_x, index_in_video=3)

    order = frame_ids(queue(scene))

    assert order == [scene["order"][0], new.pk, *scene["order"][1:]]


def test_annotated_frames_leave_the_queue_of_that_annotator_only(scene):
    first, second = scene["order"][:2]
    for frame_id in (first, second):
        annotate(frame_id, task=scene["task"], annotator=scene["reader"])
    # The reader's annotation of another task does not count for this one.
    annotate(scene["order"][2], task=scene["quality"], annotator=scene["reader"])

    mine = ok(queue(scene))
    theirs = ok(queue(scene, client=client_for(scene["other"])))

    assert [frame["id"] for frame in mine["frames"]] == scene["order"][2:]
    assert (mine["remaining"], mine["total"]) == (4, 6)
    assert [frame["id"] for frame in theirs["frames"]] == scene["order"]
    assert (theirs["remaining"], theirs["total"]) == (6, 6)


def test_examination_site_and_device_filters(scene):
    exams = scene["exams"]

    by_exam = ok(queue(scene, examination=exams["a1"].pk))
    by_site = ok(queue(scene, anatomical_site="larynx"))
    by_device = ok(queue(scene, device="pCLE"))
    empty_filter = ok(queue(scene, device=""))

    assert [frame["id"] for frame in by_exam["frames"]] == scene["order"][:4]
    assert by_exam["total"] == 4
    assert [frame["id"] for frame in by_site["frames"]] == [scene["order"][5]]
    assert by_site["frames"][0]["examination_site"] == "larynx"
    assert by_site["frames"][0]["examination_device"] == "eCLE"
    assert [frame["id"] for frame in by_device["frames"]] == scene["order"][:5]
    assert empty_filter["total"] == 6


def test_counts_follow_the_filters(scene):
    a1 = scene["exams"]["a1"]
    annotate(scene["order"][0], task=scene["task"], annotator=scene["reader"])
    annotate(scene["order"][5], task=scene["task"], annotator=scene["reader"])

    body = ok(queue(scene, examination=a1.pk, limit=1))

    assert (body["remaining"], body["total"]) == (3, 4)
    assert [frame["id"] for frame in body["frames"]] == [scene["order"][1]]


def test_quality_filter_keeps_frames_any_annotator_rated_with_that_value(scene):
    quality = scene["quality"]
    good_by_other, bad_by_other, good_by_me = scene["order"][1], scene["order"][3], scene["order"][4]
    annotate(good_by_other, task=quality, annotator=scene["other"], value="good")
    annotate(bad_by_other, task=quality, annotator=scene["other"], value="bad")
    annotate(good_by_me, task=quality, annotator=scene["reader"], value="good")

    good = ok(queue(scene, quality_task=quality.pk, quality_value="good"))
    bad = ok(queue(scene, quality_task=quality.pk, quality_value="bad"))
    # A quality task of another project matches nothing (it is not an error that reveals it).
    foreign = quality_task(ProjectFactory.create())
    annotate(scene["order"][0], task=foreign, value="good")
    elsewhere = ok(queue(scene, quality_task=foreign.pk, quality_value="good"))

    assert [frame["id"] for frame in good["frames"]] == [good_by_other, good_by_me]
    assert good["total"] == 2
    assert [frame["id"] for frame in bad["frames"]] == [bad_by_other]
    assert (elsewhere["total"], elsewhere["frames"]) == (0, [])


def test_quality_task_and_value_go_together(scene):
    response = queue(scene, quality_task=scene["quality"].pk)

    assert response.status_code == 400
    assert "give both or neither" in str(response.json())


def test_limit_defaults_to_20_and_is_bounded(scene):
    extra = ExaminationFactory.create(patient__project=scene["project"], patient__pseudonym="P-z")
    FrameFactory.create_batch(120, examination=extra)

    default = ok(queue(scene))
    one = ok(queue(scene, limit=1))
    most = ok(queue(scene, limit=100))

    assert len(default["frames"]) == 20 and default["remaining"] == 126
    assert [frame["id"] for frame in one["frames"]] == scene["order"][:1]
    assert len(most["frames"]) == 100
    assert queue(scene, limit=101).status_code == 400
    assert queue(scene, limit=0).status_code == 400


def test_task_is_required_and_must_be_an_active_task_of_the_project(scene):
    other_project = ProjectFactory.create()
    foreign_task = LabelTaskFactory.create(project=other_project)
    member_of(other_project, Role.READER, username="also-there")
    scene["task"].is_active = False
    scene["task"].save()

    missing = scene["client"].get(scene["url"])
    inactive = queue(scene)
    foreign = scene["client"].get(scene["url"], {"task": foreign_task.pk})

    assert missing.status_code == 400
    assert inactive.status_code == 400 and "inactive" in str(inactive.json()["task"])
    assert foreign.status_code == 404


def test_outsiders_get_404(scene):
    outsider_project = ProjectFactory.create()
    outsider = member_of(outsider_project, Role.ADMIN)

    assert queue(scene, client=client_for(outsider)).status_code == 404
    # Nor can a member reach the task through their other project's URL.
    response = client_for(outsider).get(
        f"/api/projects/{outsider_project.pk}/queue/", {"task": scene["task"].pk}
    )
    assert response.status_code == 404


def test_no_reference_standard_in_the_response(scene):
    body = ok(queue(scene))

    assert body["frames"]
    for frame in body["frames"]:
        assert "reference_label" not in frame and "reference_source" not in frame
        assert {"image_url", "preview_url", "examination_site", "examination_device"} <= set(frame)
    text = str(body)
    assert "reference" not in text
    assert "neoplastic" not in text and "healthy" not in text
    assert Frame.objects.filter(reference_label="neoplastic").exists()


def test_query_count_does_not_grow_with_the_frames(scene, django_assert_max_num_queries):
    client = scene["client"]
    queue(scene)  # warm the session and content types

    with CaptureQueriesContext(connection) as few:
        ok(queue(scene, limit=100))
    extra = ExaminationFactory.create(patient__project=scene["project"], patient__pseudonym="P-z")
    FrameFactory.create_batch(40, examination=extra)
    for frame in Frame.objects.filter(examination=extra)[:10]:
        AnnotationFactory.create(frame=frame, task=scene["task"], annotator=scene["reader"])

    # Session and user (2), the task (1), the counts (1), the page (1).
    with django_assert_max_num_queries(5):
        body = ok(client.get(scene["url"], {"task": scene["task"].pk, "limit": 100}))

    assert len(body["frames"]) == 36
    assert len(few.captured_queries) <= 5
