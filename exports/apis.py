"""REST API of dataset exports: create a snapshot (202 + its job), list and read snapshots, download.

Who: data managers, coordinators and admins of every project an export names (a superuser
anywhere). A member with another role gets 403 on create; a project the caller does not belong to
is a 400 on its id (the API never confirms that it exists). A snapshot is visible only to those who
may export from all of its projects; to anyone else it does not exist (404).
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import FileResponse, Http404
from django.urls import reverse
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from annotations.datasets import LabelSource
from annotations.models import LabelChoice, LabelTask
from annotations.splits import SplitSchemeError, scheme_from_json
from exports.models import ExportSnapshot
from exports.params import (
    CLASS_LAYOUT_FORMATS,
    DEFAULT_NEAR_DUPLICATE_DISTANCE,
    DEFAULT_SHARD_SIZE,
    LABEL_STATES,
    ExportFilters,
    ExportParams,
)
from exports.selectors import EXPORT_ROLES, snapshots_visible_to
from exports.services import export_snapshot_create
from jobs.apis import JobOutputSerializer, NewestFirstPagination
from records.apis import IgnoreAcceptNegotiation
from records.filters import IdFilter
from records.models import Project
from records.selectors import AnyUser, projects_visible_to, role_in_project

MAX_FILTER_VALUES = 200
_CONTENT_TYPES = {".zip": "application/zip", ".tar": "application/x-tar"}


class ExportFiltersInputSerializer(serializers.Serializer[Any]):
    sites = serializers.ListField(
        child=serializers.CharField(max_length=100),
        default=list,
        max_length=MAX_FILTER_VALUES,
        help_text="Anatomical sites (of the examination) to keep; empty: all.",
    )
    devices = serializers.ListField(
        child=serializers.CharField(max_length=100),
        default=list,
        max_length=MAX_FILTER_VALUES,
        help_text="Devices (of the examination) to keep; empty: all.",
    )
    quality_task = serializers.SlugField(
        max_length=50,
        required=False,
        allow_blank=True,
        default="",
        help_text=(
            "Key of a quality task: keep the frames whose decided value (adjudication, else majority) "
            "is accepted."
        ),
    )
    quality_values = serializers.ListField(
        child=serializers.CharField(max_length=50),
        default=list,
        max_length=MAX_FILTER_VALUES,
        help_text="Accepted values of the quality task.",
    )
    label_state = serializers.ChoiceField(
        choices=LABEL_STATES,
        default="any",
        help_text="any; labelled: an annotator labelled the task; adjudicated: a reviewer decided it.",
    )
    date_from = serializers.DateField(required=False, allow_null=True, default=None)
    date_to = serializers.DateField(required=False, allow_null=True, default=None)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        errors: dict[str, str] = {}
        if bool(attrs["quality_task"]) != bool(attrs["quality_values"]):
            errors["quality_values"] = "Give a quality task and its accepted values together."
        if attrs["date_from"] and attrs["date_to"] and attrs["date_from"] > attrs["date_to"]:
            errors["date_to"] = "The end date is before the start date."
        if errors:
            raise ValidationError(errors)
        return attrs


class ExportCreateInputSerializer(serializers.Serializer[Any]):
    projects = serializers.PrimaryKeyRelatedField(
        many=True, queryset=Project.objects.none(), allow_empty=False, help_text="Project ids."
    )
    task = serializers.SlugField(
        max_length=50, help_text="Key of the label task to export (in every project)."
    )
    label_source = serializers.ChoiceField(choices=ExportSnapshot.LabelSource.choices)
    filters = ExportFiltersInputSerializer(required=False)
    split = serializers.JSONField(
        default=dict,
        help_text=(
            '{"scheme": "none"|"ratio"|"kfold"|"lopo"|"external", ...}: ratio {train, val, test, seed, '
            "stratify}; kfold {k, seed, stratify}; lopo {}; external {field: site|device|cohort|examination, "
            "values, val, seed, stratify}. Always by patient."
        ),
    )
    remove_near_duplicates = serializers.BooleanField(default=False)
    near_duplicate_distance = serializers.IntegerField(
        min_value=0, max_value=32, default=DEFAULT_NEAR_DUPLICATE_DISTANCE
    )
    format = serializers.ChoiceField(choices=ExportSnapshot.Format.choices)
    include_images = serializers.BooleanField(
        default=True, help_text="csv, json, parquet: also put the frames' images in the archive."
    )
    shard_size = serializers.IntegerField(
        min_value=1, max_value=100_000, default=DEFAULT_SHARD_SIZE, help_text="webdataset: samples per shard."
    )

    def __init__(self, *args: Any, user: AnyUser | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if user is not None:
            self.fields["projects"].child_relation.queryset = projects_visible_to(user)  # type: ignore[attr-defined]

    def validate_split(self, value: Any) -> Any:
        if not isinstance(value, dict):
            raise ValidationError(
                'An object such as {"scheme": "ratio", "train": 0.7, "val": 0.15, "test": 0.15}.'
            )
        try:
            return scheme_from_json(value)
        except SplitSchemeError as exc:
            raise ValidationError(exc.errors) from exc

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        errors: dict[str, Any] = {}
        fmt = attrs["format"]
        if fmt in CLASS_LAYOUT_FORMATS and attrs["label_source"] == LabelSource.EVERY_ANNOTATOR:
            errors["label_source"] = (
                f"The {fmt} layout holds one label per image; "
                "every annotator's label fits csv, json or parquet."
            )
        if fmt in CLASS_LAYOUT_FORMATS and not attrs["include_images"]:
            errors["include_images"] = f"The {fmt} layout is made of the images."
        projects: list[Project] = attrs["projects"]
        missing = _projects_without_task(projects, attrs["task"])
        if missing:
            errors["task"] = f"No task {attrs['task']!r} in project(s) {', '.join(missing)}."
        filters_data = attrs.get("filters") or {}
        if filters_data.get("quality_task"):
            quality_errors = _quality_errors(
                projects, filters_data["quality_task"], filters_data["quality_values"]
            )
            if quality_errors:
                errors["filters"] = quality_errors
        if errors:
            raise ValidationError(errors)
        return attrs

    def params(self) -> ExportParams:
        data = self.validated_data
        filters_data = data.get("filters") or {}
        return ExportParams(
            project_ids=tuple(sorted({project.pk for project in data["projects"]})),
            task_key=data["task"],
            label_source=LabelSource(data["label_source"]),
            filters=ExportFilters(
                sites=tuple(sorted(set(filters_data.get("sites", [])))),
                devices=tuple(sorted(set(filters_data.get("devices", [])))),
                quality_task=filters_data.get("quality_task", ""),
                quality_values=tuple(sorted(set(filters_data.get("quality_values", [])))),
                label_state=filters_data.get("label_state", "any"),
                date_from=filters_data.get("date_from"),
                date_to=filters_data.get("date_to"),
            ),
            split=data["split"],
            format=data["format"],
            remove_near_duplicates=data["remove_near_duplicates"],
            near_duplicate_distance=data["near_duplicate_distance"],
            include_images=data["include_images"],
            shard_size=data["shard_size"],
        )


def _projects_without_task(projects: list[Project], key: str) -> list[str]:
    having = set(LabelTask.objects.filter(project__in=projects, key=key).values_list("project_id", flat=True))
    return [project.slug for project in projects if project.pk not in having]


def _quality_errors(projects: list[Project], key: str, values: list[str]) -> dict[str, str]:
    missing = _projects_without_task(projects, key)
    if missing:
        return {"quality_task": f"No task {key!r} in project(s) {', '.join(missing)}."}
    choices = set(
        LabelChoice.objects.filter(task__project__in=projects, task__key=key).values_list("value", flat=True)
    )
    unknown = sorted(set(values) - choices)
    if unknown:
        return {"quality_values": f"Not choices of {key!r}: {', '.join(unknown)}."}
    return {}


class ExportProjectsInputSerializer(serializers.Serializer[Any]):
    """The projects alone, read first: the caller's role there decides 403 before anything else."""

    projects = serializers.PrimaryKeyRelatedField(
        many=True, queryset=Project.objects.none(), allow_empty=False
    )

    def __init__(self, *args: Any, user: AnyUser, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["projects"].child_relation.queryset = projects_visible_to(user)  # type: ignore[attr-defined]


class ExportSnapshotOutputSerializer(serializers.ModelSerializer[ExportSnapshot]):
    projects: serializers.PrimaryKeyRelatedField[Project] = serializers.PrimaryKeyRelatedField(
        many=True, read_only=True
    )
    task = serializers.CharField(source="task_key", read_only=True)
    job = JobOutputSerializer(
        read_only=True, allow_null=True, help_text="The job building it, with its progress."
    )
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = ExportSnapshot
        fields = [
            "id",
            "projects",
            "task",
            "label_source",
            "filters",
            "split",
            "remove_near_duplicates",
            "near_duplicate_distance",
            "format",
            "options",
            "status",
            "job",
            "snapshot_hash",
            "file_bytes",
            "counts",
            "notes",
            "error",
            "created_by",
            "created_at",
            "finished_at",
            "download_url",
        ]
        read_only_fields = fields

    def get_download_url(self, snapshot: ExportSnapshot) -> str | None:
        if snapshot.status != ExportSnapshot.Status.READY:
            return None
        return reverse("export-download", kwargs={"pk": snapshot.pk})


class ExportSnapshotFilter(filters.FilterSet):
    project = IdFilter(field_name="projects")
    status = filters.ChoiceFilter(choices=ExportSnapshot.Status.choices)
    format = filters.ChoiceFilter(choices=ExportSnapshot.Format.choices)

    class Meta:
        model = ExportSnapshot
        fields = ["project", "status", "format"]


@extend_schema_view(
    list=extend_schema(
        description="Export snapshots of projects where the caller may export (data managers, coordinators, "
        "admins), newest first."
    ),
    retrieve=extend_schema(
        description="One snapshot: parameters, status, the job's progress, counts and hash."
    ),
)
class ExportSnapshotViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[ExportSnapshot]
):
    serializer_class = ExportSnapshotOutputSerializer
    filterset_class = ExportSnapshotFilter
    pagination_class = NewestFirstPagination

    def get_queryset(self) -> QuerySet[ExportSnapshot]:
        return snapshots_visible_to(self.request.user).select_related("job").prefetch_related("projects")

    @extend_schema(
        request=ExportCreateInputSerializer,
        responses={202: ExportSnapshotOutputSerializer},
        description=(
            "Define a dataset export and queue the job that builds it (data managers, coordinators and "
            "admins of every project named). Answers 202 with the snapshot; follow it at the Location "
            "header until `status` is `ready`, then download it. Bad parameters: 400 naming each field, "
            "nothing stored."
        ),
    )
    def create(self, request: Request) -> Response:
        projects = ExportProjectsInputSerializer(
            data={"projects": request.data.get("projects")}, user=request.user
        )
        projects.is_valid(raise_exception=True)
        for project in projects.validated_data["projects"]:
            if role_in_project(request.user, project) not in EXPORT_ROLES:
                raise PermissionDenied(
                    f"Only data managers, coordinators and admins may export from {project.slug}."
                )
        serializer = ExportCreateInputSerializer(data=request.data, user=request.user)
        serializer.is_valid(raise_exception=True)
        snapshot = export_snapshot_create(params=serializer.params(), created_by_id=request.user.pk)
        snapshot = self.get_queryset().get(pk=snapshot.pk)
        headers = {"Location": reverse("export-detail", kwargs={"pk": snapshot.pk})}
        return Response(
            ExportSnapshotOutputSerializer(snapshot).data, status=status.HTTP_202_ACCEPTED, headers=headers
        )

    @extend_schema(
        description=(
            "The snapshot's archive (ZIP, or tar for WebDataset), streamed as an attachment. ETag is the "
            "snapshot hash. 409 while it is not ready."
        ),
        responses={
            (200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY, description="The archive."),
            (200, "application/x-tar"): OpenApiResponse(OpenApiTypes.BINARY, description="The archive."),
            404: OpenApiResponse(description="No such snapshot for the caller, or its file is gone."),
            409: OpenApiResponse(description="The snapshot is not built (yet)."),
        },
    )
    @action(
        detail=True,
        methods=["get"],
        filter_backends=[],
        pagination_class=None,
        content_negotiation_class=IgnoreAcceptNegotiation,
    )
    def download(self, request: Request, pk: str) -> Any:
        snapshot = self.get_object()
        if snapshot.status != ExportSnapshot.Status.READY:
            return Response(
                {"detail": f"The export is {snapshot.status}, not ready.", "status": snapshot.status},
                status=status.HTTP_409_CONFLICT,
            )
        from records import media

        try:
            handle = media.open_file(snapshot.file)
        except (OSError, ValueError) as exc:
            raise Http404("The export's file is missing.") from exc
        response = FileResponse(
            handle,
            as_attachment=True,
            filename=snapshot.download_name,
            content_type=_CONTENT_TYPES[snapshot.archive_suffix],
        )
        response["ETag"] = f'"{snapshot.snapshot_hash}"'
        response["Cache-Control"] = "private, no-transform"
        response["X-Content-Type-Options"] = "nosniff"
        return response
