"""REST API of model versions, task gates and predictions (stored, on demand, and for uploaded
images): thin views over inference.selectors, services and ondemand.

Scoping as in records.apis: another project's version, frame or prediction is a 404; a member
without the role is a 403. Model versions are managed by coordinators and project admins
(superusers count as admins). Predictions and CAMs follow `inference.selectors.ai_visibility`:
coordinators, admins and reviewers always see them; readers only what the project's
`ai_assistance` allows (a CAM needs "prediction_and_cam"); otherwise 403.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, cast

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import Http404, HttpResponseBase
from django.urls import reverse
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotations.models import LabelTask
from config.schema import PATH_ID
from inference.ml.errors import MlError, PreprocessingError
from inference.models import ModelVersion, Prediction, TaskGate
from inference.ondemand import (
    ImageUploadRejected,
    NoActiveVersion,
    classify_image,
    open_uploaded_image,
    predict_frame_on_demand,
    stored_frame_prediction,
)
from inference.scoring import GateUnavailable
from inference.selectors import (
    AiVisibility,
    ai_visibility,
    frame_active_predictions,
    model_versions_visible_to,
    prediction_flips,
    predictions_visible_to,
    task_gates_visible_to,
)
from inference.services import (
    ModelVersionRejected,
    TaskGateRejected,
    model_version_activate,
    model_version_register,
    model_version_retire,
    rescore_job_create,
    task_gate_delete,
    task_gate_set,
)
from jobs.apis import JobOutputSerializer
from records.apis import IgnoreAcceptNegotiation, require_role, serve_content_addressed
from records.models import Frame, Project, ProjectMembership
from records.selectors import frames_visible_to, projects_visible_to

Role = ProjectMembership.Role
MODEL_MANAGER_ROLES = frozenset({Role.COORDINATOR, Role.ADMIN})
PREDICTION_VIEWER_ROLES = frozenset({Role.COORDINATOR, Role.ADMIN, Role.REVIEWER})


def require_ai_visible(user: User | Any, project: Project, *, cam: bool = False) -> AiVisibility:
    """403 unless the user may see the project's model predictions (and, with `cam`, its CAMs)."""
    visibility = ai_visibility(user, project)
    if not visibility.prediction:
        raise PermissionDenied("Model predictions are hidden from readers in this project.")
    if cam and not visibility.cam:
        raise PermissionDenied("CAMs are hidden from readers in this project.")
    return visibility


def _visible_project(request: Request, project_id: int) -> Project:
    """The caller's project `project_id`, else 404 (another project's is never confirmed)."""
    project = projects_visible_to(request.user).filter(pk=project_id).first()
    if project is None:
        raise Http404("No such project.")
    return project


def _managed_project(request: Request, project_id: int, action: str) -> Project:
    """The caller's project, where they manage models (coordinator or admin), else 404 / 403."""
    project = _visible_project(request, project_id)
    require_role(request.user, project, MODEL_MANAGER_ROLES, action)
    return project


def _frame_with_ai_visible(request: Request, frame_id: int) -> tuple[Frame, AiVisibility]:
    """The caller's frame (else 404) where they may see predictions (else 403), and what they see."""
    frame = (
        frames_visible_to(request.user)
        .select_related("examination__patient__project")
        .filter(pk=frame_id)
        .first()
    )
    if frame is None:
        raise Http404("No such frame.")
    return frame, require_ai_visible(request.user, frame.examination.patient.project)


class ModelVersionOutputSerializer(serializers.ModelSerializer[ModelVersion]):
    task_key = serializers.CharField(source="task.key", read_only=True)
    labels = serializers.ListField(child=serializers.CharField(), read_only=True)
    metadata = serializers.DictField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "project",
            "task",
            "task_key",
            "name",
            "architecture",
            "sha256",
            "file_bytes",
            "labels",
            "metadata",
            "status",
            "created_by",
            "created_at",
            "activated_at",
            "retired_at",
        ]
        read_only_fields = fields


