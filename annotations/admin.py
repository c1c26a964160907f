"""Admin for label schemas (with their history), annotations and adjudications (read-only: they change
via the API)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from simple_history.admin import SimpleHistoryAdmin

from annotations.models import Adjudication, Annotation, LabelChoice, LabelTask


class LabelChoiceInline(admin.TabularInline):
    model = LabelChoice
    extra = 0
    fields = ["value", "label", "order", "color", "hotkey", "is_active"]


@admin.register(LabelTask)
class LabelTaskAdmin(SimpleHistoryAdmin):
    list_display = ["key", "name", "project", "kind", "order", "is_active"]
    list_filter = ["kind", "is_active"]
    search_fields = ["key", "name"]
    inlines = [LabelChoiceInline]


@admin.register(Annotation)
class AnnotationAdmin(SimpleHistoryAdmin):
    list_display = ["id", "frame", "task", "annotator", "value", "confidence", "version", "updated_at"]
    list_filter = ["task__key", "context", "ai_shown"]
    readonly_fields = [field.name for field in Annotation._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Adjudication)
class AdjudicationAdmin(SimpleHistoryAdmin):
    list_display = ["id", "frame", "task", "value", "adjudicated_by", "version", "updated_at"]
    list_filter = ["task__key"]
    readonly_fields = [field.name for field in Adjudication._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
