"""Read-only job API: a user sees the jobs of their projects and the jobs they started."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from rest_framework import serializers, viewsets

from jobs.models import Job
from records.selectors import projects_visible_to


class JobOutputSerializer(serializers.ModelSerializer[Job]):
    progress = serializers.FloatField(allow_null=True, read_only=True)

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


class JobViewSet(viewsets.ReadOnlyModelViewSet[Job]):
    serializer_class = JobOutputSerializer
    filterset_fields = ["project", "status", "kind"]

    def get_queryset(self) -> QuerySet[Job]:
        user = self.request.user
        return Job.objects.filter(
            Q(project__in=projects_visible_to(user)) | Q(project__isnull=True, created_by_id=user.pk)
        )