class ModelVersionCreateInputSerializer(serializers.Serializer[Any]):
    project = serializers.IntegerField()
    task = serializers.IntegerField(help_text="The label task (id) the model predicts.")
    name = serializers.CharField(max_length=200)
    file = serializers.FileField(
        allow_empty_file=False, use_url=False, help_text="A CLEAR model file (.safetensors)."
    )


class ActivateInputSerializer(serializers.Serializer[Any]):
    rescore = serializers.BooleanField(
        default=False, help_text="Also queue a re-score of the project's frames with this version."
    )


class ActivateOutputSerializer(ModelVersionOutputSerializer):
    rescore_job = JobOutputSerializer(allow_null=True, read_only=True)

    class Meta(ModelVersionOutputSerializer.Meta):
        fields = [*ModelVersionOutputSerializer.Meta.fields, "rescore_job"]
        read_only_fields = fields


class RescoreInputSerializer(serializers.Serializer[Any]):
    examinations = serializers.ListField(
        child=serializers.IntegerField(),
        required=False,
        allow_empty=True,
        help_text="Score only the frames of these examinations (ids); all of the project's by default.",
    )


class ModelVersionFilter(filters.FilterSet):
    class Meta:
        model = ModelVersion
        fields = ["project", "task", "status"]


@extend_schema_view(
    list=extend_schema(
        operation_id="model_versions_list",
        tags=["inference"],
        description="Model versions of the caller's projects, filtered by project, task and status.",
    ),
    retrieve=extend_schema(operation_id="model_versions_retrieve", tags=["inference"]),
)
class ModelVersionViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[ModelVersion]
):
    serializer_class = ModelVersionOutputSerializer
    filterset_class = ModelVersionFilter

    def get_queryset(self) -> QuerySet[ModelVersion]:
        return model_versions_visible_to(self.request.user)

    @extend_schema(
        operation_id="model_versions_create",
        tags=["inference"],
        request={"multipart/form-data": ModelVersionCreateInputSerializer},
        responses={
            201: ModelVersionOutputSerializer,
            400: OpenApiResponse(description="Refused file."),
            404: OpenApiResponse(description="No such project or task among the caller's projects."),
        },
        description=(
            "Register a model file as a candidate version of a label task (coordinators and admins). "
            "The file is checked (safetensors with CLEAR metadata, tensors of its architecture; "
            "pickle is refused unread), its task must be the label task's key and its labels values "
            "of the task's choices; the same file twice in a project is refused (400 naming the "
            "existing version)."
        ),
    )
    def create(self, request: Request) -> Response:
        serializer = ModelVersionCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        project = _managed_project(request, data["project"], "register model versions")
        task = LabelTask.objects.filter(project=project, pk=data["task"]).first()
        if task is None:
            raise ValidationError({"task": ["No such label task in this project."]})
        upload = data["file"]
        staging = Path(settings.CLEAR_UPLOAD_ROOT)
        staging.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=staging, prefix="model-") as folder:
            path = Path(folder) / "model.safetensors"
            with path.open("wb") as out:
                for chunk in upload.chunks():
                    out.write(chunk)
            try:
                version = model_version_register(
                    project=project,
                    task=task,
                    uploaded_path=path,
                    name=data["name"],
                    created_by=cast(User, request.user),
                )
            except ModelVersionRejected as exc:
                raise ValidationError({"file": [exc.message]}) from exc
        return Response(ModelVersionOutputSerializer(version).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="model_versions_activate",
        tags=["inference"],
        request=ActivateInputSerializer,
        responses={200: ActivateOutputSerializer},
        description=(
            "Make this version the active one of its task; the previously active one is retired. With "
            "`rescore`, a re-score job of the project's frames is queued too (`rescore_job`)."
        ),
    )
    @action(detail=True, methods=["post"], filter_backends=[], pagination_class=None)
    def activate(self, request: Request, pk: str) -> Response:
        version = self.get_object()
        require_role(request.user, version.project, MODEL_MANAGER_ROLES, "activate model versions")
        serializer = ActivateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        version = model_version_activate(model_version=version)
        job = None
        if serializer.validated_data["rescore"]:
            job = rescore_job_create(model_version=version, created_by=cast(User, request.user))
        body = dict(ModelVersionOutputSerializer(version).data)
        body["rescore_job"] = JobOutputSerializer(job).data if job else None
        return Response(body)

    @extend_schema(
        operation_id="model_versions_retire",
        tags=["inference"],
        request=None,
        responses={200: ModelVersionOutputSerializer},
        description="Retire this version; its predictions are kept but no longer shown.",
    )
    @action(detail=True, methods=["post"], filter_backends=[], pagination_class=None)
    def retire(self, request: Request, pk: str) -> Response:
        version = self.get_object()
        require_role(request.user, version.project, MODEL_MANAGER_ROLES, "retire model versions")
        version = model_version_retire(model_version=version)
        return Response(ModelVersionOutputSerializer(version).data)

    @extend_schema(
        operation_id="model_versions_rescore",
        tags=["inference"],
        request=RescoreInputSerializer,
        responses={202: JobOutputSerializer},
        description=(
            "Queue a re-score job (gpu queue) that predicts, with CAMs, every frame of the project "
            "(or of the given examinations) this version has not scored yet. Answers 202 with the "
            "job; follow its progress at the Location header."
        ),
    )
    @action(detail=True, methods=["post"], filter_backends=[], pagination_class=None)
    def rescore(self, request: Request, pk: str) -> Response:
        version = self.get_object()
        require_role(request.user, version.project, MODEL_MANAGER_ROLES, "re-score frames")
        serializer = RescoreInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = rescore_job_create(
            model_version=version,
            examination_ids=serializer.validated_data.get("examinations") or None,
            created_by=cast(User, request.user),
        )
        headers = {"Location": reverse("job-detail", kwargs={"pk": job.pk})}
        return Response(JobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED, headers=headers)


