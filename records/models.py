"""Projects and the clinical records CLEAR holds: patients (pseudonyms only), examinations, videos
(acquisition sequences) and frames (content-addressed image files)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q


class Project(models.Model):
    class AiAssistance(models.TextChoices):
        """What model output the project's readers (and data managers) see while labelling.

        Coordinators, admins and reviewers always see it; in a reader study the arm decides instead.
        """

        HIDDEN = "hidden", "Hidden: readers see no model output"
        PREDICTION = "prediction", "Prediction: readers see the predicted class and probability"
        PREDICTION_AND_CAM = "prediction_and_cam", "Prediction and CAM: readers also see the heatmap"

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    description = models.TextField(blank=True)
    ai_assistance = models.CharField(
        max_length=20,
        choices=AiAssistance.choices,
        default=AiAssistance.HIDDEN,
        help_text="What model output readers see in free labelling (hidden by default: unbiased labels).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    members: models.ManyToManyField[Any, Any] = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="ProjectMembership", related_name="projects", blank=True
    )

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class ProjectMembership(models.Model):
    class Role(models.TextChoices):
        READER = "reader", "Reader (medical expert)"
        COORDINATOR = "coordinator", "Study coordinator"
        DATA_MANAGER = "data_manager", "Data manager"
        ADMIN = "admin", "Project admin"
        REVIEWER = "reviewer", "Reviewer (adjudicates disagreements)"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.READER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="membership_unique_user")]
        ordering = ["project", "user"]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} as {self.role}"


class Patient(models.Model):
    """A patient known only by a pseudonym.

    The pseudonym is a keyed HMAC of the source identifier (records/pseudonyms.py) or a code the
    coordinator gives; no name or hospital number is stored anywhere.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="patients")
    pseudonym = models.CharField(max_length=64)
    cohort = models.CharField(max_length=100, blank=True, help_text="Cohort or recruiting site.")
    sex = models.CharField(max_length=1, blank=True, choices=[("F", "female"), ("M", "male"), ("X", "other")])
    birth_year = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Coarse only.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "pseudonym"], name="patient_unique_pseudonym")
        ]
        ordering = ["project", "pseudonym"]

    def __str__(self) -> str:
        return self.pseudonym


class Examination(models.Model):
    """One examination (procedure) of a patient; the design's 'session', not Django's."""

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="examinations")
    code = models.CharField(max_length=100, help_text="Examination code, unique per patient.")
    date = models.DateField(null=True, blank=True, help_text="May be shifted for pseudonymisation.")
    device = models.CharField(max_length=100, blank=True, help_text="e.g. pCLE probe, eCLE endoscope.")
    anatomical_site = models.CharField(max_length=100, blank=True)
    reference_label = models.CharField(
        max_length=100, blank=True, help_text="Reference standard, e.g. the histopathology result."
    )
    reference_source = models.CharField(max_length=100, blank=True, help_text="e.g. histopathology.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["patient", "code"], name="examination_unique_code")]
        ordering = ["patient", "date", "code"]
        indexes = [models.Index(fields=["anatomical_site"]), models.Index(fields=["device"])]

    def __str__(self) -> str:
        return f"{self.patient} / {self.code}"


class Video(models.Model):
    """An acquisition sequence: a decoded video file, or a folder of still images taken in order."""

    class Kind(models.TextChoices):
        VIDEO_FILE = "video", "Video file"
        IMAGE_SEQUENCE = "images", "Image sequence"

    examination = models.ForeignKey(Examination, on_delete=models.CASCADE, related_name="videos")
    name = models.CharField(max_length=255)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.VIDEO_FILE)
    source_sha256 = models.CharField(max_length=64, blank=True, help_text="sha256 of the source file.")
    source_file = models.CharField(max_length=300, blank=True, help_text="Path below MEDIA_ROOT.")
    codec = models.CharField(max_length=50, blank=True)
    frame_rate = models.FloatField(null=True, blank=True)
    frame_count = models.PositiveIntegerField(null=True, blank=True, help_text="Frames in the source.")
    duration_s = models.FloatField(null=True, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    every_nth = models.PositiveIntegerField(default=1, help_text="Every n-th source frame was kept.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["examination", "name"], name="video_unique_name")]
        ordering = ["examination", "name"]

    def __str__(self) -> str:
        return f"{self.examination} / {self.name}"


class Frame(models.Model):
    """One still image, stored once under its sha256 (of the re-encoded, metadata-free file)."""

    examination = models.ForeignKey(Examination, on_delete=models.CASCADE, related_name="frames")
    video = models.ForeignKey(Video, on_delete=models.CASCADE, null=True, blank=True, related_name="frames")
    index_in_video = models.PositiveIntegerField(null=True, blank=True)
    time_s = models.FloatField(null=True, blank=True, help_text="Presentation time in its video.")
    source_name = models.CharField(max_length=500, help_text="Relative path of the source file.")
    sha256 = models.CharField(max_length=64)
    file = models.CharField(max_length=300, help_text="Path below MEDIA_ROOT.")
    file_bytes = models.PositiveIntegerField()
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    mode = models.CharField(max_length=8, help_text="Pillow mode: L for grayscale, RGB for colour.")
    preview_file = models.CharField(max_length=300)
    preview_width = models.PositiveIntegerField()
    preview_height = models.PositiveIntegerField()
    crop_box = models.JSONField(
        null=True,
        blank=True,
        help_text="[left, top, right, bottom] of the field of view; the stored image is the original.",
    )
    reference_label = models.CharField(max_length=100, blank=True, help_text="Per-frame reference label.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["examination", "sha256"], name="frame_unique_content_per_examination"
            ),
            models.UniqueConstraint(
                fields=["video", "index_in_video"],
                condition=Q(video__isnull=False),
                name="frame_unique_index_per_video",
            ),
        ]
        ordering = ["examination", "video", "index_in_video", "id"]
        indexes = [
            models.Index(fields=["sha256"]),
            # Work-queue counts read (examination, id) from this index alone: with 100,000 frames
            # 50-63 ms became 17-23 ms (bench/label_bench.py).
            models.Index(fields=["examination", "id"], name="frame_examination_id_idx"),
        ]

    def __str__(self) -> str:
        return f"frame {self.pk} ({self.source_name})"


class ExaminationFrameCount(models.Model):
    """How many frames an examination has, kept by the database itself: triggers on records_frame
    (migration 0006; statement-level on PostgreSQL, row-level on SQLite) add every inserted frame
    (bulk_create included) and subtract every deleted one (cascades from a video, examination or
    project included) in the same transaction, so no code path can forget it. The work queue sums
    these rows for `total` instead of counting the project's frames on every call. No row: no
    frames. Nothing else writes it."""

    examination = models.OneToOneField(
        Examination, on_delete=models.CASCADE, primary_key=True, related_name="frame_count"
    )
    frames = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.frames} frames of examination {self.examination_id}"
