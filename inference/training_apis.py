"""Training runs API: configure and queue a run, follow it, stop it; the pretrained weight files a
run may start from. Coordinators and admins of a project (who also register and activate models)."""

from __future__ import annotations

from typing import Any, cast

from django.contrib.auth.models import User
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotations.models import LabelTask
from inference.apis import MODEL_MANAGER_ROLES, _managed_project
from inference.models import RetrainPolicy, TrainingRun
from inference.training import (
    TRAINING_LABEL_SOURCES,
    TrainingRejected,
    new_label_count,
    pretrained_weights,
    training_run_create,
)
from jobs.apis import JobOutputSerializer
from jobs.services import JobNotCancellable, job_cancel
from records.models import ProjectMembership


class TrainingRunCreateInputSerializer(serializers.Serializer[Any]):
    project = serializers.IntegerField()
    task = serializers.IntegerField(help_text="The label task (id) the model learns.")
    name = serializers.CharField(max_length=200)
    label_source = serializers.ChoiceField(choices=TRAINING_LABEL_SOURCES, required=False)
    config = serializers.DictField(
        help_text=(
            "Training settings: architecture (a timm name or a registered custom one), input_size, "
            "in_chans, epochs, learning_rate, batch_size, optimizer (adamw, adam, sgd), weight_decay, "
            "imbalance (none, class_weights, weighted_sampling, focal), focal_gamma, label_smoothing, "
            "dropout, early_stopping_patience (0: off), pretrained_file (a name from "
            "/api/pretrained-weights/), seed, augmentation {rotation_degrees, horizontal_flip, "
            "vertical_flip, translate, zoom, shear_degrees, brightness, contrast, blur_probability, "
            "blur_max_radius}."
        )
    )
    evaluation = serializers.DictField(
        help_text=(
            "Patient-grouped evaluation: {scheme: kfold, k, seed, stratify} | {scheme: lopo} | "
            "{scheme: ratio, train, val, test, seed} | {scheme: external, field: site|device|cohort|"
            "examination, values: [...]}; validation_fraction (0.05-0.5): the inner validation "
            "split of the training patients used for early stopping."
        )
    )
    positive = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="Positive class (binary metrics)."
    )
    export = serializers.IntegerField(
        required=False,
        help_text=(
            "Learn from this ready export snapshot of the task (its frames, labels and split; its hash "
            "becomes the run's dataset snapshot id) instead of from label_source; evaluation "
            "{scheme: export} evaluates on the export's own split."
        ),
    )
    synthetic = serializers.DictField(
        required=False,
        help_text=(
            "Quality tasks: {good, bad, kinds: [blur, brightness, blur_brightness], per_good_frame}: "
            "synthetic bad frames made from good training frames (never stored or exported)."
        ),
    )


class TrainingRunOutputSerializer(serializers.ModelSerializer[TrainingRun]):
    task_key = serializers.CharField(source="task.key", read_only=True)
    job = JobOutputSerializer(read_only=True)

    class Meta:
        model = TrainingRun
        fields = [
            "id",
            "project",
            "task",
            "task_key",
            "name",
            "label_source",
            "config",
            "evaluation",
            "positive",
            "synthetic",
            "labels",
            "export_snapshot",
            "dataset_snapshot_id",
            "dataset_summary",
            "folds",
            "summary",
            "history",
            "model_version",
            "job",
            "created_by",
            "created_at",
        ]
        read_only_fields = fields


def training_runs_visible_to(user: Any) -> QuerySet[TrainingRun]:
    runs = TrainingRun.objects.select_related("task", "job")
    if user.is_superuser:
        return runs
    managed = ProjectMembership.objects.filter(user_id=user.pk, role__in=MODEL_MANAGER_ROLES).values(
        "project_id"
    )
    return runs.filter(project_id__in=managed)


