"""Writes of the inference app: register, activate and retire model versions; re-score jobs.

No ML runs in a request: registering only validates the file's header and tensor table
(`validate_model_file` reads no weights), and scoring happens in the `inference.rescore_job` task.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotations.models import LabelTask
from inference.ml.errors import ModelFileError
from inference.ml.model_files import file_sha256, validate_model_file
from inference.models import ModelVersion
from jobs.models import Job
from jobs.services import ProgressCallback, job_create
from records import media
from records.models import Project

RESCORE_JOB_KIND = "inference.rescore"


class ModelVersionRejected(Exception):
    """A model file that cannot be registered; the message says why, for the user (API: 400)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def model_file_path(sha256: str) -> str:
    return media.content_path("models", sha256, ".safetensors")


def model_version_register(
    *, project: Project, task: LabelTask, uploaded_path: Path, name: str, created_by: User | None
) -> ModelVersion:
    """Check the uploaded model file, store it under its sha256 and register it as a candidate.

    Refused (ModelVersionRejected, nothing stored) when the file is not a valid CLEAR model file
    (pickle, not safetensors, damaged, metadata or tensors wrong), when the task of another project
    is given, when the model serves another task than `task.key`, when one of its labels is not a
    value of the task's choices, or when the same file (same sha256) is already registered in the
    project: the message names the existing version, which the caller can use instead.
    """
    if task.project_id != project.pk:
        raise ModelVersionRejected("The label task belongs to another project.")
    try:
        info = validate_model_file(uploaded_path)
    except ModelFileError as exc:
        raise ModelVersionRejected(f"The model file was refused: {exc.message}") from exc
    metadata = info.metadata
    if metadata.task != task.key:
        raise ModelVersionRejected(
            f"The model predicts task {metadata.task!r}, not this task ({task.key!r})."
        )
    values = set(task.choices.values_list("value", flat=True))
    unknown = [label for label in metadata.labels if label not in values]
    if unknown:
        raise ModelVersionRejected(
            f"The model's labels {unknown} are not choices of task {task.key!r} "
            f"(its choices: {sorted(values)})."
        )
    existing = ModelVersion.objects.filter(project=project, sha256=info.sha256).first()
    if existing is not None:
        raise ModelVersionRejected(
            f"This model file is already registered in the project as version {existing.pk} "
            f"({existing.name!r})."
        )
    relative = model_file_path(info.sha256)
    # Copied in chunks (weights can be hundreds of MB) to a temporary name and renamed into place;
    # a file already there (the same model in another project) is content-addressed and reused.
    created = media.copy_file_atomic(relative, Path(uploaded_path))
    if created and file_sha256(media.absolute(relative)) != info.sha256:
        media.delete(relative)
        raise ModelVersionRejected("The model file changed while it was being checked.")
    try:
        with transaction.atomic():
            return ModelVersion.objects.create(
                project=project,
                task=task,
                name=name,
                architecture=metadata.architecture,
                file=relative,
                sha256=info.sha256,
                file_bytes=info.size,
                metadata=metadata.to_header(),
                labels=list(metadata.labels),
                status=ModelVersion.Status.CANDIDATE,
                created_by=created_by,
            )
    except IntegrityError as exc:
        # A concurrent registration of the same file won; its row owns the (shared) file.
        if created and not ModelVersion.objects.filter(sha256=info.sha256).exists():
            media.delete(relative)
        raise ModelVersionRejected("This model file was registered meanwhile in the project.") from exc


@transaction.atomic
def model_version_activate(*, model_version: ModelVersion) -> ModelVersion:
    """Make `model_version` the active one of its project and task, retiring the one active before.

    The project's versions of the task are locked (select_for_update) first, so two activations run
    one after the other; both updates are in one transaction, so a failure keeps the old one active
    and the partial unique constraint guarantees that at no point two are active.
    """
    versions = list(
        ModelVersion.objects.select_for_update()
        .filter(project_id=model_version.project_id, task_id=model_version.task_id)
        .order_by("id")
    )
    target = next(version for version in versions if version.pk == model_version.pk)
    if target.status == ModelVersion.Status.ACTIVE:
        return target
    now = timezone.now()
    ModelVersion.objects.filter(
        pk__in=[v.pk for v in versions if v.status == ModelVersion.Status.ACTIVE]
    ).update(status=ModelVersion.Status.RETIRED, retired_at=now)
    target.status = ModelVersion.Status.ACTIVE
    target.activated_at = now
    target.retired_at = None
    target.save(update_fields=["status", "activated_at", "retired_at"])
    return target


