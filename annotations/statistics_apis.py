"""REST API of the agreement and accuracy statistics (``annotations.statistics``).

* ``POST /api/statistics/ratings/``: a long-form ratings CSV uploaded with the same options as the
  ``ratings_stats`` command; the report comes back, nothing is stored.
* ``GET /api/projects/{id}/agreement/?task=<key>``: agreement over the project's free annotations of
  one label task (items = frames, raters = annotators, scale = the task's choices in order), with each
  reader against the active model version and patient-cluster bootstrap intervals.
"""

from __future__ import annotations

import io
from typing import Any

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotations.models import Annotation, LabelTask
from annotations.statistics.agreement import WEIGHT_KINDS
from annotations.statistics.ratings import (
    MEASUREMENT_LEVELS,
    MeasurementLevel,
    RatingRecord,
    StatisticsInputError,
    parse_ratings_csv,
    ratings_table_from_records,
)
from annotations.statistics.report import ReportOptions, ratings_report, report_from_records
from inference.models import ModelVersion, Prediction
from records.apis import require_role
from records.models import ProjectMembership
from records.selectors import projects_visible_to

Role = ProjectMembership.Role
AGREEMENT_VIEWER_ROLES = frozenset({Role.COORDINATOR, Role.ADMIN, Role.REVIEWER})
MAX_UPLOAD_BYTES = 8 * 1024 * 1024
MAX_BOOTSTRAP = 5000
AI_RATER_PREFIX = "AI: "


class StatisticsOptionsSerializer(serializers.Serializer[Any]):
    weights = serializers.ChoiceField(choices=WEIGHT_KINDS, default="unweighted")
    weight_levels = serializers.ChoiceField(
        choices=("declared", "observed"),
        default="declared",
        help_text="Kappa weights over the declared scale or only the levels observed (R irr, sklearn).",
    )
    bootstrap = serializers.IntegerField(min_value=0, max_value=MAX_BOOTSTRAP, default=0)
    seed = serializers.IntegerField(required=False, allow_null=True, default=None)
    confidence = serializers.FloatField(min_value=0.5, max_value=0.999, default=0.95)


class RatingsUploadSerializer(StatisticsOptionsSerializer):
    file = serializers.FileField(
        help_text="CSV with columns item, rater, value[, reference, patient, modality]."
    )
    categories = serializers.CharField(
        required=False, allow_blank=True, help_text="Declared scale, comma-separated, in order."
    )
    level = serializers.ChoiceField(choices=MEASUREMENT_LEVELS, default="nominal")
    positive = serializers.CharField(required=False, allow_blank=True, help_text="Positive reference class.")
    ai_rater = serializers.CharField(required=False, allow_blank=True, help_text="The rater that is the AI.")


class ProjectAgreementQuerySerializer(StatisticsOptionsSerializer):
    task = serializers.SlugField(help_text="Key of the project's label task.")
    bootstrap = serializers.IntegerField(min_value=0, max_value=MAX_BOOTSTRAP, default=1000)
    seed = serializers.IntegerField(required=False, allow_null=True, default=0)


def _options(data: dict[str, Any], **extra: Any) -> ReportOptions:
    return ReportOptions(
        weights=data["weights"],
        weight_levels=data["weight_levels"],
        level=data["confidence"],
        bootstrap=data["bootstrap"],
        seed=data.get("seed"),
        **extra,
    )


