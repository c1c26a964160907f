"""Django admin for data managers: projects and memberships, patients, examinations, videos, frames.

A staff user who is not a superuser sees only the rows of their own projects (the same scoping as
the API, through records.selectors), and foreign-key choices are limited the same way. Frames and
videos come from the import pipeline: their files and hashes are read-only here, and frames cannot
be added by hand. Thumbnails are served by an admin-only view, never from a public media URL.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import ForeignKey, QuerySet
from django.forms import ModelChoiceField
from django.http import HttpRequest, HttpResponseBase
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from records.apis import serve_frame_preview
from records.models import Examination, Frame, Patient, Project, ProjectMembership, Video
from records.selectors import (
    examinations_visible_to,
    frames_visible_to,
    patients_visible_to,
    projects_visible_to,
    videos_visible_to,
)

_SCOPED_CHOICES = {
    Project: projects_visible_to,
    Patient: patients_visible_to,
    Examination: examinations_visible_to,
    Video: videos_visible_to,
}


class ProjectScopedAdmin(admin.ModelAdmin):
    """Limits rows and foreign-key choices to the staff user's projects (superusers see all)."""

    def scope(self, request: HttpRequest) -> QuerySet[Any]:
        raise NotImplementedError

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(pk__in=self.scope(request).values("pk"))

    def formfield_for_foreignkey(
        self, db_field: ForeignKey[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> ModelChoiceField[Any] | None:
        related = db_field.related_model
        selector = _SCOPED_CHOICES.get(related) if isinstance(related, type) else None
        if selector is not None and not request.user.is_superuser:
            kwargs["queryset"] = selector(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class MembershipInline(admin.TabularInline):
    model = ProjectMembership
    extra = 0
    autocomplete_fields = ["user"]
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]


@admin.register(Project)
class ProjectAdmin(ProjectScopedAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["created_at"]
    inlines = [MembershipInline]

    def scope(self, request: HttpRequest) -> QuerySet[Any]:
        return projects_visible_to(request.user)


@admin.register(ProjectMembership)
class ProjectMembershipAdmin(ProjectScopedAdmin):
    list_display = ["user", "project", "role", "created_at"]
    list_filter = ["role", "project"]
    search_fields = ["user__username", "project__name", "project__slug"]
    autocomplete_fields = ["user", "project"]
    list_select_related = ["user", "project"]
    readonly_fields = ["created_at"]

    def scope(self, request: HttpRequest) -> QuerySet[Any]:
        return ProjectMembership.objects.filter(project__in=projects_visible_to(request.user))


@admin.register(Patient)
class PatientAdmin(ProjectScopedAdmin):
    list_display = ["pseudonym", "project", "cohort", "sex", "birth_year", "created_at"]
    list_filter = ["project", "cohort", "sex"]
    search_fields = ["pseudonym", "cohort"]
    list_select_related = ["project"]
    readonly_fields = ["created_at"]

    def scope(self, request: HttpRequest) -> QuerySet[Any]:
        return patients_visible_to(request.user)


class VideoInline(admin.TabularInline):
    model = Video
    extra = 0
    show_change_link = True
    fields = readonly_fields = ("name", "kind", "frame_count", "frame_rate", "every_nth", "source_sha256")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # videos come from imports, with their source file


@admin.register(Examination)
class ExaminationAdmin(ProjectScopedAdmin):
    list_display = ["code", "patient", "date", "device", "anatomical_site", "reference_label"]
    list_filter = ["patient__project", "anatomical_site", "device", "reference_label"]
    search_fields = ["code", "patient__pseudonym", "anatomical_site", "reference_label"]
    list_select_related = ["patient"]
    autocomplete_fields = ["patient"]
    readonly_fields = ["created_at"]
    date_hierarchy = "date"
    inlines = [VideoInline]

    def scope(self, request: HttpRequest) -> QuerySet[Any]:
        return examinations_visible_to(request.user)


@admin.register(Video)
class VideoAdmin(ProjectScopedAdmin):
    list_display = ["name", "examination", "kind", "frame_count", "frame_rate", "every_nth", "created_at"]
    list_filter = ["kind", "examination__anatomical_site", "examination__device"]
    search_fields = ["name", "examination__code", "examination__patient__pseudonym", "source_sha256"]
    list_select_related = ["examination__patient"]
    autocomplete_fields = ["examination"]
    readonly_fields = [
        "source_sha256",
        "source_file",
        "codec",
        "frame_rate",
        "frame_count",
        "duration_s",
        "width",
        "height",
        "every_nth",
        "created_at",
    ]

    def scope(self, request: HttpRequest) -> QuerySet[Any]:
        return videos_visible_to(request.user)


_FRAME_FIELDS: tuple[str, ...] = (
    "thumbnail",
    "examination",
    "video",
    "index_in_video",
    "time_s",
    "source_name",
    "reference_label",
    "sha256",
    "file",
    "file_bytes",
    "width",
    "height",
    "mode",
    "preview_file",
    "preview_width",
    "preview_height",
    "crop_box",
    "created_at",
)


@admin.register(Frame)
class FrameAdmin(ProjectScopedAdmin):
    list_display = [
        "thumbnail",
        "id",
        "source_name",
        "examination",
        "index_in_video",
        "mode",
        "width",
        "height",
        "file_bytes",
        "reference_label",
    ]
    list_display_links = ["thumbnail", "id"]
    list_filter = ["examination__anatomical_site", "examination__device", "mode", "reference_label"]
    search_fields = ["source_name", "sha256", "examination__code", "examination__patient__pseudonym"]
    list_select_related = ["examination__patient"]
    show_full_result_count = False  # frames run to tens of thousands; skip the extra COUNT(*)
    fields = _FRAME_FIELDS
    readonly_fields = tuple(field for field in _FRAME_FIELDS if field != "reference_label")

    def scope(self, request: HttpRequest) -> QuerySet[Any]:
        return frames_visible_to(request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a frame is a stored, content-addressed file: it comes only from an import

    @admin.display(description="preview")
    def thumbnail(self, frame: Frame) -> str:
        if frame.pk is None:
            return "-"
        url = reverse("admin:records_frame_preview", args=[frame.pk])
        return format_html(
            '<img src="{}" alt="frame {}" loading="lazy" style="max-height:64px">', url, frame.pk
        )

    def get_urls(self) -> list[URLPattern]:
        preview = path(
            "<int:frame_id>/preview/",
            self.admin_site.admin_view(self.preview_view),
            name="records_frame_preview",
        )
        return [preview, *super().get_urls()]

    def preview_view(self, request: HttpRequest, frame_id: int) -> HttpResponseBase:
        """The preview image for staff who may view this frame (scoped like the changelist)."""
        frame = get_object_or_404(self.get_queryset(request), pk=frame_id)
        if not self.has_view_permission(request, frame):
            raise PermissionDenied
        return serve_frame_preview(request, frame)
