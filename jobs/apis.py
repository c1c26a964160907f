"""Read-only job API: a user sees the jobs of their projects and the jobs they started."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from jobs.models import Job
from jobs.services import JobNotCancellable, job_cancel
from records.filters import IdFilter, IsoDateTimeRangeFilter
from records.models import ProjectMembership
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
            "cancel_requested_at",
        ]
        read_only_fields = fields


class JobFilter(filters.FilterSet):
    project = IdFilter(field_name="project_id")
    status = filters.ChoiceFilter(choices=Job.Status.choices)
    kind = filters.CharFilter()
    created = IsoDateTimeRangeFilter(field_name="created_at")

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

    @extend_schema(
        request=None,
        responses={
            200: JobOutputSerializer,
            409: OpenApiResponse(description="The job has finished already."),
        },
        description=(
            "Stop the job: a queued job is cancelled at once, a running one is asked to stop and ends "
            "`cancelled` at its next check (a training run between batches). Its starter, or a "
            "coordinator or admin of its project."
        ),
    )
    @action(detail=True, methods=["post"], filter_backends=[], pagination_class=None)
    def cancel(self, request: Request, pk: str) -> Response:
        job = self.get_object()
        if not self._may_cancel(job):
            raise PermissionDenied(
                "Only the job's starter or a coordinator or admin of its project may stop it."
            )
        try:
            job = job_cancel(job_id=job.pk)
        except JobNotCancellable as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(JobOutputSerializer(job).data)

    def _may_cancel(self, job: Job) -> bool:
        user = self.request.user
        if user.is_superuser or (job.created_by_id is not None and job.created_by_id == user.pk):
            return True
        if job.project_id is None or user.pk is None:
            return False
        return ProjectMembership.objects.filter(
            project_id=job.project_id,
            user_id=user.pk,
            role__in=[ProjectMembership.Role.COORDINATOR, ProjectMembership.Role.ADMIN],
        ).exists()
