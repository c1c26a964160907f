"""Review queue: GET /api/projects/{project}/review/?task=: frames whose annotators disagree, for the
project's adjudicators, with their annotations and adjudication."""

from __future__ import annotations

from typing import Any

import pytest

from annotations.models import Annotation
from annotations.selectors import ReviewStatus, queue_frames, review_queue
from records.models import ProjectMembership
from tests.annotations.support import annotate, frame_in, quality_task
from tests.factories import (
    AdjudicationFactory,
    ExaminationFactory,
    FrameFactory,
    ProjectFactory,
    UserFactory,
)
from tests.records.api_support import client_for, member_of

pytestmark = pytest.mark.django_db
Role = ProjectMembership.Role
STUDY = Annotation.Context.STUDY


@pytest.fixture
def scene() -> dict[str, Any]:
    """Frames of two examinations (the later patient's created first) covering every case of the
    disagreement definition, three readers and a reviewer."""
    project = ProjectFactory.create()
    task = quality_task(project)
    exam_b = ExaminationFactory.create(
        patient__project=project,
        patient__pseudonym="P-b",
        code="E1",
        device="eCLE",
        anatomical_site="larynx",
        reference_label="neoplastic",
    )
    exam_a = ExaminationFactory.create(patient__project=project, patient__pseudonym="P-a", code="E1")
    late = FrameFactory.create(examination=exam_b, reference_label="neoplastic")
    frames = {
        name: FrameFactory.create(examination=exam_a)
        for name in ("disagree", "agree", "single", "study", "three", "none")
    }
    frames["late"] = late
    r1, r2, r3 = (member_of(project, Role.READER) for _ in range(3))
    annotate(frames["disagree"], task, r1, "good")
    annotate(frames["disagree"], task, r2, "bad")
    annotate(frames["agree"], task, r1, "good")
    annotate(frames["agree"], task, r2, "good")
    annotate(frames["single"], task, r1, "bad")
    annotate(frames["study"], task, r1, "good")
    annotate(frames["study"], task, r2, "bad", context=STUDY)  # a reader-study reading: ignored
    annotate(frames["three"], task, r1, "good")
    annotate(frames["three"], task, r2, "good")
    annotate(frames["three"], task, r3, "bad")
    annotate(late, task, r1, "bad")
    annotate(late, task, r2, "good")
    reviewer = member_of(project, Role.REVIEWER)
    return {
        "project": project,
        "task": task,
        "frames": frames,
        "exams": {"a": exam_a, "b": exam_b},
        "readers": (r1, r2, r3),
        "reviewer": reviewer,
        "client": client_for(reviewer),
        "url": f"/api/projects/{project.pk}/review/",
    }


def review(scene: dict[str, Any], client: Any = None, **params: Any) -> Any:
    return (client or scene["client"]).get(scene["url"], {"task": scene["task"].pk, **params})


def ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.content
    return dict(response.json())


def frame_ids(body: dict[str, Any]) -> list[int]:
    return [item["frame"]["id"] for item in body["items"]]


def ids_of(scene: dict[str, Any], *names: str) -> list[int]:
    return [scene["frames"][name].pk for name in names]


# --- The disagreement definition ------------------------------------------------------------------


def test_open_frames_are_those_whose_free_annotations_from_two_annotators_differ(scene):
    body = ok(review(scene))

    # Agreement, a single annotator, a study reading against a free one, no annotation: not open.
    assert frame_ids(body) == ids_of(scene, "disagree", "three", "late")
    assert (body["task"], body["open"], body["adjudicated"]) == (scene["task"].pk, 3, 0)
    assert all(item["disagreement"] and item["adjudication"] is None for item in body["items"])


def test_two_study_readings_that_disagree_are_not_a_disagreement(scene):
    frame = scene["frames"]["none"]
    annotate(frame, scene["task"], value="good", context=STUDY)
    annotate(frame, scene["task"], value="bad", context=STUDY)

    assert scene["frames"]["none"].pk not in frame_ids(ok(review(scene, status="all")))


def test_a_disagreement_appears_as_soon_as_a_second_annotator_differs(scene):
    annotate(scene["frames"]["single"], scene["task"], value="good")

    assert frame_ids(ok(review(scene))) == ids_of(scene, "disagree", "single", "three", "late")


# --- Status, counts, order, filters ---------------------------------------------------------------


