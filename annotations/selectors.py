"""Reads of label schemas, annotations and adjudications, always scoped to the caller's projects."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, models
from django.db.models import Count, Exists, F, Max, OuterRef, Prefetch, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce

from annotations.models import Adjudication, Annotation, LabelChoice, LabelTask
from config.model_rows import cache_related, model_columns, table
from records.models import (
    Examination,
    ExaminationFrameCount,
    Frame,
    Patient,
    Project,
    ProjectMembership,
    Video,
)
from records.selectors import AnyUser, projects_visible_to

QUEUE_DEFAULT_LIMIT = 20
QUEUE_MAX_LIMIT = 100

Role = ProjectMembership.Role
SCHEMA_EDITOR_ROLES = frozenset({Role.COORDINATOR, Role.ADMIN})
# Who may read every annotation of a project (and its history), not only their own.
ANNOTATION_OVERSEER_ROLES = frozenset({Role.COORDINATOR, Role.ADMIN, Role.REVIEWER})
# Who may review disagreements and adjudicate them, and read adjudications (a superuser counts as
# admin). Readers never see adjudications: they are the reference readers are measured against.
ADJUDICATOR_ROLES = frozenset({Role.REVIEWER, Role.COORDINATOR, Role.ADMIN})


def label_tasks_visible_to(user: AnyUser) -> QuerySet[LabelTask]:
    return LabelTask.objects.filter(project__in=projects_visible_to(user))


def label_choices_visible_to(user: AnyUser) -> QuerySet[LabelChoice]:
    return LabelChoice.objects.filter(task__project__in=projects_visible_to(user))


def annotations_visible_to(user: AnyUser) -> QuerySet[Annotation]:
    """A user's own annotations in their projects, and every annotation of the projects where they
    are a coordinator, reviewer or admin (a superuser sees all). Readers never see each other's
    answers."""
    if not user.is_authenticated:
        return Annotation.objects.none()
    if getattr(user, "is_superuser", False):
        return Annotation.objects.all()
    overseen = ProjectMembership.objects.filter(user=user, role__in=ANNOTATION_OVERSEER_ROLES).values(
        "project_id"
    )
    return Annotation.objects.filter(
        Q(annotator=user, task__project__in=projects_visible_to(user)) | Q(task__project_id__in=overseen)
    )


def annotation_of(*, frame: Frame, task: LabelTask, annotator: AnyUser) -> Annotation | None:
    return Annotation.objects.filter(frame=frame, task=task, annotator_id=annotator.pk).first()


@dataclass(frozen=True)
class HistoryEntry:
    """One change of an annotation: when, by whom, what kind (+ created, ~ changed, - deleted), the
    state after it and the fields it changed (old and new values)."""

    history_id: int
    changed_at: datetime
    change_type: str
    changed_by_id: int | None
    changed_by: str | None
    version: int
    state: dict[str, Any]
    changes: list[dict[str, Any]]


_TRACKED = ("value", "confidence", "time_on_frame_ms", "ai_shown", "cam_visible_ms", "context", "version")


def annotation_history(annotation: Annotation) -> list[HistoryEntry]:
    """Every recorded state of the annotation, oldest first, with the changes from the one before."""
    return _history_entries(annotation.history.all(), _TRACKED)


def _history_entries(history: QuerySet[Any], tracked: Sequence[str]) -> list[HistoryEntry]:
    records = list(history.select_related("history_user").order_by("history_date", "history_id"))
    entries: list[HistoryEntry] = []
    previous: dict[str, Any] | None = None
    for record in records:
        state = {name: getattr(record, name) for name in tracked}
        changes = [
            {"field": name, "old": None if previous is None else previous[name], "new": state[name]}
            for name in tracked
            if previous is None or previous[name] != state[name]
        ]
        user = record.history_user
        entries.append(
            HistoryEntry(
                history_id=record.history_id,
                changed_at=record.history_date,
                change_type=record.history_type,
                changed_by_id=record.history_user_id,
                changed_by=user.get_username() if user is not None else None,
                version=record.version,
                state=state,
                changes=changes,
            )
        )
        previous = state
    return entries


# --- The labelling loop's look-ups in hand-written SQL ---------------------------------------------
# "next" and "submit" run once per labelled frame for every annotator at once; each ORM statement
# costs about half a millisecond of Python before PostgreSQL sees it (bench/README.md, label section),
# so their look-ups are single statements here, built from the models' own columns
# (config/model_rows.py). tests/annotations/test_label_path_sql.py holds them to the ORM's answers.


def _member_condition(user: AnyUser, project_column: str) -> tuple[str, list[Any]]:
    """SQL that is true where `user` may see the project in `project_column` (projects_visible_to)."""
    if getattr(user, "is_superuser", False):
        return "TRUE", []
    return (
        f"EXISTS (SELECT 1 FROM {table(ProjectMembership)} m "  # noqa: S608 (only model identifiers)
        f"WHERE m.project_id = {project_column} AND m.user_id = %s)",
        [user.pk],
    )


def _examination_conditions(
    *, examination: int | None = None, anatomical_site: str | None = None, device: str | None = None, **_: Any
) -> tuple[str, list[Any]]:
    """The queue's examination filters (_examination_lookups) as SQL on the alias `e`: ' AND ...'."""
    lookups = _examination_lookups(examination=examination, anatomical_site=anatomical_site, device=device)
    columns = {"pk": "id", "anatomical_site": "anatomical_site", "device": "device"}
    return "".join(f" AND e.{columns[name]} = %s" for name in lookups), list(lookups.values())