class RatingsStatisticsApi(APIView):
    """Agreement and accuracy of an uploaded ratings CSV (computed and returned, never stored)."""

    parser_classes = [MultiPartParser]

    @extend_schema(
        operation_id="statistics_ratings_create",
        tags=["statistics"],
        request={"multipart/form-data": RatingsUploadSerializer},
        responses={
            200: OpenApiResponse(
                OpenApiTypes.OBJECT, description="The report, as `ratings_stats` prints it."
            ),
            400: OpenApiResponse(description="The file or an option cannot give the statistics (message)."),
        },
        description=(
            "Upload a long-form ratings CSV (item, rater, value, optional reference, patient, modality) "
            "and get percent agreement, Cohen/Fleiss kappa, Krippendorff's alpha, PABAK, pairwise kappas, "
            "and with `positive` each reader's accuracy against the reference; `bootstrap` > 0 adds "
            "patient-cluster bootstrap intervals. Nothing is stored."
        ),
    )
    def post(self, request: Request) -> Response:
        form = RatingsUploadSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        upload = data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            raise ValidationError({"file": [f"The file is larger than {MAX_UPLOAD_BYTES // 2**20} MiB."]})
        try:
            text = upload.read().decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ValidationError({"file": ["The file is not UTF-8 text."]}) from None
        categories = [c.strip() for c in data.get("categories", "").split(",") if c.strip()] or None
        try:
            parsed = parse_ratings_csv(io.StringIO(text, newline=""))
            report = report_from_records(
                parsed.records,
                categories=categories,
                level_of_measurement=data["level"],
                options=_options(
                    data, positive=data.get("positive") or None, ai_rater=data.get("ai_rater") or None
                ),
            )
        except StatisticsInputError as error:
            raise ValidationError({"detail": str(error)}) from None
        return Response(report)


class ProjectAgreementApi(APIView):
    """Agreement among a project's readers (and with the active model) on one label task."""

    @extend_schema(
        operation_id="projects_agreement_retrieve",
        tags=["statistics"],
        parameters=[ProjectAgreementQuerySerializer],
        responses={
            200: OpenApiResponse(
                OpenApiTypes.OBJECT, description="Agreement report with bootstrap intervals."
            ),
            400: OpenApiResponse(description="No such task, or too few annotations for agreement."),
            403: OpenApiResponse(description="Not a coordinator, admin or reviewer of the project."),
            404: OpenApiResponse(description="No such project among the caller's projects."),
        },
        description=(
            "Agreement over the project's free annotations of the label task `task`: items are frames, "
            "raters annotators, the scale the task's choices in order (ordinal alpha and weighted kappa "
            "follow that order for an ordinal task). The active model version's predictions of the task "
            "are one more rater (`AI: <name>`), and `kappa_vs_ai` gives each reader against it. Bootstrap "
            "intervals resample patients, not frames."
        ),
    )
    def get(self, request: Request, project_id: int) -> Response:
        project = projects_visible_to(request.user).filter(pk=project_id).first()
        if project is None:
            raise Http404("No such project.")
        require_role(request.user, project, AGREEMENT_VIEWER_ROLES, "see agreement statistics")
        query = ProjectAgreementQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        task = LabelTask.objects.filter(project=project, key=data["task"]).first()
        if task is None:
            raise ValidationError({"task": [f"The project has no label task {data['task']!r}."]})
        records = [
            RatingRecord(item=str(frame_id), rater=username, value=value, patient=str(patient_id))
            for frame_id, username, value, patient_id in Annotation.objects.filter(
                task=task, context=Annotation.Context.FREE
            ).values_list("frame_id", "annotator__username", "value", "frame__examination__patient_id")
        ]
        annotated_frames = {record.item for record in records}
        active = ModelVersion.objects.filter(
            project=project, task=task, status=ModelVersion.Status.ACTIVE
        ).first()
        ai_rater = None
        if active is not None:
            predictions = (
                Prediction.objects.filter(model_version=active, task=task)
                .exclude(predicted_value="")
                .values_list("frame_id", "predicted_value", "frame__examination__patient_id")
            )
            ai_records = [
                RatingRecord(str(frame_id), AI_RATER_PREFIX + active.name, value, patient=str(patient_id))
                for frame_id, value, patient_id in predictions
                if str(frame_id) in annotated_frames
            ]
            if ai_records:
                ai_rater = AI_RATER_PREFIX + active.name
                records.extend(ai_records)
        categories = list(task.choices.order_by("order", "pk").values_list("value", flat=True))
        level: MeasurementLevel = "ordinal" if task.kind == LabelTask.Kind.ORDINAL else "nominal"
        try:
            table = ratings_table_from_records(records, categories=categories, level=level)
            report = ratings_report(table, _options(data, ai_rater=ai_rater))
        except StatisticsInputError as error:
            raise ValidationError({"detail": str(error)}) from None
        report["task"] = task.key
        report["model_version"] = None if ai_rater is None or active is None else active.pk
        return Response(report)
