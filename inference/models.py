"""Model versions (registered model files, one active per project and task) and the predictions
they make for frames, with their class activation maps."""

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
    (labels in `model_version.labels`), the top label and its probability, and the CAM image."""

    frame = models.ForeignKey(Frame, on_delete=models.CASCADE, related_name="predictions")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="predictions")
    task = models.ForeignKey(LabelTask, on_delete=models.CASCADE, related_name="predictions")
    probabilities = models.JSONField(help_text="Softmax probabilities in the model's class order.")
    predicted_value = models.CharField(max_length=50)
    confidence = models.FloatField(help_text="The predicted class's probability.")
    cam_file = models.CharField(max_length=300, blank=True, help_text="CAM PNG below MEDIA_ROOT.")
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
        return f"{self.model_version} on frame {self.frame_id}: {self.predicted_value}"