_FRAME_WITH_PARENTS: tuple[tuple[type[models.Model], str], ...] = (
    (Frame, "f"),
    (Examination, "e"),
    (Patient, "p"),
)


def _frame_with_parents_sql() -> tuple[str, str]:
    """The SELECT list and FROM clause of frames `f` with their examination `e` and patient `p`."""
    columns = ", ".join(model_columns(model, alias).sql for model, alias in _FRAME_WITH_PARENTS)
    return columns, (
        f"FROM {table(Frame)} f JOIN {table(Examination)} e ON e.id = f.examination_id "
        f"JOIN {table(Patient)} p ON p.id = e.patient_id"
    )


def _frame_with_parents(row: Sequence[Any]) -> tuple[Frame, int]:
    """The frame at the start of a row selected with _frame_with_parents_sql, its examination and
    patient cached on it as select_related("examination__patient") does; and where the row goes on."""
    frame, exam, patient = (model_columns(model, alias) for model, alias in _FRAME_WITH_PARENTS)
    found = frame.instance(row)
    found_exam = exam.instance(row, frame.width)
    cache_related(found_exam, "patient", patient.instance(row, frame.width + exam.width))
    cache_related(found, "examination", found_exam)
    return found, frame.width + exam.width + patient.width


@dataclass(frozen=True)
class SubmitTargets:
    """What a submit needs before it writes: the frame (with its examination and patient), the task of
    the frame's project (None: no such task there) and the task's choice of the submitted value
    (None: the value is no choice of it, or no value was given)."""

    frame: Frame
    task: LabelTask | None
    choice: LabelChoice | None


def submit_targets(*, user: AnyUser, frame_id: int, task_id: int, value: str | None) -> SubmitTargets | None:
    """The frame visible to `user`, with the task and the choice of `value`, in one query; None when
    the frame is not visible to them. Same answers as frames_visible_to(...).get(pk=frame_id) with
    select_related("examination__patient"), then the project's task and its choice of `value`."""
    frame_columns, frames = _frame_with_parents_sql()
    task, choice = model_columns(LabelTask, "t"), model_columns(LabelChoice, "c")
    visible, visible_params = _member_condition(user, "p.project_id")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {frame_columns}, {task.sql}, {choice.sql} {frames} "
            f"LEFT JOIN {table(LabelTask)} t ON t.id = %s AND t.project_id = p.project_id "
            f"LEFT JOIN {table(LabelChoice)} c ON c.task_id = t.id AND c.value = %s "
            f"WHERE f.id = %s AND {visible}",
            [task_id, value, frame_id, *visible_params],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    found_frame, start = _frame_with_parents(row)
    found_task = task.instance_or_none(row, start)
    found_choice = choice.instance_or_none(row, start + task.width)
    if found_choice is not None:
        cache_related(found_choice, "task", found_task)
    return SubmitTargets(frame=found_frame, task=found_task, choice=found_choice)


# --- Work queue -----------------------------------------------------------------------------------