def test_status_filters_and_counts(scene):
    reviewer = scene["reviewer"]
    AdjudicationFactory.create(frame=scene["frames"]["three"], task=scene["task"], adjudicated_by=reviewer)
    # A reviewer may confirm an agreed label: it counts as adjudicated, not as a disagreement.
    AdjudicationFactory.create(frame=scene["frames"]["agree"], task=scene["task"], adjudicated_by=reviewer)

    opened = ok(review(scene))
    adjudicated = ok(review(scene, status="adjudicated"))
    every = ok(review(scene, status="all"))

    assert frame_ids(opened) == ids_of(scene, "disagree", "late")
    assert frame_ids(adjudicated) == ids_of(scene, "agree", "three")
    assert frame_ids(every) == ids_of(scene, "disagree", "three", "late")
    for body in (opened, adjudicated, every):
        assert (body["open"], body["adjudicated"]) == (2, 2)
    confirmed, decided = adjudicated["items"]
    assert (confirmed["disagreement"], decided["disagreement"]) == (False, True)
    assert decided["adjudication"]["adjudicated_by"] == reviewer.pk
    assert decided["adjudication"]["adjudicated_by_username"] == reviewer.username


def test_an_unknown_status_is_400(scene):
    response = review(scene, status="closed")

    assert response.status_code == 400 and "status" in response.json()


def test_order_is_the_work_queue_order_and_repeatable(scene):
    body = ok(review(scene, status="all"))
    again = ok(review(scene, status="all"))

    queue_order = [frame.pk for frame in queue_frames(task=scene["task"])]
    disagreeing = set(frame_ids(body))
    assert frame_ids(body) == [pk for pk in queue_order if pk in disagreeing]
    assert again == body
    # The patient pseudonym comes first, although the later patient's frame was created first.
    assert frame_ids(body)[-1] == scene["frames"]["late"].pk


def test_examination_site_and_device_filters_and_the_counts_follow_them(scene):
    exams = scene["exams"]

    by_exam = ok(review(scene, examination=exams["b"].pk))
    by_site = ok(review(scene, anatomical_site="colon"))
    by_device = ok(review(scene, device="eCLE"))
    empty = ok(review(scene, device=""))

    assert frame_ids(by_exam) == ids_of(scene, "late") and by_exam["open"] == 1
    assert frame_ids(by_site) == ids_of(scene, "disagree", "three") and by_site["open"] == 2
    assert frame_ids(by_device) == ids_of(scene, "late")
    assert empty["open"] == 3


def test_limit_defaults_to_20_and_is_bounded(scene):
    task = scene["task"]
    extra = ExaminationFactory.create(patient__project=scene["project"], patient__pseudonym="P-z")
    for frame in FrameFactory.create_batch(120, examination=extra):
        annotate(frame, task, scene["readers"][0], "good")
        annotate(frame, task, scene["readers"][1], "bad")

    default = ok(review(scene))
    one = ok(review(scene, limit=1))
    most = ok(review(scene, limit=100))

    assert len(default["items"]) == 20 and default["open"] == 123
    assert frame_ids(one) == ids_of(scene, "disagree")
    assert len(most["items"]) == 100
    assert review(scene, limit=101).status_code == 400
    assert review(scene, limit=0).status_code == 400


# --- What an item carries -------------------------------------------------------------------------


def test_items_carry_the_frame_without_reference_standard_and_the_free_annotations(scene):
    r1, r2, _ = scene["readers"]

    body = ok(review(scene, examination=scene["exams"]["b"].pk))

    (item,) = body["items"]
    frame = item["frame"]
    assert frame["id"] == scene["frames"]["late"].pk
    assert {"image_url", "preview_url", "examination_site", "examination_device"} <= set(frame)
    assert "reference_label" not in frame and "neoplastic" not in str(body)
    assert [(a["annotator"], a["annotator_username"], a["value"]) for a in item["annotations"]] == [
        (r1.pk, r1.username, "bad"),
        (r2.pk, r2.username, "good"),
    ]
    assert set(item["annotations"][0]) == {
        "id",
        "annotator",
        "annotator_username",
        "value",
        "confidence",
        "version",
        "ai_shown",
        "cam_visible_ms",
        "updated_at",
    }