class ProbabilitySerializer(serializers.Serializer[Any]):
    value = serializers.CharField()
    probability = serializers.FloatField()


class GateDecisionSerializer(serializers.Serializer[Any]):
    task_key = serializers.CharField(help_text="The gate task (e.g. quality).")
    predicted_value = serializers.CharField(help_text="What the gate's model said.")
    confidence = serializers.FloatField()
    model_version = serializers.IntegerField(help_text="The gate task's model version (id).")
    model_version_name = serializers.CharField()
    diagnostic_values = serializers.ListField(
        child=serializers.CharField(), help_text="The gate task's values that let a frame through."
    )


class PredictionOutputSerializer(serializers.ModelSerializer[Prediction]):
    task_key = serializers.CharField(source="task.key", read_only=True)
    model_version_name = serializers.CharField(source="model_version.name", read_only=True)
    probabilities = serializers.SerializerMethodField()
    cam_url = serializers.SerializerMethodField()
    gate = serializers.SerializerMethodField()

    class Meta:
        model = Prediction
        fields = [
            "id",
            "frame",
            "task",
            "task_key",
            "model_version",
            "model_version_name",
            "predicted_value",
            "confidence",
            "probabilities",
            "cam_url",
            "gate_passed",
            "gate",
            "created_at",
        ]
        read_only_fields = fields

    @extend_schema_field(ProbabilitySerializer(many=True))
    def get_probabilities(self, prediction: Prediction) -> list[dict[str, Any]]:
        if not prediction.probabilities:
            return []  # gated out: the model did not run
        labels = prediction.model_version.labels
        return [
            {"value": label, "probability": probability}
            for label, probability in zip(labels, prediction.probabilities, strict=True)
        ]

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_cam_url(self, prediction: Prediction) -> str | None:
        # Callers that may not see CAMs (readers where only predictions are shown) get no URL.
        if not prediction.cam_file or not self.context.get("cam_visible", True):
            return None
        url = reverse("prediction-cam", kwargs={"pk": prediction.pk})
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request is not None else url

    @extend_schema_field(GateDecisionSerializer(allow_null=True))
    def get_gate(self, prediction: Prediction) -> dict[str, Any] | None:
        """The gate prediction the row's decision was made on (null for an ungated task)."""
        decided_on = prediction.gate_prediction
        if decided_on is None:
            return None
        try:
            values = list(prediction.task.gate.diagnostic_values)
        except TaskGate.DoesNotExist:
            values = []  # the gate was removed since; the row is stale until re-scored
        return {
            "task_key": decided_on.task.key,
            "predicted_value": decided_on.predicted_value,
            "confidence": decided_on.confidence,
            "model_version": decided_on.model_version_id,
            "model_version_name": decided_on.model_version.name,
            "diagnostic_values": values,
        }