def queue_task_of(*, user: AnyUser, project_id: int, task_id: int) -> LabelTask | None:
    """The task, if it belongs to this project and the caller is a member of it (one query)."""
    return (
        label_tasks_visible_to(user)
        .filter(project_id=project_id, pk=task_id)
        .select_related("project")
        .first()
    )


def queue_task_and_counts(
    *, user: AnyUser, project_id: int, task_id: int, **filters: Any
) -> tuple[LabelTask, tuple[int, int] | None] | None:
    """queue_task_of, and in the same hand-written query the work queue's (total, done) for these
    filters (see _queue_counts: the sum of the matching examinations' maintained frame counts, and
    the caller's annotations of the task among them) as two scalar subqueries, which save "next" a
    round trip to the database; None for the counts with the quality filter (work_queue then counts
    in its own query). None when there is no such task for the caller."""
    if _has_quality_filter(filters):
        task = queue_task_of(user=user, project_id=project_id, task_id=task_id)
        return None if task is None else (task, None)
    examination_conditions, examination_params = _examination_conditions(**filters)
    # The subqueries name the project and task by their ids (those the row must have anyway), not by
    # outer references: each is planned on its own, once.
    examinations = (
        f"SELECT e.id FROM {table(Examination)} e JOIN {table(Patient)} p ON p.id = e.patient_id "  # noqa: S608 (only model identifiers)
        f"WHERE p.project_id = %s{examination_conditions}"
    )
    mine = f"SELECT COUNT(*) FROM {table(Annotation)} a"  # noqa: S608 (only model identifiers)
    mine_params: list[Any] = []
    if examination_conditions:
        mine += f" JOIN {table(Frame)} f ON f.id = a.frame_id WHERE f.examination_id IN ({examinations}) AND"
        mine_params = [project_id, *examination_params]
    else:
        mine += " WHERE"
    mine += " a.task_id = %s AND a.annotator_id = %s"
    task_columns, project_columns = model_columns(LabelTask, "t"), model_columns(Project, "pr")
    visible, visible_params = _member_condition(user, "t.project_id")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {task_columns.sql}, {project_columns.sql}, "  # noqa: S608 (only model identifiers)
            f"COALESCE((SELECT SUM(c.frames) FROM {table(ExaminationFrameCount)} c "
            f"WHERE c.examination_id IN ({examinations})), 0), COALESCE(({mine}), 0) "
            f"FROM {table(LabelTask)} t JOIN {table(Project)} pr ON pr.id = t.project_id "
            f"WHERE t.project_id = %s AND t.id = %s AND {visible}",
            [
                project_id,
                *examination_params,
                *mine_params,
                task_id,
                user.pk,
                project_id,
                task_id,
                *visible_params,
            ],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    task = task_columns.instance(row)
    cache_related(task, "project", project_columns.instance(row, task_columns.width))
    total, done = row[-2:]
    return task, (int(total), int(done))


def queue_frames(
    *,
    task: LabelTask,
    examination: int | None = None,
    anatomical_site: str | None = None,
    device: str | None = None,
    quality_task: int | None = None,
    quality_value: str | None = None,
) -> QuerySet[Frame]:
    """The task's project's frames matching the filters, in queue order.

    Queue order: the examination's patient pseudonym, the examination code, the video name (frames
    without a video last), index_in_video (none last), then the frame id. Every key comes from data
    that does not change once imported, and the id breaks ties, so the order is total and
    deterministic; a newly imported frame takes its place in it without reshuffling the others.

    `quality_task` + `quality_value` keep the frames that any annotator labelled with that value for
    that task; a task of another project matches nothing (ids the caller cannot see are not errors).
    """
    lookups = _examination_lookups(examination=examination, anatomical_site=anatomical_site, device=device)
    frames = Frame.objects.filter(
        examination__patient__project_id=task.project_id,
        **{f"examination__{name}": value for name, value in lookups.items()},
    )
    rated = _rated(task=task, quality_task=quality_task, quality_value=quality_value)
    if rated is not None:
        frames = frames.filter(rated)
    return frames.order_by(
        "examination__patient__pseudonym",
        "examination__code",
        F("video__name").asc(nulls_last=True),
        F("index_in_video").asc(nulls_last=True),
        "id",
    )