def test_study_readings_are_left_out_of_the_items(scene):
    # A frame that disagrees in free labelling and also has a study reading by a third reader.
    annotate(scene["frames"]["disagree"], scene["task"], scene["readers"][2], "bad", context=STUDY)

    body = ok(review(scene))

    assert len(body["items"][0]["annotations"]) == 2


def test_an_inactive_task_can_still_be_reviewed(scene):
    scene["task"].is_active = False
    scene["task"].save()

    assert ok(review(scene))["open"] == 3


def test_task_is_required_and_must_be_a_task_of_the_project(scene):
    foreign = quality_task(ProjectFactory.create())

    assert scene["client"].get(scene["url"]).status_code == 400
    assert review(scene, task=foreign.pk).status_code == 404


# --- Who may review -------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.REVIEWER, Role.COORDINATOR, Role.ADMIN])
def test_adjudicators_may_review(scene, role):
    client = client_for(member_of(scene["project"], role))

    assert ok(review(scene, client=client))["open"] == 3


def test_a_superuser_may_review():
    project = ProjectFactory.create()
    task = quality_task(project)
    frame = frame_in(project)
    annotate(frame, task, value="good")
    annotate(frame, task, value="bad")
    client = client_for(UserFactory.create(is_superuser=True))

    body = ok(client.get(f"/api/projects/{project.pk}/review/", {"task": task.pk}))

    assert frame_ids(body) == [frame.pk]


@pytest.mark.parametrize("role", [Role.READER, Role.DATA_MANAGER])
def test_members_who_do_not_adjudicate_get_403_with_the_roles_that_may(scene, role):
    response = review(scene, client=client_for(member_of(scene["project"], role)))

    assert response.status_code == 403
    detail = response.json()["detail"]
    assert "Reviewer" in detail and "review disagreements" in detail


def test_outsiders_get_404(scene):
    elsewhere = ProjectFactory.create()
    outsider = member_of(elsewhere, Role.REVIEWER)

    assert review(scene, client=client_for(outsider)).status_code == 404
    # Nor can a reviewer reach the task through their other project's URL.
    response = client_for(outsider).get(f"/api/projects/{elsewhere.pk}/review/", {"task": scene["task"].pk})
    assert response.status_code == 404


# --- Cost -----------------------------------------------------------------------------------------


def test_selector_takes_four_queries_whatever_the_number_of_frames(scene, django_assert_num_queries):
    task = scene["task"]
    extra = ExaminationFactory.create(patient__project=scene["project"], patient__pseudonym="P-z")
    for frame in FrameFactory.create_batch(30, examination=extra):
        annotate(frame, task, scene["readers"][0], "good")
        annotate(frame, task, scene["readers"][1], "bad")
        AdjudicationFactory.create(frame=frame, task=task, adjudicated_by=scene["reviewer"])

    # The counts, the page, the page's annotations, the page's adjudications.
    with django_assert_num_queries(4):
        queue = review_queue(task=task, status=ReviewStatus.ADJUDICATED, limit=100)
        rows = [
            (item.frame.examination.code, [a.annotator.username for a in item.annotations], item.adjudication)
            for item in queue.items
        ]

    assert len(rows) == 30 and all(adjudication is not None for *_, adjudication in rows)


def test_query_count_does_not_grow_with_the_frames(scene, django_assert_max_num_queries):
    task = scene["task"]
    review(scene)  # warm the session and content types
    extra = ExaminationFactory.create(patient__project=scene["project"], patient__pseudonym="P-z")
    for frame in FrameFactory.create_batch(40, examination=extra):
        annotate(frame, task, scene["readers"][0], "good")
        annotate(frame, task, scene["readers"][1], "bad")
        annotate(frame, task, scene["readers"][2], "bad")
    for frame in extra.frames.all()[:10]:
        AdjudicationFactory.create(frame=frame, task=task, adjudicated_by=scene["reviewer"])

    # Session and user (2), the project (1), the role (1), the task (1), the counts (1), the page (1),
    # its annotations (1) and adjudications (1).
    with django_assert_max_num_queries(9):
        everything = ok(review(scene, status="all", limit=100))
    with django_assert_max_num_queries(9):
        opened = ok(review(scene, limit=100))

    assert len(everything["items"]) == 43 and (everything["open"], everything["adjudicated"]) == (33, 10)
    assert len(opened["items"]) == 33