FLIPS_DEFAULT_LIMIT = 100
FLIPS_MAX_LIMIT = 1000


class FlipsQuerySerializer(serializers.Serializer[Any]):
    against = serializers.IntegerField(help_text="The model version to compare with (same task).")
    limit = serializers.IntegerField(min_value=1, max_value=FLIPS_MAX_LIMIT, default=FLIPS_DEFAULT_LIMIT)


class FlippedPredictionSerializer(PredictionOutputSerializer):
    previous_value = serializers.CharField(read_only=True, help_text="What the other version predicted.")
    previous_confidence = serializers.FloatField(read_only=True)

    class Meta(PredictionOutputSerializer.Meta):
        fields = [*PredictionOutputSerializer.Meta.fields, "previous_value", "previous_confidence"]
        read_only_fields = fields


class FlipsOutputSerializer(serializers.Serializer[Any]):
    version = serializers.IntegerField()
    against = serializers.IntegerField()
    compared = serializers.IntegerField(help_text="Frames both versions scored for the task.")
    flipped = serializers.IntegerField(help_text="Of those, frames whose predicted value differs.")
    frames = FlippedPredictionSerializer(many=True, help_text="The first `limit` flips, by frame id.")


class ModelVersionFlipsApi(APIView):
    @extend_schema(
        operation_id="model_versions_flips",
        tags=["inference"],
        parameters=[OpenApiParameter("id", PATH_ID, OpenApiParameter.PATH), FlipsQuerySerializer],
        responses={
            200: FlipsOutputSerializer,
            400: OpenApiResponse(description="`against` is missing, unknown or of another task."),
            403: OpenApiResponse(
                description=(
                    "Not a coordinator, admin or reviewer of the project, or one who reads in an open "
                    "reader study of it (model output is hidden from study readers)."
                )
            ),
            404: OpenApiResponse(description="No such version in the caller's projects."),
        },
        description=(
            "Frames whose predicted class differs between this version and `against` (two versions of "
            "the same task), with both predictions: what changes for the readers if this version is "
            "activated. Frames only one of the two scored are not compared."
        ),
    )
    def get(self, request: Request, pk: int) -> Response:
        version = model_versions_visible_to(request.user).filter(pk=pk).select_related("project").first()
        if version is None:
            raise Http404("No such model version.")
        require_role(request.user, version.project, PREDICTION_VIEWER_ROLES, "compare model predictions")
        # The flips are predictions: hidden, like all model output, from whoever reads in an open
        # study of the project, whatever their role (selectors.ai_visibility).
        require_ai_visible(request.user, version.project)
        query = FlipsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        against = model_versions_visible_to(request.user).filter(pk=query.validated_data["against"]).first()
        if against is None or against.task_id != version.task_id or against.pk == version.pk:
            raise ValidationError({"against": ["Give another model version of the same label task."]})
        flips = prediction_flips(version=version, against=against, limit=query.validated_data["limit"])
        body = {
            "version": version.pk,
            "against": against.pk,
            "compared": flips.compared,
            "flipped": flips.flipped,
            "frames": flips.predictions,
        }
        return Response(FlipsOutputSerializer(body, context={"request": request}).data)


