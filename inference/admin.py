"""Model versions, predictions and task gates in the admin: read-only (the services check files and keep one
active version per task) and scoped to the staff user's projects like the records admin."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from inference.models import ModelVersion, Prediction, TaskGate
from inference.selectors import (
    model_versions_visible_to,
    predictions_visible_to,
    task_gates_visible_to,
)
from records.admin import ProjectScopedAdmin


class ReadOnlyScopedAdmin(ProjectScopedAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyScopedAdmin):
    list_display = ["name", "project", "task", "architecture", "status", "created_at"]
    list_filter = ["status", "architecture"]
    search_fields = ["name", "sha256"]
    list_select_related = ["project", "task"]

    def scope(self, request: HttpRequest) -> QuerySet[Any]:
        return model_versions_visible_to(request.user)


@admin.register(Prediction)
class PredictionAdmin(ReadOnlyScopedAdmin):
    list_display = [
        "frame",
        "model_version",
        "task",
        "predicted_value",
        "confidence",
        "gate_passed",
        "created_at",
    ]
    list_select_related = ["model_version", "task", "frame"]
    raw_id_fields = ["frame", "model_version", "task", "gate_prediction"]

    def scope(self, request: HttpRequest) -> QuerySet[Any]:
        return predictions_visible_to(request.user)


@admin.register(TaskGate)
class TaskGateAdmin(ReadOnlyScopedAdmin):
    list_display = ["task", "gate_task", "diagnostic_values", "project", "updated_at"]
    list_select_related = ["task", "gate_task", "project"]

    def scope(self, request: HttpRequest) -> QuerySet[Any]:
        return task_gates_visible_to(request.user)
