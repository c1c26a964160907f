"""The labelling loop's hand-written SQL gives what the ORM gives.

"next" and "submit" read their look-ups with single hand-written statements (annotations/selectors.py,
config/authentication.py, config/model_rows.py) and write the work queue's answer without DRF's
field-by-field build (bench/README.md, label section). Each is compared here with the ORM query or
serializer it replaces, on data that exercises every branch: filters, other projects, other
annotators, superusers, JSON columns, loose stills and frames without a time.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db.models import Exists, F, Model, OuterRef
from rest_framework import serializers
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient, APIRequestFactory

from annotations.apis import WorkQueueOutputSerializer
from annotations.models import Annotation, LabelChoice, LabelTask
from annotations.selectors import (
    QueueKey,
    _queue_counts,
    _unannotated_in_video,
    queue_frames,
    queue_task_and_counts,
    submit_targets,
    work_queue,
)
from records.models import ProjectMembership
from records.selectors import frames_visible_to
from tests.annotations.support import annotate, quality_task
from tests.factories import ExaminationFactory, FrameFactory, UserFactory, VideoFactory
from tests.records.api_support import member_of

pytestmark = pytest.mark.django_db
Role = ProjectMembership.Role


def columns(instance: Model | None) -> dict[str, Any] | None:
    """Every concrete column of an instance, as loaded."""
    if instance is None:
        return None
    return {field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields}


@pytest.fixture
def world() -> dict[str, Any]:
    """Two examinations (different site and device) with a video each and loose stills, in one
    project; another project beside it; a reader who has labelled some frames and a second reader."""
    exam_a = ExaminationFactory.create(anatomical_site="oral_cavity", device="pCLE")
    project = exam_a.patient.project
    exam_b = ExaminationFactory.create(patient=exam_a.patient, anatomical_site="larynx", device="ENT")
    frames = []
    for exam in (exam_a, exam_b):
        video = VideoFactory.create(examination=exam, name=f"{exam.code}.mp4")
        frames += [
            FrameFactory.create(
                examination=exam,
                video=video,
                index_in_video=index,
                time_s=None if index == 2 else index / 25,
                crop_box=[1, 2, 7, 5] if index % 2 else None,
            )
            for index in range(6)
        ]
        frames.append(FrameFactory.create(examination=exam))  # a loose still
    task = quality_task(project)
    reader, other = member_of(project, Role.READER), member_of(project, Role.READER)
    for frame in (frames[1], frames[3], frames[8]):
        annotate(frame, task, annotator=reader)
    annotate(frames[2], task, annotator=other)
    elsewhere = ExaminationFactory.create()
    return {
        "project": project,
        "exams": (exam_a, exam_b),
        "frames": frames,
        "task": task,
        "reader": reader,
        "other": other,
        "elsewhere": {
            "frame": FrameFactory.create(examination=elsewhere),
            "task": quality_task(elsewhere.patient.project),
        },
        "superuser": UserFactory.create(is_superuser=True),
    }


# --- submit_targets --------------------------------------------------------------------------------


def orm_submit_targets(user: Any, frame_id: int, task_id: int, value: Any) -> tuple[Any, ...] | None:
    frame = frames_visible_to(user).select_related("examination__patient").filter(pk=frame_id).first()
    if frame is None:
        return None
    project_id = frame.examination.patient.project_id
    task = LabelTask.objects.filter(project_id=project_id, pk=task_id).first()
    choice = (
        LabelChoice.objects.filter(task=task, value=value).first()
        if task and isinstance(value, str)
        else None
    )
    return frame, frame.examination, frame.examination.patient, task, choice


@pytest.mark.parametrize(
    "case",
    [
        "choice",
        "no such value",
        "no value",
        "task of another project",
        "frame of another project",
        "superuser",
    ],
)
def test_submit_targets_are_the_orms(world, case, django_assert_num_queries):
    user, frame, task = world["reader"], world["frames"][5], world["task"]
    value: str | None = "bad"
    if case == "no such value":
        value = "excellent"
    elif case == "no value":
        value = None
    elif case == "task of another project":
        task = world["elsewhere"]["task"]
    elif case == "frame of another project":
        frame = world["elsewhere"]["frame"]
    elif case == "superuser":
        user, frame, task = world["superuser"], world["elsewhere"]["frame"], world["elsewhere"]["task"]

    with django_assert_num_queries(1):
        found = submit_targets(user=user, frame_id=frame.pk, task_id=task.pk, value=value)
    expected = orm_submit_targets(user, frame.pk, task.pk, value)

    if expected is None:
        assert found is None
        return
    assert found is not None
    with django_assert_num_queries(0):  # related instances come cached, as with select_related
        got = (
            found.frame,
            found.frame.examination,
            found.frame.examination.patient,
            found.task,
            found.choice,
        )
        if found.choice is not None:
            assert found.choice.task is found.task
    assert [columns(instance) for instance in got] == [columns(instance) for instance in expected]
    if case == "choice":
        assert found.frame.crop_box == [1, 2, 7, 5]  # the JSON column decoded, as the ORM does
    # What each case is about (so that the comparison is not between two empty answers).
    assert (found.task is not None, found.choice is not None) == {
        "choice": (True, True),
        "no such value": (True, False),
        "no value": (True, False),
        "task of another project": (False, False),
        "superuser": (True, True),
    }[case]


# --- queue_task_and_counts --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"examination": "a"},
        {"anatomical_site": "larynx"},
        {"device": "pCLE"},
        {"anatomical_site": "oral_cavity", "device": "ENT"},  # matches nothing
        {"examination": "b", "device": "ENT"},
    ],
)
def test_task_and_counts_are_the_orms(world, filters, django_assert_num_queries):
    exams = dict(zip("ab", world["exams"], strict=True))
    filters = {name: exams[value].pk if name == "examination" else value for name, value in filters.items()}
    task = world["task"]

    for user in (world["reader"], world["other"], world["superuser"]):
        with django_assert_num_queries(1):
            found = queue_task_and_counts(user=user, project_id=task.project_id, task_id=task.pk, **filters)
        assert found is not None
        got_task, counts = found
        assert counts == _queue_counts(user=user, task=task, **filters)
        with django_assert_num_queries(0):
            assert columns(got_task) == columns(task) and got_task.project.pk == task.project_id


def test_task_and_counts_hide_other_projects_and_unknown_tasks(world):
    task, outsider = world["task"], member_of(world["elsewhere"]["task"].project)

    assert queue_task_and_counts(user=outsider, project_id=task.project_id, task_id=task.pk) is None
    assert queue_task_and_counts(user=world["reader"], project_id=task.project_id, task_id=10**9) is None
    foreign = world["elsewhere"]["task"]
    assert queue_task_and_counts(user=world["reader"], project_id=task.project_id, task_id=foreign.pk) is None


# --- the page within the cursor's video ------------------------------------------------------------


@pytest.mark.parametrize(
    "filters", [{}, {"anatomical_site": "oral_cavity"}, {"device": "ENT"}, {"examination": "b"}]
)
@pytest.mark.parametrize("start", [0, 2, 5])
def test_the_page_in_the_cursors_video_is_the_orms(world, filters, start):
    exams = dict(zip("ab", world["exams"], strict=True))
    filters = {name: exams[value].pk if name == "examination" else value for name, value in filters.items()}
    task, reader = world["task"], world["reader"]
    cursor_frame = world["frames"][start]
    after = QueueKey(
        pseudonym=cursor_frame.examination.patient.pseudonym,
        code=cursor_frame.examination.code,
        video_name=cursor_frame.video.name,
        index_in_video=cursor_frame.index_in_video,
        frame_id=cursor_frame.pk,
        video_id=cursor_frame.video_id,
    )
    in_video = after.after_in_video()
    assert in_video is not None
    mine = Annotation.objects.filter(task=task, annotator_id=reader.pk)
    expected = list(
        queue_frames(task=task, **filters)
        .filter(~Exists(mine.filter(frame=OuterRef("pk"))))
        .filter(in_video)
        .select_related("examination__patient")
        .annotate(queue_video_name=F("video__name"))
        .order_by("index_in_video", "id")[:3]
    )

    page = _unannotated_in_video(user=reader, task=task, after=after, limit=3, **filters)

    # Nothing after the video's last frame, nor where the filters leave out the cursor's examination.
    assert bool(expected) == (start != 5 and not ({"device", "examination"} & set(filters)))
    assert [columns(frame) for frame in page] == [columns(frame) for frame in expected]
    names = [getattr(frame, "queue_video_name") for frame in (*page, *expected)]  # noqa: B009 (annotated)
    assert names[: len(page)] == names[len(page) :]
    assert [(columns(f.examination), columns(f.examination.patient)) for f in page] == [
        (columns(f.examination), columns(f.examination.patient)) for f in expected
    ]


# --- the work queue's answer -----------------------------------------------------------------------


def test_the_written_out_answer_is_drfs_field_by_field_answer(world):
    request = APIRequestFactory().get("/api/", HTTP_HOST="clear.example.org")
    for after in (None, "video"):
        queue = work_queue(user=world["reader"], task=world["task"], limit=20)
        if after is not None:
            frame = queue.frames[0]
            queue = work_queue(
                user=world["reader"],
                task=world["task"],
                limit=20,
                after=QueueKey.decode(getattr(frame, "queue_cursor")),  # noqa: B009 (set by work_queue)
            )
        serializer = WorkQueueOutputSerializer(queue, context={"request": request})

        written = serializer.data
        field_by_field = serializers.Serializer.to_representation(serializer, queue)

        assert written == field_by_field
        assert list(written["frames"][0]) == list(field_by_field["frames"][0])  # same keys, same order
    kinds = {
        (frame["video"] is None, frame["time_s"] is None, frame["crop_box"] is None)
        for frame in written["frames"]
    }
    assert len(kinds) >= 4  # stills and video frames, with and without time and crop box


# --- token authentication --------------------------------------------------------------------------


def test_token_authentication_answers_as_drfs(world):
    reader = world["reader"]
    client = APIClient()
    me = "/api/auth/me/"

    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=reader).key}")
    assert client.get(me).json()["username"] == reader.username
    client.credentials(HTTP_AUTHORIZATION="Token 0123456789abcdef0123456789abcdef01234567")
    unknown = client.get(me)
    reader.is_active = False
    reader.save(update_fields=["is_active"])
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get(user=reader).key}")
    inactive = client.get(me)

    # 403, not 401: DRF answers with the first authentication class's header, and session
    # authentication (first, for the browser app) has none.
    assert (unknown.status_code, unknown.json()["detail"]) == (403, "Invalid token.")
    assert (inactive.status_code, inactive.json()["detail"]) == (403, "User inactive or deleted.")
