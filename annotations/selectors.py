"""Reads of label schemas and annotations, always scoped to the caller's projects."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet

from annotations.models import Annotation, LabelChoice, LabelTask
from records.models import Frame, ProjectMembership
from records.selectors import AnyUser, projects_visible_to

QUEUE_DEFAULT_LIMIT = 20
QUEUE_MAX_LIMIT = 100

Role = ProjectMembership.Role
SCHEMA_EDITOR_ROLES = frozenset({Role.COORDINATOR, Role.ADMIN})
# Who may read every annotation of a project (and its history), not only their own.
ANNOTATION_OVERSEER_ROLES = frozenset({Role.COORDINATOR, Role.ADMIN})


def label_tasks_visible_to(user: AnyUser) -> QuerySet[LabelTask]:
    return LabelTask.objects.filter(project__in=projects_visible_to(user))


def label_choices_visible_to(user: AnyUser) -> QuerySet[LabelChoice]:
    return LabelChoice.objects.filter(task__project__in=projects_visible_to(user))


def annotations_visible_to(user: AnyUser) -> QuerySet[Annotation]:
    """A user's own annotations in their projects, and every annotation of the projects where they
    are a coordinator or admin (a superuser sees all). Readers never see each other's answers."""
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


_TRACKED = ("value", "confidence", "time_on_frame_ms", "ai_shown", "context", "version")


def annotation_history(annotation: Annotation) -> list[HistoryEntry]:
    """Every recorded state of the annotation, oldest first, with the changes from the one before."""
    records = list(annotation.history.select_related("history_user").order_by("history_date", "history_id"))
    entries: list[HistoryEntry] = []
    previous: dict[str, Any] | None = None
    for record in records:
        state = {name: getattr(record, name) for name in _TRACKED}
        changes = [
            {"field": name, "old": None if previous is None else previous[name], "new": state[name]}
            for name in _TRACKED
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


# --- Work queue -----------------------------------------------------------------------------------


def queue_task_of(*, user: AnyUser, project_id: int, task_id: int) -> LabelTask | None:
    """The task, if it belongs to this project and the caller is a member of it (one query)."""
    return (
        label_tasks_visible_to(user)
        .filter(project_id=project_id, pk=task_id)
        .select_related("project")
        .first()
    )


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
    frames = Frame.objects.filter(examination__patient__project_id=task.project_id)
    if examination is not None:
        frames = frames.filter(examination_id=examination)
    if anatomical_site is not None:
        frames = frames.filter(examination__anatomical_site=anatomical_site)
    if device is not None:
        frames = frames.filter(examination__device=device)
    if quality_task is not None and quality_value is not None:
        rated = Annotation.objects.filter(
            frame=OuterRef("pk"),
            task_id=quality_task,
            task__project_id=task.project_id,
            value=quality_value,
        )
        frames = frames.filter(Exists(rated))
    return frames.order_by(
        "examination__patient__pseudonym",
        "examination__code",
        F("video__name").asc(nulls_last=True),
        F("index_in_video").asc(nulls_last=True),
        "id",
    )


@dataclass(frozen=True)
class WorkQueue:
    task: LabelTask
    total: int
    remaining: int
    frames: list[Frame]


def work_queue(
    *, user: AnyUser, task: LabelTask, limit: int = QUEUE_DEFAULT_LIMIT, **filters: Any
) -> WorkQueue:
    """The next `limit` frames matching the filters that the caller has not annotated for the task
    (a frame is done for them once they have an Annotation for (frame, task); others' annotations do
    not count), with the counts. Two queries whatever the number of frames: one aggregate for the
    counts, one for the page (NOT EXISTS on the caller's annotations)."""
    frames = queue_frames(task=task, **filters)
    done = Annotation.objects.filter(frame=OuterRef("pk"), task=task, annotator_id=user.pk)
    counts = frames.aggregate(total=Count("pk"), remaining=Count("pk", filter=~Exists(done)))
    page = list(frames.filter(~Exists(done)).select_related("examination")[:limit])
    return WorkQueue(task=task, total=counts["total"], remaining=counts["remaining"], frames=page)