@extend_schema_view(
    list=extend_schema(tags=["training"], description="Training runs of the projects the caller manages."),
    retrieve=extend_schema(
        tags=["training"],
        description="One run: settings, dataset summary, per-fold metrics and curves, summary, its job.",
    ),
)
class TrainingRunViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[TrainingRun]
):
    serializer_class = TrainingRunOutputSerializer
    filterset_fields = ["project", "task"]

    def get_queryset(self) -> QuerySet[TrainingRun]:
        return training_runs_visible_to(self.request.user)

    @extend_schema(
        tags=["training"],
        request=TrainingRunCreateInputSerializer,
        responses={
            202: TrainingRunOutputSerializer,
            400: OpenApiResponse(description="Refused settings."),
            404: OpenApiResponse(description="No such project or task among the caller's projects."),
        },
        description=(
            "Check the settings, freeze the labelled frames (the dataset snapshot) and queue the run "
            "on the gpu queue. 400 names every refused setting; nothing is stored then."
        ),
    )
    def create(self, request: Request) -> Response:
        serializer = TrainingRunCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        project = _managed_project(request, data["project"], "train models")
        task = LabelTask.objects.filter(project=project, pk=data["task"]).first()
        if task is None:
            raise ValidationError({"task": ["No such label task in this project."]})
        export = None
        if "export" in data:
            from exports.selectors import snapshots_visible_to

            export = snapshots_visible_to(request.user).filter(pk=data["export"]).first()
            if export is None:
                raise ValidationError({"export": ["No such export snapshot."]})
        elif "label_source" not in data:
            raise ValidationError({"label_source": ["Give a label source, or an export to learn from."]})
        try:
            run = training_run_create(
                project=project,
                task=task,
                name=data["name"],
                label_source=data.get("label_source", ""),
                export=export,
                config=data["config"],
                evaluation=data["evaluation"],
                positive=data["positive"],
                synthetic=data.get("synthetic"),
                created_by=cast(User, request.user),
            )
        except TrainingRejected as exc:
            raise ValidationError({field: [message] for field, message in exc.errors.items()}) from exc
        return Response(TrainingRunOutputSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        tags=["training"],
        request=None,
        responses={200: TrainingRunOutputSerializer, 409: OpenApiResponse(description="Finished already.")},
        description="Stop the run (its job ends cancelled; no model is registered).",
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        run = self.get_object()
        try:
            job_cancel(job_id=run.job_id)
        except JobNotCancellable as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(TrainingRunOutputSerializer(self.get_queryset().get(pk=run.pk)).data)


class PretrainedWeightsApi(APIView):
    @extend_schema(
        tags=["training"],
        responses={200: serializers.ListSerializer(child=serializers.CharField())},
        description="Names of the local weight files a training run may start from (config.pretrained_file).",
    )
    def get(self, request: Request) -> Response:
        return Response(sorted(pretrained_weights()))


class RetrainPolicySerializer(serializers.ModelSerializer[RetrainPolicy]):
    new_labels = serializers.SerializerMethodField(help_text="Labels of the task since the last run.")

    class Meta:
        model = RetrainPolicy
        fields = [
            "id",
            "project",
            "task",
            "template",
            "min_new_labels",
            "enabled",
            "new_labels",
            "last_run",
            "last_checked_at",
            "last_error",
            "created_at",
        ]
        read_only_fields = [
            "id",
            "project",
            "task",
            "last_run",
            "last_checked_at",
            "last_error",
            "created_at",
        ]
        extra_kwargs = {
            "template": {
                "help_text": "A training run whose settings the new runs copy (its task is the policy's)."
            },
            "min_new_labels": {"min_value": 1, "help_text": "Start a run once this many new labels came in."},
        }

    def get_new_labels(self, policy: RetrainPolicy) -> int:
        return new_label_count(policy)

    def validate_template(self, template: TrainingRun) -> TrainingRun:
        request = self.context["request"]
        if not training_runs_visible_to(request.user).filter(pk=template.pk).exists():
            raise ValidationError("No such training run.")
        return template


@extend_schema_view(
    list=extend_schema(tags=["training"], description="Retrain policies of the projects the caller manages."),
    retrieve=extend_schema(tags=["training"]),
    create=extend_schema(
        tags=["training"],
        description=(
            "Retrain the template run's task once `min_new_labels` new annotations or adjudications "
            "came in (checked every CLEAR_RETRAIN_CHECK_SECONDS; one policy per task)."
        ),
    ),
    partial_update=extend_schema(tags=["training"], description="Change the threshold or switch it off."),
    destroy=extend_schema(tags=["training"]),
)
class RetrainPolicyViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet[RetrainPolicy],
):
    serializer_class = RetrainPolicySerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[RetrainPolicy]:
        runs = training_runs_visible_to(self.request.user)
        return RetrainPolicy.objects.filter(template__in=runs).select_related("last_run", "task")

    def perform_create(self, serializer: serializers.BaseSerializer[RetrainPolicy]) -> None:
        template: TrainingRun = serializer.validated_data["template"]
        if RetrainPolicy.objects.filter(task_id=template.task_id).exists():
            raise ValidationError({"template": ["The task has a retrain policy already: change that one."]})
        serializer.save(project=template.project, task=template.task, created_by=self.request.user)

    def perform_update(self, serializer: serializers.BaseSerializer[RetrainPolicy]) -> None:
        template = serializer.validated_data.get("template")
        if template is not None and template.task_id != serializer.instance.task_id:  # type: ignore[union-attr]
            raise ValidationError({"template": ["The template must be a run of the policy's task."]})
        serializer.save()