def _examination_lookups(
    *, examination: int | None, anatomical_site: str | None, device: str | None
) -> dict[str, Any]:
    """The queue's examination filters as lookups on Examination."""
    lookups: dict[str, Any] = {}
    if examination is not None:
        lookups["pk"] = examination
    if anatomical_site is not None:
        lookups["anatomical_site"] = anatomical_site
    if device is not None:
        lookups["device"] = device
    return lookups


def _has_quality_filter(filters: dict[str, Any]) -> bool:
    """Whether the queue's filters include the quality filter (both its task and its value), which
    the hand-written statements leave to the ORM (_rated)."""
    return filters.get("quality_task") is not None and filters.get("quality_value") is not None


def _rated(*, task: LabelTask, quality_task: int | None, quality_value: str | None) -> Exists | None:
    """The quality filter as a condition on frames, or None without one."""
    if quality_task is None or quality_value is None:
        return None
    return Exists(
        Annotation.objects.filter(
            frame=OuterRef("pk"), task_id=quality_task, task__project_id=task.project_id, value=quality_value
        )
    )


def _queue_frames_to_count(
    *,
    task: LabelTask,
    examination: int | None = None,
    anatomical_site: str | None = None,
    device: str | None = None,
    quality_task: int | None = None,
    quality_value: str | None = None,
) -> QuerySet[Frame]:
    """The frames of queue_frames, unordered, with the examination filters as a subquery on
    Examination: counting them then needs no join of every frame to its examination and patient
    (half the time with 100,000 frames)."""
    lookups = _examination_lookups(examination=examination, anatomical_site=anatomical_site, device=device)
    frames = Frame.objects.filter(
        examination__in=Examination.objects.filter(patient__project_id=task.project_id, **lookups)
    )
    rated = _rated(task=task, quality_task=quality_task, quality_value=quality_value)
    return frames if rated is None else frames.filter(rated)


class InvalidQueueCursor(ValueError):
    """An `after` cursor that is not one the work queue gave out."""


@dataclass(frozen=True)
class QueueKey:
    """A frame's position in the queue order (see queue_frames): its patient's pseudonym, its
    examination's code, its video's name (None: a loose still, after the videos), its index in the
    video (None last) and its id; and its video's id, which the order does not use but which lets
    the next page start from the (video, index_in_video) index (see work_queue)."""

    pseudonym: str
    code: str
    video_name: str | None
    index_in_video: int | None
    frame_id: int
    video_id: int | None = None

    def encode(self) -> str:
        """The key as an opaque cursor (URL-safe base64 of JSON, no padding)."""
        raw = json.dumps(
            [self.pseudonym, self.code, self.video_name, self.index_in_video, self.frame_id, self.video_id],
            separators=(",", ":"),
        )
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str) -> QueueKey:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            pseudonym, code, video_name, index, frame_id, video_id = json.loads(raw)
        except (ValueError, TypeError) as exc:
            raise InvalidQueueCursor("Not a work-queue cursor.") from exc
        if not (
            isinstance(pseudonym, str)
            and isinstance(code, str)
            and (video_name is None or isinstance(video_name, str))
            and (index is None or (isinstance(index, int) and not isinstance(index, bool)))
            and isinstance(frame_id, int)
            and not isinstance(frame_id, bool)
            and (video_id is None) == (video_name is None)
            and (video_id is None or (isinstance(video_id, int) and not isinstance(video_id, bool)))
        ):
            raise InvalidQueueCursor("Not a work-queue cursor.")
        return cls(pseudonym, code, video_name, index, frame_id, video_id)

    def after(self) -> Q:
        """The frames strictly after this key in queue order, as a condition on Frame querysets.

        Besides the lexicographic condition it states `pseudonym >= P` and, per examination,
        `(pseudonym, code) >= (P, C)` on their own: PostgreSQL then starts its walk of the queue
        at the cursor's patient in the (project, pseudonym) index and leaves out the examinations
        before the cursor's without reading their frames."""
        pseudonym, code = "examination__patient__pseudonym", "examination__code"
        if self.index_in_video is None:
            index_after = Q(index_in_video__isnull=True, id__gt=self.frame_id)
        else:
            index_after = (
                Q(index_in_video__isnull=True)
                | Q(index_in_video__gt=self.index_in_video)
                | Q(index_in_video=self.index_in_video, id__gt=self.frame_id)
            )
        if self.video_name is None:
            in_examination = Q(video__isnull=True) & index_after
        else:
            in_examination = (
                Q(video__isnull=True)
                | Q(video__name__gt=self.video_name)
                | (Q(video__name=self.video_name) & index_after)
            )
        later = (
            Q(**{f"{pseudonym}__gt": self.pseudonym})
            | Q(**{pseudonym: self.pseudonym, f"{code}__gt": self.code})
            | (Q(**{pseudonym: self.pseudonym, code: self.code}) & in_examination)
        )
        from_examination = Q(**{f"{pseudonym}__gt": self.pseudonym}) | Q(**{f"{code}__gte": self.code})
        return Q(**{f"{pseudonym}__gte": self.pseudonym}) & from_examination & later

    def after_in_video(self) -> Q | None:
        """The frames after this key in its own video that have an index (which come first after it
        in queue order, in (index_in_video, id) order), or None for a loose still or a frame without
        index."""
        if self.video_id is None or self.index_in_video is None:
            return None
        return Q(video_id=self.video_id) & (
            Q(index_in_video__gt=self.index_in_video)
            | Q(index_in_video=self.index_in_video, id__gt=self.frame_id)
        )


