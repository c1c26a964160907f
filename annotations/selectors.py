"""Reads of label schemas, annotations and adjudications, always scoped to the caller's projects."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import models
from django.db.models import Count, Exists, F, OuterRef, Prefetch, Q, QuerySet

from annotations.models import Adjudication, Annotation, LabelChoice, LabelTask
from records.models import Examination, Frame, ProjectMembership
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
    not count), with the counts. Two queries whatever the number of frames: one for the counts, one
    for the page.

    The counts test every frame against the caller's annotated frames as one set (`id IN (...)`,
    which PostgreSQL hashes once) rather than with a NOT EXISTS probe per frame, and read the frames
    without joining them to their examinations and patients: with 100,000 frames that took them
    from 150-175 ms to 50-95 ms (bench/README.md). The page keeps NOT EXISTS, which PostgreSQL plans
    as an anti-join inside the queue-order walk; `NOT IN` there is estimated so badly that with
    20,000 frames the planner picked a plan 8 times slower."""
    frames = queue_frames(task=task, **filters)
    mine = Annotation.objects.filter(task=task, annotator_id=user.pk)
    counts = _queue_frames_to_count(task=task, **filters).aggregate(
        total=Count("pk"), done=Count("pk", filter=Q(pk__in=mine.values("frame_id")))
    )
    page = list(
        frames.filter(~Exists(mine.filter(frame=OuterRef("pk")))).select_related("examination")[:limit]
    )
    return WorkQueue(
        task=task, total=counts["total"], remaining=counts["total"] - counts["done"], frames=page
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
