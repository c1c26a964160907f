"""Reads of the inference app, always scoped to the caller's projects."""

from __future__ import annotations

from django.db.models import QuerySet

from inference.models import ModelVersion, Prediction
from records.models import Frame
from records.selectors import AnyUser, projects_visible_to


def model_versions_visible_to(user: AnyUser) -> QuerySet[ModelVersion]:
    return ModelVersion.objects.filter(project__in=projects_visible_to(user)).select_related("task")


def predictions_visible_to(user: AnyUser) -> QuerySet[Prediction]:
    return Prediction.objects.filter(model_version__project__in=projects_visible_to(user))


def frame_active_predictions(frame: Frame) -> QuerySet[Prediction]:
    """The frame's predictions made by the active model version of each task (one per task)."""
    return (
        Prediction.objects.filter(frame=frame, model_version__status=ModelVersion.Status.ACTIVE)
        .select_related("model_version", "task")
        .order_by("task__order", "task_id")
    )