def queue_key_of(frame: Frame) -> QueueKey:
    """The queue key of a frame from work_queue (which selects its examination and patient and
    annotates its video's name)."""
    return QueueKey(
        pseudonym=frame.examination.patient.pseudonym,
        code=frame.examination.code,
        video_name=frame.queue_video_name,  # type: ignore[attr-defined]
        index_in_video=frame.index_in_video,
        frame_id=frame.pk,
        video_id=frame.video_id,
    )


@dataclass(frozen=True)
class WorkQueue:
    task: LabelTask
    total: int
    remaining: int
    frames: list[Frame]
    next_cursor: str | None = None


def _queue_counts(
    *,
    user: AnyUser,
    task: LabelTask,
    examination: int | None = None,
    anatomical_site: str | None = None,
    device: str | None = None,
    quality_task: int | None = None,
    quality_value: str | None = None,
) -> tuple[int, int]:
    """(total, done) for the work queue: the frames matching the filters and those of them the
    caller has annotated for the task.

    Without the quality filter `total` is the sum of the maintained per-examination frame counts
    (records.ExaminationFrameCount, kept by database triggers) of the matching examinations, and
    `done` counts the caller's own annotations of the task (without examination filters not even
    joined to the frames: an annotation's frame is always of its task's project). Neither reads the
    project's frames, so they cost the same with 1,000 or 1,000,000 frames. With the quality filter
    (a condition on other annotators' labels that no count can be kept for) both are exact counts
    over the matching frames, in one query."""
    mine = Annotation.objects.filter(task=task, annotator_id=user.pk)
    if quality_task is not None and quality_value is not None:
        counts = _queue_frames_to_count(
            task=task,
            examination=examination,
            anatomical_site=anatomical_site,
            device=device,
            quality_task=quality_task,
            quality_value=quality_value,
        ).aggregate(total=Count("pk"), done=Count("pk", filter=Q(pk__in=mine.values("frame_id"))))
        return counts["total"], counts["done"]
    lookups = _examination_lookups(examination=examination, anatomical_site=anatomical_site, device=device)
    examinations = Examination.objects.filter(patient__project_id=task.project_id, **lookups)
    if lookups:
        mine = mine.filter(frame__examination__in=examinations)
    # One query: the sum of the counts, with `done` as an uncorrelated scalar subquery (run once;
    # wrapped in Max only because aggregate() takes aggregates). No count row: no frames, and then
    # no annotations of them either. COUNT(*), not COUNT(id): with an index on Annotation
    # (annotator, task) that is an index-only scan (100,000 frames, 10,500 done: 6.6 -> 2.6 ms).
    done = Subquery(mine.order_by().values("task").annotate(n=Count("*")).values("n"))
    counts = ExaminationFrameCount.objects.filter(examination__in=examinations).aggregate(
        total=Sum("frames"), done=Max(done, output_field=models.IntegerField())
    )
    return counts["total"] or 0, counts["done"] or 0