class FramePredictionsApi(APIView):
    @extend_schema(
        operation_id="frame_predictions_list",
        tags=["inference"],
        responses={200: PredictionOutputSerializer(many=True)},
        description=(
            "The frame's predictions by the active model version of each task, with probabilities "
            "per label and the CAM's URL (coordinators, admins and reviewers; readers only where the "
            "project's `ai_assistance` shows predictions, else 403; `cam_url` is null where CAMs are "
            "hidden from them)."
        ),
    )
    def get(self, request: Request, frame_id: int) -> Response:
        frame, visibility = _frame_with_ai_visible(request, frame_id)
        predictions = frame_active_predictions(frame)
        context = {"request": request, "cam_visible": visibility.cam}
        return Response(PredictionOutputSerializer(predictions, many=True, context=context).data)


class PredictionCamApi(APIView):
    content_negotiation_class = IgnoreAcceptNegotiation

    @extend_schema(
        operation_id="prediction_cam_retrieve",
        tags=["inference"],
        description=(
            "The prediction's CAM (image/png, grayscale, spanning the whole frame; see "
            "inference.ml.cam.render_cam). Content-addressed: ETag, immutable cache, 304."
        ),
        responses={
            (200, "image/png"): OpenApiResponse(OpenApiTypes.BINARY, description="The CAM."),
            304: OpenApiResponse(description="Not modified (If-None-Match matched the ETag)."),
            404: OpenApiResponse(description="No such prediction (or CAM) in the caller's projects."),
        },
    )
    def get(self, request: Request, pk: int) -> HttpResponseBase:
        prediction = (
            predictions_visible_to(request.user)
            .select_related("model_version__project")
            .filter(pk=pk)
            .first()
        )
        if prediction is None or not prediction.cam_file:
            raise Http404("No such CAM.")
        require_ai_visible(request.user, prediction.model_version.project, cam=True)
        etag = Path(prediction.cam_file).stem
        return serve_content_addressed(request, prediction.cam_file, f"{etag}-cam")


# --- task gates (two-stage pipeline) --------------------------------------------------------------


