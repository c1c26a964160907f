"""Reads for exports: the frames an export's filters select, and the snapshots a user may see."""

from __future__ import annotations

from collections.abc import Sequence

from django.db.models import Count, Exists, OuterRef, Q, QuerySet

from annotations.datasets import FrameRecord, decided_values
from annotations.models import Adjudication, Annotation, LabelTask
from exports.models import ExportSnapshot
from exports.params import ExportFilters, ExportParams
from records.models import Frame, Project, ProjectMembership
from records.selectors import AnyUser

Role = ProjectMembership.Role
# Who may create, see and download exports: those who curate the data, not the readers.
EXPORT_ROLES = frozenset({Role.DATA_MANAGER, Role.COORDINATOR, Role.ADMIN})


def projects_exportable_by(user: AnyUser) -> QuerySet[Project]:
    """Projects where the user may export (every project for a superuser)."""
    if not user.is_authenticated:
        return Project.objects.none()
    if getattr(user, "is_superuser", False):
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user, memberships__role__in=EXPORT_ROLES).distinct()


def snapshots_visible_to(user: AnyUser) -> QuerySet[ExportSnapshot]:
    """Snapshots all of whose projects the user may export from: an export mixing in a project where
    the user only reads (or is no member) is not theirs to see."""
    if not user.is_authenticated:
        return ExportSnapshot.objects.none()
    if getattr(user, "is_superuser", False):
        return ExportSnapshot.objects.all()
    allowed = projects_exportable_by(user).values("pk")
    return ExportSnapshot.objects.annotate(
        outside=Count("projects", filter=~Q(projects__in=allowed), distinct=True)
    ).filter(outside=0)


def export_tasks(params: ExportParams, key: str) -> list[LabelTask]:
    """The task with `key` in each of the export's projects (a project without one adds nothing)."""
    return list(LabelTask.objects.filter(project_id__in=params.project_ids, key=key).order_by("project_id"))


def selected_frames(params: ExportParams, tasks: Sequence[LabelTask]) -> QuerySet[Frame]:
    """The frames of the export's projects that its filters keep, before the quality filter (which
    needs each frame's decided quality, see `keep_quality`)."""
    filters: ExportFilters = params.filters
    frames = Frame.objects.filter(examination__patient__project_id__in=params.project_ids)
    if filters.sites:
        frames = frames.filter(examination__anatomical_site__in=filters.sites)
    if filters.devices:
        frames = frames.filter(examination__device__in=filters.devices)
    if filters.date_from:
        frames = frames.filter(examination__date__gte=filters.date_from)
    if filters.date_to:
        frames = frames.filter(examination__date__lte=filters.date_to)
    if filters.label_state == "labelled":
        frames = frames.filter(
            Exists(
                Annotation.objects.filter(
                    frame=OuterRef("pk"), task__in=list(tasks), context=Annotation.Context.FREE
                )
            )
        )
    elif filters.label_state == "adjudicated":
        frames = frames.filter(
            Exists(Adjudication.objects.filter(frame=OuterRef("pk"), task__in=list(tasks)))
        )
    return frames


def keep_quality(params: ExportParams, frames: list[FrameRecord]) -> list[FrameRecord]:
    """The frames whose decided quality (adjudication, else the annotators' majority) is accepted;
    all of them when the export has no quality filter."""
    filters = params.filters
    if not filters.quality_task:
        return frames
    decided = decided_values(frames=frames, tasks=export_tasks(params, filters.quality_task))
    accepted = set(filters.quality_values)
    return [frame for frame in frames if decided.get(frame.frame_id) in accepted]
