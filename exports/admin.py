"""Export snapshots in the admin: read-only (the export job writes them), scoped to the staff user's
projects."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from exports.models import ExportSnapshot
from records.models import Project
from records.selectors import projects_visible_to


@admin.register(ExportSnapshot)
class ExportSnapshotAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "format",
        "task_key",
        "label_source",
        "status",
        "snapshot_hash",
        "created_by",
        "created_at",
    ]
    list_filter = ["status", "format", "label_source"]
    list_select_related = ["created_by"]
    fields = readonly_fields = (
        "projects",
        "task_key",
        "label_source",
        "filters",
        "split",
        "remove_near_duplicates",
        "near_duplicate_distance",
        "format",
        "options",
        "status",
        "job",
        "file",
        "file_bytes",
        "snapshot_hash",
        "counts",
        "notes",
        "error",
        "created_by",
        "created_at",
        "finished_at",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[ExportSnapshot]:
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        # Only snapshots all of whose projects the staff user belongs to.
        hidden = Project.objects.exclude(pk__in=projects_visible_to(request.user).values("pk"))
        return queryset.exclude(projects__in=hidden)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
