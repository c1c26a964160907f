"""Label schemas (tasks and their choices, per project), the annotations readers make with them, and
the adjudications reviewers make where annotators disagree.

Every change to a task, a choice, an annotation or an adjudication is kept in an audit history by
django-simple-history (`history = HistoricalRecords()`): who changed what and when. The services set
the acting user on the instance before they save, so the history never depends on a request
middleware. (django-pghistory was the first choice, but it records through Postgres triggers that
django-pgtrigger silently skips on other databases: the SQLite demo would migrate and then keep no
history at all. django-simple-history records in Python and works the same on both.)
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from records.models import Frame, Project

COLOR_VALIDATOR = RegexValidator(r"^#[0-9a-fA-F]{6}$", "A colour is written #rrggbb.")
HOTKEY_VALIDATOR = RegexValidator(r"^[0-9a-z]?$", "A hotkey is one lower-case letter or digit.")


class LabelTask(models.Model):
    """One question asked about a frame (organ or site, image quality, diagnosis) in a project."""

    class Kind(models.TextChoices):
        NOMINAL = "nominal", "Nominal (unordered categories)"
        ORDINAL = "ordinal", "Ordinal (choices ordered from first to last)"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="label_tasks")
    key = models.SlugField(max_length=50, help_text="Stable identifier, unique in the project.")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.NOMINAL)
    order = models.PositiveIntegerField(default=0, help_text="Position among the project's tasks.")
    is_active = models.BooleanField(
        default=True,
        help_text="An inactive task keeps its annotations (readable) but accepts no new or changed ones.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "key"], name="labeltask_unique_key")]
        ordering = ["project", "order", "id"]

    def __str__(self) -> str:
        return f"{self.project} / {self.key}"


class LabelChoice(models.Model):
    """One answer a task offers. Its `value` is what annotations store, so it never changes."""

    task = models.ForeignKey(LabelTask, on_delete=models.CASCADE, related_name="choices")
    value = models.SlugField(max_length=50, help_text="Stored in annotations; unique in the task.")
    label = models.CharField(max_length=200)
    order = models.PositiveIntegerField(
        default=0, help_text="Position in the task; the scale of an ordinal task."
    )
    color = models.CharField(max_length=7, default="#808080", validators=[COLOR_VALIDATOR])
    hotkey = models.CharField(
        max_length=1,
        blank=True,
        validators=[HOTKEY_VALIDATOR],
        help_text="One key; unique among the active choices of the project's active tasks. Blank: none.",
    )
    is_active = models.BooleanField(
        default=True,
        help_text="An inactive choice keeps its annotations (readable) but cannot be chosen anew.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["task", "value"], name="labelchoice_unique_value")]
        ordering = ["task", "order", "id"]

    def __str__(self) -> str:
        return f"{self.task} = {self.value}"


class Annotation(models.Model):
    """One annotator's answer to one task for one frame; `version` guards against lost updates."""

    class Context(models.TextChoices):
        FREE = "free", "Free labelling"
        # Reserved for the reader-study issue: readings will point here with a study reading of their own.
        STUDY = "study", "Reader-study reading"

    frame = models.ForeignKey(Frame, on_delete=models.CASCADE, related_name="annotations")
    task = models.ForeignKey(LabelTask, on_delete=models.PROTECT, related_name="annotations")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="annotations"
    )
    value = models.SlugField(max_length=50, help_text="The value of one of the task's choices.")
    confidence = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(5)],
        help_text=(
            "How sure the annotator is of this answer, 1 to 5: 1 = guess, 2 = unsure, 3 = fairly sure, "
            "4 = sure, 5 = certain."
        ),
    )
    time_on_frame_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="Milliseconds the frame was on screen before this answer."
    )
    ai_shown = models.BooleanField(default=False, help_text="Whether a model prediction or CAM was visible.")
    cam_visible_ms = models.PositiveIntegerField(
        default=0,
        help_text=(
            "Milliseconds the model's CAM overlay was visible on screen (tab visible, opacity above 0) "
            "for this frame before this answer; 0 = never shown. Requires ai_shown."
        ),
    )
    context = models.CharField(max_length=10, choices=Context.choices, default=Context.FREE)
    version = models.PositiveIntegerField(default=1, help_text="Raised by one with every change.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["frame", "task", "annotator"], name="annotation_unique_per_annotator"
            ),
            models.CheckConstraint(
                condition=Q(confidence__gte=1, confidence__lte=5), name="annotation_confidence_1_to_5"
            ),
            models.CheckConstraint(condition=Q(version__gte=1), name="annotation_version_positive"),
        ]
        # Not by frame: Frame's own ordering (examination, then video.examination) trips Django's
        # ordering-loop check when followed through a relation.
        ordering = ["id"]
        indexes = [
            models.Index(fields=["task", "value"], name="annotation_task_value_idx"),
            # The work queue's `done` count: an index-only scan of the caller's rows of one task
            # (100,000 frames, 10,500 done: 6.6 -> 2.6 ms; bench/README.md).
            models.Index(fields=["annotator", "task"], name="annotation_annotator_task_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.task.key}={self.value} on frame {self.frame_id} by {self.annotator_id}"

    def snapshot(self) -> dict[str, Any]:
        """The annotation as JSON-safe data (what an idempotent replay answers with)."""
        return {
            "id": self.pk,
            "frame_id": self.frame_id,
            "task_id": self.task_id,
            "annotator_id": self.annotator_id,
            "value": self.value,
            "confidence": self.confidence,
            "time_on_frame_ms": self.time_on_frame_ms,
            "ai_shown": self.ai_shown,
            "cam_visible_ms": self.cam_visible_ms,
            "context": self.context,
            "version": self.version,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


class Adjudication(models.Model):
    """The reviewer's decision on one task for one frame, kept apart from the individual annotations
    it was decided over (which stay as their annotators gave them).

    `based_on` records those annotations as they were when the decision was made: a list of
    {annotation_id, annotator_id, value, confidence, version}. `version` guards against lost updates
    as in Annotation; `adjudicated_by` is who made the current decision (the history keeps earlier
    ones).
    """

    frame = models.ForeignKey(Frame, on_delete=models.CASCADE, related_name="adjudications")
    task = models.ForeignKey(LabelTask, on_delete=models.PROTECT, related_name="adjudications")
    value = models.SlugField(max_length=50, help_text="The value of one of the task's choices.")
    rationale = models.TextField(blank=True, help_text="Why the reviewer decided so (optional).")
    adjudicated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="adjudications"
    )
    based_on = models.JSONField(
        default=list,
        blank=True,
        help_text=(
            "The free-labelling annotations decided over, as they were then: "
            "[{annotation_id, annotator_id, value, confidence, version}]."
        ),
    )
    version = models.PositiveIntegerField(default=1, help_text="Raised by one with every change.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["frame", "task"], name="adjudication_unique_per_frame_task"),
            models.CheckConstraint(condition=Q(version__gte=1), name="adjudication_version_positive"),
        ]
        # Not by frame, for the same reason as Annotation.
        ordering = ["id"]

    def __str__(self) -> str:
        return (
            f"{self.task.key}={self.value} on frame {self.frame_id} adjudicated by {self.adjudicated_by_id}"
        )

    @property
    def adjudicated_by_username(self) -> str:
        return str(self.adjudicated_by.get_username())

    def snapshot(self) -> dict[str, Any]:
        """The adjudication as JSON-safe data (what an idempotent replay answers with)."""
        return {
            "id": self.pk,
            "frame_id": self.frame_id,
            "task_id": self.task_id,
            "value": self.value,
            "rationale": self.rationale,
            "adjudicated_by_id": self.adjudicated_by_id,
            "adjudicated_by_username": self.adjudicated_by_username,
            "based_on": self.based_on,
            "version": self.version,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


class IdempotencyRecord(models.Model):
    """A submit made with an Idempotency-Key: the request's fingerprint and the answer it got, so
    that a retry gets the same answer without a second write."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="sha256 of the request's target and payload.")
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)  # expiry by age

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotency_unique_key")]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.key}"