def _unannotated_in_video(
    *,
    user: AnyUser,
    task: LabelTask,
    after: QueueKey,
    limit: int,
    examination: int | None = None,
    anatomical_site: str | None = None,
    device: str | None = None,
    **_: Any,
) -> list[Frame]:
    """The next `limit` frames after `after` in its own video that the caller has not annotated for
    the task, in (index_in_video, id) order, with their examination and patient and
    `queue_video_name`: work_queue's usual page (each "next" continues after the frame labelled
    last) in one hand-written statement, the same as the ORM's `unannotated.filter(after_in_video)`
    (tests/annotations/test_label_path_sql.py holds them equal)."""
    frame_columns, frames = _frame_with_parents_sql()
    conditions, params = _examination_conditions(
        examination=examination, anatomical_site=anatomical_site, device=device
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {frame_columns}, v.name {frames} JOIN {table(Video)} v ON v.id = f.video_id "  # noqa: S608 (only model identifiers)
            f"WHERE p.project_id = %s{conditions} AND f.video_id = %s "
            "AND (f.index_in_video > %s OR (f.index_in_video = %s AND f.id > %s)) "
            f"AND NOT EXISTS (SELECT 1 FROM {table(Annotation)} a "
            "WHERE a.annotator_id = %s AND a.task_id = %s AND a.frame_id = f.id) "
            "ORDER BY f.index_in_video, f.id LIMIT %s",
            [
                task.project_id,
                *params,
                after.video_id,
                after.index_in_video,
                after.index_in_video,
                after.frame_id,
                user.pk,
                task.pk,
                limit,
            ],
        )
        rows = cursor.fetchall()
    page = []
    for row in rows:
        found, end = _frame_with_parents(row)
        found.queue_video_name = row[end]  # type: ignore[attr-defined]
        page.append(found)
    return page


class QueueOrder(models.TextChoices):
    QUEUE = "queue", "Queue order (patient, examination, sequence, index)"
    UNCERTAINTY = "uncertainty", "Least confident prediction of the task's active model first"
    DISAGREEMENT = "disagreement", "Most annotators disagreeing with the active model first"


class NoActiveModel(ValueError):
    """An order by the model was asked for a task without an active model version."""


def _model_ordered(frames: QuerySet[Frame], *, task: LabelTask, order: str) -> QuerySet[Frame]:
    """Active learning: `frames` ordered by what the task's active model version said of them, queue
    order breaking ties. Uncertainty: the lowest top probability first. Disagreement: the most
    annotations (anyone's) of the task whose value is not the model's first, then uncertainty.
    Frames the model has not scored (or its gate kept out) come after the scored ones."""
    from inference.models import ModelVersion, Prediction

    version = ModelVersion.objects.filter(
        project_id=task.project_id, task=task, status=ModelVersion.Status.ACTIVE
    ).first()
    if version is None:
        raise NoActiveModel(f"Task {task.key!r} has no active model version to order the queue by.")
    prediction = Prediction.objects.filter(model_version=version, task=task, frame=OuterRef("pk")).order_by(
        "-id"
    )
    frames = frames.annotate(
        model_confidence=Subquery(prediction.values("confidence")[:1]),
        model_value=Subquery(prediction.values("predicted_value")[:1]),
    )
    keys = [F("model_confidence").asc(nulls_last=True)]
    if order == QueueOrder.DISAGREEMENT:
        disagreeing = (
            Annotation.objects.filter(task=task, frame=OuterRef("pk"))
            .exclude(value=OuterRef("model_value"))
            .order_by()
            .values("frame")
            .annotate(n=Count("*"))
            .values("n")
        )
        frames = frames.annotate(model_disagreements=Coalesce(Subquery(disagreeing), 0))
        keys = [F("model_disagreements").desc(), *keys]
    return frames.order_by(*keys, *frames.query.order_by)


