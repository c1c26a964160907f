"""ExportSnapshot: one dataset export, defined by its parameters and built once by a background job.

The parameters (projects, task, label source, filters, split scheme, near-duplicate removal,
format, options) are kept as given; the job writes the archive below MEDIA_ROOT (`exports/`), and
records its snapshot hash (sha256 over the archive's sorted manifest lines and the canonical
parameters, see exports/archive.py), file size and counts. The snapshot id is what a training run
records; the hash says whether two snapshots hold the same data.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models


class ExportSnapshot(models.Model):
    class Format(models.TextChoices):
        CSV = "csv", "CSV manifest (metadata.csv + images/)"
        IMAGEFOLDER = "imagefolder", "ImageFolder ZIP (split/label/frame.png)"
        JSON = "json", "JSON with every annotation (dataset.json + images/)"
        HF = "hf", "Hugging Face imagefolder (split/frame.png + metadata.csv)"
        WEBDATASET = "webdataset", "WebDataset tar shards"
        PARQUET = "parquet", "Parquet manifest (metadata.parquet + images/)"

    class LabelSource(models.TextChoices):
        ADJUDICATED = "adjudicated", "Adjudicated (the reviewer's decision)"
        MAJORITY = "majority", "Majority of annotators (ties: no label)"
        REFERENCE = "reference", "Reference standard (frame's, else examination's)"
        EVERY_ANNOTATOR = "every_annotator", "Every annotator's label (one row per annotation)"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        READY = "ready"
        FAILED = "failed"

    projects: models.ManyToManyField[Any, Any] = models.ManyToManyField(
        "records.Project", related_name="export_snapshots"
    )
    task_key = models.SlugField(
        max_length=50, help_text="The label task exported (its key in every project)."
    )
    label_source = models.CharField(max_length=20, choices=LabelSource.choices)
    filters = models.JSONField(
        default=dict, blank=True, help_text="Sites, devices, quality, label state, dates."
    )
    split = models.JSONField(default=dict, blank=True, help_text="Split scheme and its parameters.")
    remove_near_duplicates = models.BooleanField(default=False)
    near_duplicate_distance = models.PositiveSmallIntegerField(
        default=4,
        help_text="Most differing bits (of 64) between two frames' difference hashes for near duplicates.",
    )
    format = models.CharField(max_length=20, choices=Format.choices)
    options = models.JSONField(default=dict, blank=True, help_text="include_images, shard_size.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    job = models.ForeignKey("jobs.Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    file = models.CharField(max_length=300, blank=True, help_text="Path of the archive below MEDIA_ROOT.")
    file_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    snapshot_hash = models.CharField(
        max_length=64, blank=True, help_text="sha256 over the sorted manifest lines and the parameters."
    )
    counts = models.JSONField(default=dict, blank=True)
    notes = models.JSONField(
        default=list, blank=True, help_text="What the build reports (ties, splits, ...)."
    )
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"export {self.pk} ({self.format}, {self.status})"

    @property
    def archive_suffix(self) -> str:
        return ".tar" if self.format == self.Format.WEBDATASET else ".zip"

    @property
    def download_name(self) -> str:
        short = self.snapshot_hash[:12] or "pending"
        return f"clear-export-{self.pk}-{self.format}-{short}{self.archive_suffix}"