@transaction.atomic
def model_version_retire(*, model_version: ModelVersion) -> ModelVersion:
    """Retire a version (active or candidate); its predictions are kept. Retiring twice is a no-op."""
    target = ModelVersion.objects.select_for_update().get(pk=model_version.pk)
    if target.status != ModelVersion.Status.RETIRED:
        target.status = ModelVersion.Status.RETIRED
        target.retired_at = timezone.now()
        target.save(update_fields=["status", "retired_at"])
    return target


def rescore_job_create(
    *, model_version: ModelVersion, examination_ids: list[int] | None = None, created_by: User | None
) -> Job:
    """Queue a job on the `gpu` queue that scores the project's frames (optionally only those of
    `examination_ids`) with `model_version`; enqueued after commit."""
    params: dict[str, Any] = {"model_version_id": model_version.pk}
    if examination_ids:
        params["examination_ids"] = sorted(set(examination_ids))
    return job_create(
        kind=RESCORE_JOB_KIND,
        params=params,
        enqueue=_enqueue_rescore,
        project_id=model_version.project_id,
        created_by_id=created_by.pk if created_by else None,
    )


def _enqueue_rescore(job_id: int) -> None:
    from inference.tasks import rescore_job

    rescore_job.delay(job_id=job_id)


def model_version_score_frames(
    *,
    model_version: ModelVersion,
    examination_ids: list[int] | None = None,
    batch_size: int | None = None,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Predict, with CAMs, every frame of the project (or of `examination_ids`) that has no
    Prediction of (model_version, task) yet; the work of a re-score job.

    Frames go in id order, `batch_size` at a time (CLEAR_RESCORE_BATCH_SIZE). The model file is
    loaded once (device from `select_device()`: CUDA when present). Per batch: the stored PNGs are
    opened, predicted with their crop boxes, each CAM is written content-addressed
    (`cams/ab/<sha256>.png`, atomically), and then the batch's Prediction rows are inserted in one
    transaction with ignore_conflicts. So a worker killed mid-job leaves only whole batches of rows,
    each with its CAM file already on disk; a CAM file without a row is harmless (content-addressed,
    rewritten identically or reused). Frames that already have a prediction are skipped, so a
    redelivered or resumed job continues where it stopped and never duplicates a row (the unique
    constraint is the last line of defence against two concurrent runs).
    """
    from django.conf import settings
    from PIL import Image

    from inference.ml.cam import encode_png, predict_frames_with_cam
    from inference.ml.model_files import load_model_file
    from inference.ml.predict import select_device
    from inference.models import Prediction
    from records.models import Frame

    size = batch_size or settings.CLEAR_RESCORE_BATCH_SIZE
    frames = Frame.objects.filter(examination__patient__project_id=model_version.project_id)
    if examination_ids:
        frames = frames.filter(examination_id__in=examination_ids)
    total = frames.count()
    pending = (
        frames.exclude(
            pk__in=Prediction.objects.filter(
                model_version_id=model_version.pk, task_id=model_version.task_id
            ).values("frame_id")
        )
        .only("id", "file", "crop_box")
        .order_by("id")
    )
    skipped = total - pending.count()
    labels: list[str] = list(model_version.labels)
    loaded = None
    device = None
    scored = 0
    last_id = 0
    if progress is not None:
        progress(skipped, total, f"{skipped} frames already scored")
    while True:
        batch = list(pending.filter(id__gt=last_id)[:size])
        if not batch:
            break
        last_id = batch[-1].pk
        if loaded is None:
            device = select_device()
            loaded = load_model_file(media.absolute(model_version.file), device=device)
        images = []
        for frame in batch:
            with Image.open(media.absolute(frame.file)) as image:
                image.load()
                images.append(image)
        results = predict_frames_with_cam(
            loaded.model,
            images,
            crop_boxes=[frame.crop_box for frame in batch],
            batch_size=size,
            device=device,
        )
        rows = []
        for frame, result in zip(batch, results, strict=True):
            png = encode_png(result.image)
            cam_file = media.content_path("cams", hashlib.sha256(png).hexdigest(), ".png")
            media.write_atomic(cam_file, png)
            probabilities = [float(p) for p in result.probabilities]
            rows.append(
                Prediction(
                    frame_id=frame.pk,
                    model_version_id=model_version.pk,
                    task_id=model_version.task_id,
                    probabilities=probabilities,
                    predicted_value=labels[result.predicted_class],
                    confidence=max(probabilities),
                    cam_file=cam_file,
                )
            )
        with transaction.atomic():
            Prediction.objects.bulk_create(rows, ignore_conflicts=True)
        scored += len(rows)
        if progress is not None:
            progress(skipped + scored, total, f"{scored} frames scored")
    summary = f"{scored} frames scored with {model_version.name}, {skipped} already scored"
    return {"frames_scored": scored, "frames_skipped": skipped, "summary": summary}