def work_queue(
    *,
    user: AnyUser,
    task: LabelTask,
    limit: int = QUEUE_DEFAULT_LIMIT,
    after: QueueKey | None = None,
    order: str = QueueOrder.QUEUE,
    counts: tuple[int, int] | None = None,
    **filters: Any,
) -> WorkQueue:
    """The next `limit` frames matching the filters that the caller has not annotated for the task
    (a frame is done for them once they have an Annotation for (frame, task); others' annotations do
    not count), with the counts. Two queries whatever the number of frames: one for the counts,
    one for the page (a third when a cursor's video ends within the page, see below).

    `after` (a QueueKey, given out as each frame's `cursor` and the page's `next_cursor`) starts the
    page after that position in queue order, instead of at the start of the queue: PostgreSQL then
    walks the queue from the cursor's patient and examination on, rather than probing every frame
    the caller has already labelled (or skipped) from the start; and when the cursor's frame is in a
    video, the page is first looked for among that video's next frames alone, through the
    (video, index_in_video) index (100,000 frames: under 1 ms instead of reading the cursor's
    patient's 2,500 frames). Without it the page starts at the
    first unannotated frame, as before. Frames before the cursor that are still unannotated (skipped)
    are not in the page, but they still count in `remaining`.

    `total` and `remaining` = total - done: see _queue_counts; `counts` gives them already counted
    (queue_task_and_counts, for these filters). The page keeps NOT EXISTS, which
    PostgreSQL plans as an anti-join inside the queue-order walk; `NOT IN` there is estimated so
    badly that with 20,000 frames the planner picked a plan 8 times slower."""
    total, done = counts if counts is not None else _queue_counts(user=user, task=task, **filters)

    def unannotated() -> QuerySet[Frame]:
        mine = Annotation.objects.filter(task=task, annotator_id=user.pk)
        return (
            queue_frames(task=task, **filters)
            .filter(~Exists(mine.filter(frame=OuterRef("pk"))))
            # The patient too (already joined for the order): the pseudonym is part of each frame's
            # cursor, and the frame serializer reads the project id from it.
            .select_related("examination__patient")
            .annotate(queue_video_name=F("video__name"))
        )

    if order != QueueOrder.QUEUE:
        # Ordered by the model, the page is simply the first unannotated frames: what the caller
        # labels drops out, so asking again gives the next ones (no cursor).
        ranked = list(_model_ordered(unannotated(), task=task, order=order)[:limit])
        for frame in ranked:
            frame.queue_cursor = queue_key_of(frame).encode()  # type: ignore[attr-defined]
        return WorkQueue(
            task=task, total=total, remaining=max(0, total - done), frames=ranked, next_cursor=None
        )
    page: list[Frame] = []
    if after is not None and after.video_id is not None and after.index_in_video is not None:
        # Usually the page lies in the cursor's own video: its frames with an index after the cursor
        # come first in queue order, and the (video, index_in_video) index yields them in order
        # without reading the rest of the examination. Only a full page is the answer; a short one
        # (the video's end) falls through to the whole order.
        if not _has_quality_filter(filters):
            page = _unannotated_in_video(user=user, task=task, after=after, limit=limit, **filters)
        else:
            in_video = after.after_in_video()
            assert in_video is not None  # a video and an index: see QueueKey.after_in_video
            page = list(unannotated().filter(in_video).order_by("index_in_video", "id")[:limit])
    if len(page) < limit:
        frames = unannotated() if after is None else unannotated().filter(after.after())
        page = list(frames[:limit])
    for frame in page:
        frame.queue_cursor = queue_key_of(frame).encode()  # type: ignore[attr-defined]
    next_cursor = page[-1].queue_cursor if page else (after.encode() if after is not None else None)  # type: ignore[attr-defined]
    return WorkQueue(
        task=task, total=total, remaining=max(0, total - done), frames=page, next_cursor=next_cursor
    )


# --- Review of disagreements and adjudications ----------------------------------------------------


def adjudications_visible_to(user: AnyUser) -> QuerySet[Adjudication]:
    """Adjudications of the projects where the user is an adjudicator (reviewer, coordinator or
    admin; a superuser sees all). Everyone else, readers above all, sees none."""
    if not user.is_authenticated:
        return Adjudication.objects.none()
    if getattr(user, "is_superuser", False):
        return Adjudication.objects.all()
    adjudicating = ProjectMembership.objects.filter(user=user, role__in=ADJUDICATOR_ROLES).values(
        "project_id"
    )
    return Adjudication.objects.filter(task__project_id__in=adjudicating)


def adjudication_of(*, frame: Frame, task: LabelTask) -> Adjudication | None:
    return Adjudication.objects.filter(frame=frame, task=task).select_related("adjudicated_by").first()


_ADJUDICATION_TRACKED = ("value", "rationale", "adjudicated_by_id", "based_on", "version")


def adjudication_history(adjudication: Adjudication) -> list[HistoryEntry]:
    """Every recorded decision on the adjudication, oldest first, with the changes from the one before."""
    return _history_entries(adjudication.history.all(), _ADJUDICATION_TRACKED)


