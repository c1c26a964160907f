"""Reads of label schemas and annotations, always scoped to the caller's projects."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet

from annotations.models import Annotation, LabelChoice, LabelTask
from records.models import Frame, ProjectMembership
from records.selectors import AnyUser, projects_visible_to

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