class TaskGateOutputSerializer(serializers.ModelSerializer[TaskGate]):
    task_key = serializers.CharField(source="task.key", read_only=True)
    gate_task_key = serializers.CharField(source="gate_task.key", read_only=True)
    diagnostic_values = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = TaskGate
        fields = [
            "id",
            "project",
            "task",
            "task_key",
            "gate_task",
            "gate_task_key",
            "diagnostic_values",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class TaskGateInputSerializer(serializers.Serializer[Any]):
    project = serializers.IntegerField()
    task = serializers.IntegerField(help_text="The gated label task (id), e.g. diagnosis.")
    gate_task = serializers.IntegerField(help_text="The gate's label task (id), e.g. quality.")
    diagnostic_values = serializers.ListField(
        child=serializers.CharField(),
        allow_empty=False,
        help_text='Values of the gate task\'s choices judged diagnostic, e.g. ["good"].',
    )


class TaskGateFilter(filters.FilterSet):
    class Meta:
        model = TaskGate
        fields = ["project", "task", "gate_task"]


@extend_schema_view(
    list=extend_schema(
        operation_id="task_gates_list",
        tags=["inference"],
        description="Task gates (two-stage pipelines) of the caller's projects.",
    ),
    retrieve=extend_schema(operation_id="task_gates_retrieve", tags=["inference"]),
)
class TaskGateViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet[TaskGate],
):
    serializer_class = TaskGateOutputSerializer
    filterset_class = TaskGateFilter

    def get_queryset(self) -> QuerySet[TaskGate]:
        return task_gates_visible_to(self.request.user)

    @extend_schema(
        operation_id="task_gates_set",
        tags=["inference"],
        request=TaskGateInputSerializer,
        responses={
            200: TaskGateOutputSerializer,
            201: TaskGateOutputSerializer,
            400: OpenApiResponse(description="Refused gate; the field at fault names the reason."),
            403: OpenApiResponse(description="Not a coordinator or admin of the project."),
            404: OpenApiResponse(description="No such project among the caller's projects."),
        },
        description=(
            "Gate a task by another (coordinators and admins): the task is then predicted only for "
            "frames whose gate-task prediction (by its active version) is one of `diagnostic_values`; "
            "the others get a gated-out prediction. One gate per task: posting for a gated task "
            "changes its gate (200), else creates it (201). Both tasks must be the project's and "
            "differ, gates do not chain, and the values must be choices of the gate task. Stored "
            "predictions made under another gating are replaced by the next re-score."
        ),
    )
    def create(self, request: Request) -> Response:
        serializer = TaskGateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        project = _managed_project(request, data["project"], "set task gates")
        tasks = {task.pk: task for task in LabelTask.objects.filter(pk__in=[data["task"], data["gate_task"]])}
        errors = {
            field: ["No such label task in this project."]
            for field in ("task", "gate_task")
            if data[field] not in tasks or tasks[data[field]].project_id != project.pk
        }
        if errors:
            raise ValidationError(errors)
        try:
            gate, created = task_gate_set(
                project=project,
                task=tasks[data["task"]],
                gate_task=tasks[data["gate_task"]],
                diagnostic_values=data["diagnostic_values"],
                created_by=cast(User, request.user),
            )
        except TaskGateRejected as exc:
            raise ValidationError({exc.field: [exc.message]}) from exc
        gate = self.get_queryset().get(pk=gate.pk)
        return Response(
            TaskGateOutputSerializer(gate).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(
        operation_id="task_gates_destroy",
        tags=["inference"],
        responses={204: None, 403: OpenApiResponse(description="Not a coordinator or admin.")},
        description="Remove a gate: the task is predicted for every frame again after a re-score.",
    )
    def destroy(self, request: Request, pk: str) -> Response:
        gate = self.get_object()
        require_role(request.user, gate.project, MODEL_MANAGER_ROLES, "remove task gates")
        task_gate_delete(gate=gate)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- prediction on demand -------------------------------------------------------------------------


def _conflict(message: str) -> Response:
    return Response({"detail": message}, status=status.HTTP_409_CONFLICT)


def _project_task(project: Project, key: str) -> LabelTask:
    task = LabelTask.objects.filter(project=project, key=key).first()
    if task is None:
        raise ValidationError({"task": [f"No label task {key!r} in this project."]})
    return task


class PredictInputSerializer(serializers.Serializer[Any]):
    task = serializers.CharField(help_text="The label task's key, e.g. diagnosis.")


CONFLICT_DESCRIPTION = (
    "`{detail}`: the task has no active model version (\"No active model version for task 'x'.\"), "
    "its gate task has none, or the image does not suit the model."
)


class FramePredictApi(APIView):
    @extend_schema(
        operation_id="frame_predict",
        tags=["inference"],
        request=PredictInputSerializer,
        responses={
            200: PredictionOutputSerializer,
            201: PredictionOutputSerializer,
            400: OpenApiResponse(description="Unknown task key."),
            403: OpenApiResponse(description="Model predictions are hidden from the caller here."),
            404: OpenApiResponse(description="No such frame in the caller's projects."),
            409: OpenApiResponse(description=CONFLICT_DESCRIPTION),
        },
        description=(
            "The frame's prediction by the task's active version, with its CAM: 200 with the stored "
            "one, or 201 when it was computed now (in the request: one frame, gate first for a gated "
            "task) and stored as the re-score job would. `cam_url` is null where CAMs are hidden "
            "from the caller."
        ),
    )
    def post(self, request: Request, frame_id: int) -> Response:
        frame, visibility = _frame_with_ai_visible(request, frame_id)
        serializer = PredictInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        task = _project_task(frame.examination.patient.project, serializer.validated_data["task"])
        try:
            prediction = stored_frame_prediction(frame=frame, task=task)
            computed = prediction is None
            if prediction is None:
                prediction = predict_frame_on_demand(frame=frame, task=task)
        except (NoActiveVersion, GateUnavailable, MlError) as exc:
            return _conflict(exc.message)
        context = {"request": request, "cam_visible": visibility.cam}
        return Response(
            PredictionOutputSerializer(prediction, context=context).data,
            status=status.HTTP_201_CREATED if computed else status.HTTP_200_OK,
        )


class ClassifyInputSerializer(serializers.Serializer[Any]):
    image = serializers.FileField(
        allow_empty_file=False,
        use_url=False,
        help_text="The image (PNG, JPEG, TIFF, BMP or WebP, as the import accepts); nothing is stored.",
    )
    task = serializers.CharField(help_text="The label task's key, e.g. diagnosis.")


class ClassifyOutputSerializer(serializers.Serializer[Any]):
    task_key = serializers.CharField()
    model_version = serializers.IntegerField()
    model_version_name = serializers.CharField()
    predicted_value = serializers.CharField(help_text="Empty when gated out.")
    confidence = serializers.FloatField(allow_null=True, help_text="Null when gated out.")
    probabilities = ProbabilitySerializer(many=True, help_text="Empty when gated out.")
    cam_png_base64 = serializers.CharField(
        allow_null=True,
        help_text=(
            "The CAM as a base64 grayscale PNG spanning the whole image (longer side <= 224 px; see "
            "render_cam); null where CAMs are hidden from the caller or the image was gated out."
        ),
    )
    gate_passed = serializers.BooleanField(allow_null=True, help_text="Null when the task is not gated.")
    gate = GateDecisionSerializer(allow_null=True)
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    elapsed_ms = serializers.FloatField(help_text="Time of the gate, the model and the CAM.")


class ProjectClassifyApi(APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        operation_id="project_classify",
        tags=["inference"],
        request={"multipart/form-data": ClassifyInputSerializer},
        responses={
            200: ClassifyOutputSerializer,
            400: OpenApiResponse(
                description="Unknown task key, or the file is empty, too large, not an image of an "
                "allowed format, truncated, over the pixel limit, or unsuitable for the model."
            ),
            403: OpenApiResponse(description="Model predictions are hidden from the caller here."),
            404: OpenApiResponse(description="No such project among the caller's."),
            409: OpenApiResponse(description=CONFLICT_DESCRIPTION),
        },
        description=(
            "Classify an uploaded image with the task's active version (gate first for a gated "
            "task), with its CAM, in the request; nothing is stored. The image is decoded and "
            "normalised with the import's rules."
        ),
    )
    def post(self, request: Request, pk: int) -> Response:
        project = _visible_project(request, pk)
        visibility = require_ai_visible(request.user, project)
        serializer = ClassifyInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        task = _project_task(project, serializer.validated_data["task"])
        try:
            image = open_uploaded_image(serializer.validated_data["image"])
        except ImageUploadRejected as exc:
            raise ValidationError({"image": [exc.message]}) from exc
        try:
            result = classify_image(project=project, task=task, image=image)
        except (NoActiveVersion, GateUnavailable) as exc:
            return _conflict(exc.message)
        except PreprocessingError as exc:
            raise ValidationError({"image": [f"The image does not suit the model: {exc.message}"]}) from exc
        body = {
            "task_key": result.task_key,
            "model_version": result.model_version,
            "model_version_name": result.model_version_name,
            "predicted_value": result.predicted_value,
            "confidence": result.confidence,
            "probabilities": [{"value": value, "probability": p} for value, p in result.probabilities],
            "cam_png_base64": result.cam_png_base64 if visibility.cam else None,
            "gate_passed": result.gate_passed,
            "gate": asdict(result.gate) if result.gate is not None else None,
            "width": result.width,
            "height": result.height,
            "elapsed_ms": result.elapsed_ms,
        }
        return Response(ClassifyOutputSerializer(body).data)