def free_annotations(*, task: LabelTask) -> QuerySet[Annotation]:
    """The task's free-labelling annotations (reader-study readings are not part of labelling)."""
    return Annotation.objects.filter(task=task, context=Annotation.Context.FREE)


def disagreement(*, task: LabelTask) -> Exists:
    """True for a frame (as a condition on Frame querysets) whose annotators disagree on `task`.

    A frame disagrees on a task when it has free-labelling (context=free) annotations of that task
    from at least 2 different annotators and they do not all have the same value. Reader-study
    readings (context=study) are ignored; a single annotator never disagrees with themselves.
    """
    return Exists(
        free_annotations(task=task)
        .filter(frame=OuterRef("pk"))
        .order_by()
        .values("frame")
        .annotate(annotators=Count("annotator", distinct=True), values=Count("value", distinct=True))
        .filter(annotators__gte=2, values__gte=2)
    )


class ReviewStatus(models.TextChoices):
    OPEN = "open", "Disagreeing and not yet adjudicated"
    ADJUDICATED = "adjudicated", "Adjudicated (a decision exists, whether or not the annotators disagree)"
    ALL = "all", "Every disagreeing frame, adjudicated or not"


@dataclass(frozen=True)
class ReviewItem:
    frame: Frame
    annotations: list[Annotation]
    adjudication: Adjudication | None
    disagreement: bool


@dataclass(frozen=True)
class ReviewQueue:
    task: LabelTask
    open: int
    adjudicated: int
    items: list[ReviewItem]


def review_queue(
    *,
    task: LabelTask,
    status: str = ReviewStatus.OPEN,
    limit: int = QUEUE_DEFAULT_LIMIT,
    examination: int | None = None,
    anatomical_site: str | None = None,
    device: str | None = None,
) -> ReviewQueue:
    """The first `limit` frames of the task's project in `status`, in work-queue order (queue_frames),
    each with its free-labelling annotations of the task and its adjudication (or None), and the
    counts of open and adjudicated frames matching the filters.

    `status`: open = disagreeing (see `disagreement`) and not adjudicated; adjudicated = an
    Adjudication of (frame, task) exists, whether or not the annotators disagree (now or ever: a
    reviewer may confirm an agreed label); all = every disagreeing frame, adjudicated or not.

    Four queries whatever the number of frames: the counts, the page, the page's annotations (with
    their annotators) and the page's adjudications (with their adjudicators).
    """
    frames = queue_frames(task=task, examination=examination, anatomical_site=anatomical_site, device=device)
    disagrees = disagreement(task=task)
    adjudicated = Exists(Adjudication.objects.filter(frame=OuterRef("pk"), task=task))
    conditions = {
        ReviewStatus.OPEN: disagrees & ~adjudicated,
        ReviewStatus.ADJUDICATED: Q(adjudicated),
        ReviewStatus.ALL: Q(disagrees),
    }
    counts = frames.aggregate(
        open=Count("pk", filter=conditions[ReviewStatus.OPEN]),
        adjudicated=Count("pk", filter=conditions[ReviewStatus.ADJUDICATED]),
    )
    page = list(
        frames.filter(conditions[ReviewStatus(status)])
        .annotate(review_disagreement=disagrees)
        .select_related("examination")
        .prefetch_related(
            Prefetch(
                "annotations",
                queryset=free_annotations(task=task).select_related("annotator").order_by("id"),
                to_attr="review_annotations",
            ),
            Prefetch(
                "adjudications",
                queryset=Adjudication.objects.filter(task=task).select_related("adjudicated_by"),
                to_attr="review_adjudications",
            ),
        )[:limit]
    )
    items = [
        ReviewItem(
            frame=frame,
            annotations=frame.review_annotations,
            adjudication=next(iter(frame.review_adjudications), None),
            disagreement=frame.review_disagreement,
        )
        for frame in page
    ]
    return ReviewQueue(task=task, open=counts["open"], adjudicated=counts["adjudicated"], items=items)


def annotations_for_adjudication(*, frame: Frame, task: LabelTask) -> QuerySet[Annotation]:
    """The free-labelling annotations an adjudication of (frame, task) is decided over, oldest first."""
    return free_annotations(task=task).filter(frame=frame).order_by("id")
