"""Model versions (registered model files, one active per project and task), the predictions
they make for frames with their class activation maps, and task gates (a quality task whose
prediction decides whether a frame is diagnostic enough to be given a diagnosis at all)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from annotations.models import LabelTask
from records.models import Frame, Project


class ModelVersion(models.Model):
    """A checked model file stored content-addressed (`models/ab/<sha256>.safetensors`).

    Status: candidate (registered, not used), active (its predictions are the ones shown; at most
    one per project and task, a partial unique constraint), retired (kept, with its predictions).
    """

    class Status(models.TextChoices):
        CANDIDATE = "candidate"
        ACTIVE = "active"
        RETIRED = "retired"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="model_versions")
    task = models.ForeignKey(LabelTask, on_delete=models.PROTECT, related_name="model_versions")
    name = models.CharField(max_length=200)
    architecture = models.CharField(max_length=100)
    file = models.CharField(max_length=300, help_text="Path below MEDIA_ROOT.")
    sha256 = models.CharField(max_length=64)
    file_bytes = models.PositiveBigIntegerField()
    metadata = models.JSONField(default=dict, help_text="The file's own metadata (safetensors header).")
    labels = models.JSONField(default=list, help_text="Label of each model output, in class order.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CANDIDATE)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "task"],
                condition=Q(status="active"),
                name="modelversion_one_active_per_task",
            ),
            models.UniqueConstraint(fields=["project", "sha256"], name="modelversion_unique_file"),
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"


class Prediction(models.Model):
    """One model version's answer for one frame and task: probabilities in the model's class order
    (labels in `model_version.labels`), the top label and its probability, and the CAM image.

    For a gated task (see TaskGate) `gate_passed` says what the gate decided and `gate_prediction`
    is the gate task's prediction it was decided on. A frame the gate judged not diagnostic
    (gate_passed False) was never shown to the model: its row has no probabilities, an empty
    predicted value, no confidence and no CAM. For an ungated task both are null.
    """

    frame = models.ForeignKey(Frame, on_delete=models.CASCADE, related_name="predictions")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="predictions")
    task = models.ForeignKey(LabelTask, on_delete=models.CASCADE, related_name="predictions")
    probabilities = models.JSONField(
        help_text="Softmax probabilities in the model's class order; empty when gated out."
    )
    predicted_value = models.CharField(max_length=50, blank=True)
    confidence = models.FloatField(
        null=True, blank=True, help_text="The predicted class's probability; null when gated out."
    )
    cam_file = models.CharField(max_length=300, blank=True, help_text="CAM PNG below MEDIA_ROOT.")
    # SET_NULL, not PROTECT: Django's PROTECT refuses a delete even when the referencing row goes in
    # the same cascade, so deleting a frame (which takes its gate prediction and its gated rows
    # together) or a project would fail. The gated row keeps its own decision (gate_passed); one
    # whose gate prediction is gone no longer counts as current (selectors.current_predictions),
    # so the next re-score or on-demand request gates it again.
    gate_prediction = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="gated_predictions",
        help_text="The gate task's prediction this row's gate decision was made on.",
    )
    gate_passed = models.BooleanField(
        null=True, blank=True, help_text="The gate's decision; null when the task is not gated."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["frame", "model_version", "task"], name="prediction_unique_per_version"
            )
        ]
        ordering = ["id"]
        indexes = [models.Index(fields=["model_version", "frame"], name="prediction_version_frame_idx")]

    def __str__(self) -> str:
        if self.gate_passed is False:
            return f"{self.model_version} on frame {self.frame_id}: gated out"
        return f"{self.model_version} on frame {self.frame_id}: {self.predicted_value}"


class TaskGate(models.Model):
    """A two-stage pipeline, as in the ENT and head-and-neck studies: `task` (e.g. diagnosis) is
    only predicted for frames whose `gate_task` (e.g. quality) prediction, by the gate task's active
    model version, is one of `diagnostic_values`. One gate per task; no chains (a gate task is not
    gated itself and a gated task gates nothing), which `services.task_gate_set` checks."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="task_gates")
    task = models.OneToOneField(
        LabelTask, on_delete=models.CASCADE, related_name="gate", help_text="The gated task."
    )
    # PROTECT: deleting the gate task would silently turn the gated task's pipeline into a one-stage
    # one; the gate has to be removed first, on purpose.
    gate_task = models.ForeignKey(
        LabelTask,
        on_delete=models.PROTECT,
        related_name="gates",
        help_text="The task whose prediction decides (e.g. quality).",
    )
    diagnostic_values = models.JSONField(
        default=list, help_text="Values of the gate task's choices that let a frame through."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~Q(task=models.F("gate_task")), name="taskgate_gate_task_differs"
            )
        ]
        ordering = ["project", "task__order", "task_id"]

    def __str__(self) -> str:
        return f"{self.task} gated by {self.gate_task.key} in {self.diagnostic_values}"


