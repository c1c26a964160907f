"""Writes of the inference app: register, activate and retire model versions; re-score jobs;
task gates (two-stage pipelines).

No ML runs in these services: registering only validates the file's header and tensor table
(`validate_model_file` reads no weights), and scoring happens in the `inference.rescore_job` task
(single-frame prediction on demand is inference/ondemand.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone
from PIL import Image

from annotations.models import LabelTask
from inference.ml.errors import ModelFileError
from inference.ml.model_files import LoadedModel, load_model_file, validate_model_file
from inference.ml.predict import select_device
from inference.ml.preprocessing import CropBox
from inference.models import ModelVersion, Prediction, TaskGate
from inference.scoring import FrameOutput, current_rows, resolve_gate, run_model, score_and_store
from jobs.models import Job
from jobs.services import ProgressCallback, job_create
from records import media
from records.models import Frame, Project

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
    # Stored in chunks (weights can be hundreds of MB), atomically; a file already there (the same
    # model in another project) is content-addressed and reused. The stored bytes are hashed again:
    # the upload could have changed between the check and the copy.
    created = media.save_file(relative, Path(uploaded_path))
    if created and media.sha256(relative) != info.sha256:
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
    """Predict, with CAMs, every frame of the project (or of `examination_ids`) that has no current
    Prediction of (model_version, task) yet; the work of a re-score job.

    Frames go in id order, `batch_size` at a time (CLEAR_RESCORE_BATCH_SIZE). Each model file is
    loaded once per job (device from `select_device()`: CUDA when present). Each batch goes through
    `scoring.score_and_store`: for a gated task the gate task's active version scores the frames it
    has not scored yet and only the frames it judges diagnostic are given to this version's model;
    the others get a gated-out row. CAM files are written (content-addressed, atomically) before
    the batch's rows, which are inserted in one transaction with ignore_conflicts. So a worker
    killed mid-job leaves only whole batches of rows, each with its CAM file already on disk; a CAM
    file without a row is harmless (rewritten identically or reused). Frames that already have a
    current prediction are skipped, so a redelivered or resumed job continues where it stopped and
    never duplicates a row (the unique constraint is the last line of defence against two concurrent
    runs). A row made under another gating than today's (see selectors.current_predictions) is
    replaced. A gated task whose gate task has no active version fails the job (GateUnavailable).
    """
    gate = resolve_gate(model_version.task_id)
    size = batch_size or settings.CLEAR_RESCORE_BATCH_SIZE
    frames = Frame.objects.filter(examination__patient__project_id=model_version.project_id)
    if examination_ids:
        frames = frames.filter(examination_id__in=examination_ids)
    total = frames.count()
    current = current_rows(model_version, gate)
    pending = frames.exclude(pk__in=current.values("frame_id")).only("id", "file", "crop_box").order_by("id")
    skipped = total - pending.count()
    # Stale rows (made under another gating) are replaced batch by batch; when there are none, as
    # usually, the batches skip that delete.
    replace_stale = (
        Prediction.objects.filter(
            model_version_id=model_version.pk, task_id=model_version.task_id, frame__in=frames
        )
        .exclude(pk__in=current.values("pk"))
        .exists()
    )
    runner = _JobModels(batch_size=size)
    scored = 0
    last_id = 0
    if progress is not None:
        progress(skipped, total, f"{skipped} frames already scored")
    while True:
        batch = list(pending.filter(id__gt=last_id)[:size])
        if not batch:
            break
        last_id = batch[-1].pk
        scored += score_and_store(
            version=model_version, gate=gate, frames=batch, runner=runner, replace_stale=replace_stale
        )
        if progress is not None:
            progress(skipped + scored, total, f"{scored} frames scored")
    summary = f"{scored} frames scored with {model_version.name}, {skipped} already scored"
    return {"frames_scored": scored, "frames_skipped": skipped, "summary": summary}


class _JobModels:
    """The re-score job's models: each version's file loaded on first use, once per job, on
    `select_device()`. One job runs one batch at a time, so no lock is needed."""

    def __init__(self, *, batch_size: int) -> None:
        self.batch_size = batch_size
        self.device: torch.device | None = None
        self.loaded: dict[int, LoadedModel] = {}

    def run(
        self, version: ModelVersion, images: Sequence[Image.Image], crop_boxes: Sequence[CropBox | None]
    ) -> list[FrameOutput]:
        if self.device is None:
            self.device = select_device()
        loaded = self.loaded.get(version.pk)
        if loaded is None:
            loaded = load_model_file(media.cached_local_path(version.file), device=self.device)
            self.loaded[version.pk] = loaded
        return run_model(
            loaded, version.labels, images, crop_boxes, device=self.device, batch_size=self.batch_size
        )


# --- task gates -----------------------------------------------------------------------------------


class TaskGateRejected(Exception):
    """A gate that cannot be set; `field` names the input at fault and the message says why (400)."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@transaction.atomic
def task_gate_set(
    *,
    project: Project,
    task: LabelTask,
    gate_task: LabelTask,
    diagnostic_values: list[str],
    created_by: User | None,
) -> tuple[TaskGate, bool]:
    """Gate `task` by `gate_task` (create, or change the task's gate); returns (gate, created).

    Refused (TaskGateRejected) unless both tasks are the project's and differ, `gate_task` is not
    gated itself and `task` gates no other task (a gate does not chain), and `diagnostic_values` is
    a non-empty list of values of `gate_task`'s choices. The project row is locked first, so two
    concurrent changes cannot build a chain between them. Stored predictions are not touched: rows
    made under another gating stop counting as current and the next re-score (or on-demand request)
    replaces them.
    """
    if task.project_id != project.pk:
        raise TaskGateRejected("The gated task belongs to another project.", field="task")
    if gate_task.project_id != project.pk:
        raise TaskGateRejected("The gate task belongs to another project.", field="gate_task")
    if task.pk == gate_task.pk:
        raise TaskGateRejected("A task cannot gate itself.", field="gate_task")
    Project.objects.select_for_update().filter(pk=project.pk).first()
    upstream = TaskGate.objects.filter(task=gate_task).select_related("gate_task").first()
    if upstream is not None:
        raise TaskGateRejected(
            f"Task {gate_task.key!r} is itself gated by {upstream.gate_task.key!r}; gates do not chain.",
            field="gate_task",
        )
    downstream = list(TaskGate.objects.filter(gate_task=task).values_list("task__key", flat=True))
    if downstream:
        raise TaskGateRejected(
            f"Task {task.key!r} gates {', '.join(repr(key) for key in downstream)}; gates do not chain.",
            field="task",
        )
    values = list(dict.fromkeys(diagnostic_values))
    if not values:
        raise TaskGateRejected(
            "Give at least one value of the gate task that lets a frame through.", field="diagnostic_values"
        )
    choices = set(gate_task.choices.values_list("value", flat=True))
    unknown = [value for value in values if value not in choices]
    if unknown:
        raise TaskGateRejected(
            f"{unknown} are not choices of task {gate_task.key!r} (its choices: {sorted(choices)}).",
            field="diagnostic_values",
        )
    gate, created = TaskGate.objects.update_or_create(
        task=task,
        defaults={"project": project, "gate_task": gate_task, "diagnostic_values": values},
        create_defaults={
            "project": project,
            "gate_task": gate_task,
            "diagnostic_values": values,
            "created_by": created_by,
        },
    )
    return gate, created


def task_gate_delete(*, gate: TaskGate) -> None:
    """Remove a gate: the task is predicted for every frame again (after a re-score; its gated rows
    stop counting as current, see task_gate_set)."""
    gate.delete()
