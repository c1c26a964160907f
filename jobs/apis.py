"""Read-only job API: a user sees the jobs of their projects and the jobs they started."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django_filters import rest_framework as filters
from rest_framework import serializers, viewsets

from jobs.models import Job
from records.filters import IdFilter
from records.pagination import CreatedCursorPagination
from records.selectors import projects_visible_to


class JobOutputSerializer(serializers.ModelSerializer[Job]):
    progress = serializers.FloatField(
        allow_null=True, read_only=True, help_text="Fraction done in [0, 1]; null while the total is unknown."
    )

    class Meta:
        model = Job
        fields = [
            "id",
            "kind",
            "project",
            "status",
            "progress",
            "progress_done",
            "progress_total",
            "message",
            "error",
            "result",
            "attempts",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class JobFilter(filters.FilterSet):
    project = IdFilter(field_name="project_id")
    status = filters.ChoiceFilter(choices=Job.Status.choices)
    kind = filters.CharFilter()
    created = filters.IsoDateTimeFromToRangeFilter(field_name="created_at")

    class Meta:
        model = Job
        fields = ["project", "status", "kind", "created"]


class NewestFirstPagination(CreatedCursorPagination):
    ordering = "-id"


class JobViewSet(viewsets.ReadOnlyModelViewSet[Job]):
    """Background jobs, newest first: those of the caller's projects and the project-less ones they
    started (a superuser sees all). Another project's job is a 404."""

    serializer_class = JobOutputSerializer
    filterset_class = JobFilter
    pagination_class = NewestFirstPagination

    def get_queryset(self) -> QuerySet[Job]:
        user = self.request.user
        if user.is_superuser:
            return Job.objects.all()
        return Job.objects.filter(
            Q(project__in=projects_visible_to(user)) | Q(project__isnull=True, created_by_id=user.pk)
        )
