"""Jobs in the admin: read-only (workers write them), filterable by status and kind."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from jobs.models import Job
from records.selectors import projects_visible_to


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "project", "status", "progress_display", "created_by", "created_at"]
    list_filter = ["status", "kind", "project"]
    search_fields = ["kind", "message", "error", "worker"]
    list_select_related = ["project", "created_by"]
    date_hierarchy = "created_at"
    fields = readonly_fields = (
        "kind",
        "project",
        "created_by",
        "status",
        "progress_done",
        "progress_total",
        "message",
        "error",
        "params",
        "result",
        "attempts",
        "worker",
        "created_at",
        "started_at",
        "heartbeat_at",
        "finished_at",
    )

    @admin.display(description="progress")
    def progress_display(self, job: Job) -> str:
        progress = job.progress
        return "-" if progress is None else f"{progress:.0%}"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Job]:
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(project__in=projects_visible_to(request.user))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