class TrainingRun(models.Model):
    """A model trained in the background from a project's labels: its settings, the frozen list of
    frames and labels it learnt from (the dataset snapshot), the patient-grouped evaluation per fold
    and over all folds, the training curves, and the candidate model version it produced.

    Progress, cancellation and errors live on its Job (kind inference.train, queue gpu)."""

    class LabelSource(models.TextChoices):
        ADJUDICATED = "adjudicated", "Adjudicated expert labels (else the annotators' agreed label)"
        MAJORITY = "majority", "Majority of the annotators (ties left out)"
        REFERENCE = "reference", "Reference standard (e.g. histopathology)"
        EXPORT = "export", "An export snapshot's frames and labels"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="training_runs")
    task = models.ForeignKey(LabelTask, on_delete=models.PROTECT, related_name="training_runs")
    name = models.CharField(max_length=200)
    label_source = models.CharField(max_length=16, choices=LabelSource.choices)
    config = models.JSONField(help_text="The training settings (inference.ml.training.TrainingConfig).")
    evaluation = models.JSONField(help_text="The patient-grouped evaluation scheme (annotations.splits).")
    positive = models.CharField(max_length=50, blank=True, help_text="The positive class of a binary task.")
    synthetic = models.JSONField(
        default=dict,
        blank=True,
        help_text="Synthetic bad-quality frames made from good ones (quality tasks).",
    )
    labels = models.JSONField(default=list, help_text="The classes, in model output order.")
    dataset = models.JSONField(
        default=list, help_text="[frame id, label] of every frame learnt from, frozen when the run was made."
    )
    dataset_snapshot_id = models.CharField(
        max_length=64, help_text="sha256 of the frames' hashes and labels."
    )
    dataset_summary = models.JSONField(default=dict, blank=True)
    export_snapshot = models.ForeignKey(
        "exports.ExportSnapshot",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="training_runs",
        help_text="The export snapshot the run learnt from (its hash is the run's dataset snapshot id).",
    )
    folds = models.JSONField(
        default=list, blank=True, help_text="Per fold: patients, metrics, training curve."
    )
    summary = models.JSONField(
        default=dict, blank=True, help_text="Mean and SD of each metric over the folds."
    )
    history = models.JSONField(default=list, blank=True, help_text="The final model's training curve.")
    model_version = models.OneToOneField(
        ModelVersion, on_delete=models.SET_NULL, null=True, blank=True, related_name="training_run"
    )
    job = models.OneToOneField("jobs.Job", on_delete=models.PROTECT, related_name="training_run")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.task.key})"


class RetrainPolicy(models.Model):
    """Retrain a task's model once enough new expert labels came in: a periodic check (Celery beat,
    inference.retrain_check) counts the task's annotations and adjudications made or changed since
    the last run it started (or since the policy was made) and, at `min_new_labels`, starts a run
    with the settings of `template`. Never while a run of the task is queued or running."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="retrain_policies")
    task = models.OneToOneField(LabelTask, on_delete=models.CASCADE, related_name="retrain_policy")
    template = models.ForeignKey(TrainingRun, on_delete=models.PROTECT, related_name="+")
    min_new_labels = models.PositiveIntegerField()
    enabled = models.BooleanField(default=True)
    last_run = models.ForeignKey(
        TrainingRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"retrain {self.task.key} after {self.min_new_labels} new labels"
