"""Scoring stored frames with a model version, gate first: the code the re-score job
(`services.model_version_score_frames`) and on-demand prediction (`ondemand`) share.

`run_model` is the one place a model version turns images into predictions with CAMs (also used by
`ondemand.classify_image`, which stores nothing). `score_and_store` does one batch of frames:

1. For a gated task, the gate task's active version's predictions for the batch are read (one
   query); frames without one are scored with the gate model (their CAMs written), and the frames
   whose gate value is one of the gate's diagnostic values pass.
2. The version's model runs on the passing frames only (a gated-out frame is never shown to it,
   which is the point of the two-stage pipeline: it saves the diagnosis model's compute).
3. Every CAM file is written before any row; then, in one transaction, the new gate rows are
   inserted (ignore_conflicts), the batch's gate rows are re-read, stale rows of the version are
   replaced, and the version's rows are inserted (ignore_conflicts). A crash leaves whole batches
   only; the unique constraint keeps a concurrent writer (another job, an on-demand request) from
   duplicating anything.

Queries are per batch, never per frame.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from django.db import transaction
from django.db.models import QuerySet
from PIL import Image

from inference.ml.cam import encode_png, predict_frames_with_cam
from inference.ml.model_files import LoadedModel
from inference.ml.preprocessing import CropBox
from inference.models import ModelVersion, Prediction, TaskGate
from inference.selectors import active_model_version, current_predictions
from records import media
from records.models import Frame


class GateUnavailable(Exception):
    """The task is gated but its gate cannot be applied (no active gate version); the message is
    for the user (job error, API 409)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Gate:
    """A task's gate as it applies now: the gate task's active version and the diagnostic values."""

    task_gate: TaskGate
    version: ModelVersion
    diagnostic_values: frozenset[str]

    def passes(self, gate_value: str) -> bool:
        return gate_value in self.diagnostic_values


def resolve_gate(task_id: int) -> Gate | None:
    """The gate of `task_id`, None when the task is not gated; GateUnavailable when its gate task
    has no active model version (the diagnosis must then not be given at all)."""
    task_gate = TaskGate.objects.select_related("task", "gate_task").filter(task_id=task_id).first()
    if task_gate is None:
        return None
    version = active_model_version(project_id=task_gate.project_id, task_id=task_gate.gate_task_id)
    if version is None:
        raise GateUnavailable(
            f"Task {task_gate.task.key!r} is gated by {task_gate.gate_task.key!r}, "
            "which has no active model version."
        )
    return Gate(
        task_gate=task_gate, version=version, diagnostic_values=frozenset(task_gate.diagnostic_values)
    )


def current_rows(version: ModelVersion, gate: Gate | None) -> QuerySet[Prediction]:
    """`version`'s rows that agree with `gate` (see selectors.current_predictions)."""
    return current_predictions(
        version=version,
        gate_version_id=gate.version.pk if gate else None,
        diagnostic_values=gate.diagnostic_values if gate else (),
    )


@dataclass(frozen=True)
class FrameOutput:
    """One image's prediction by one model version, with its CAM as PNG bytes (`render_cam`)."""

    probabilities: list[float]
    predicted_value: str
    confidence: float
    cam_png: bytes


def run_model(
    loaded: LoadedModel,
    labels: Sequence[str],
    images: Sequence[Image.Image],
    crop_boxes: Sequence[CropBox | None],
    *,
    device: torch.device,
    batch_size: int,
) -> list[FrameOutput]:
    """Predict `images` (with their crop boxes) and render their CAMs; `labels` in class order."""
    results = predict_frames_with_cam(
        loaded.model, images, crop_boxes=crop_boxes, batch_size=batch_size, device=device
    )
    outputs = []
    for result in results:
        probabilities = [float(p) for p in result.probabilities]
        outputs.append(
            FrameOutput(
                probabilities=probabilities,
                predicted_value=labels[result.predicted_class],
                confidence=max(probabilities),
                cam_png=encode_png(result.image),
            )
        )
    return outputs


class ModelRunner(Protocol):
    """Runs a model version on images: loaded once per job (re-score) or from the web process's
    cache under the model's lock (on demand)."""

    def run(
        self, version: ModelVersion, images: Sequence[Image.Image], crop_boxes: Sequence[CropBox | None]
    ) -> list[FrameOutput]: ...


def open_frame_images(frames: Sequence[Frame]) -> list[Image.Image]:
    images: list[Image.Image] = []
    for frame in frames:
        with media.open_file(frame.file) as handle, Image.open(handle) as image:
            image.load()
            images.append(image)
    return images


def _stored_row(frame: Frame, version: ModelVersion, output: FrameOutput) -> Prediction:
    """A prediction row for `output`, its CAM file written (content-addressed, atomically) first."""
    cam_file = media.content_path("cams", hashlib.sha256(output.cam_png).hexdigest(), ".png")
    media.save_bytes(cam_file, output.cam_png)
    return Prediction(
        frame_id=frame.pk,
        model_version_id=version.pk,
        task_id=version.task_id,
        probabilities=output.probabilities,
        predicted_value=output.predicted_value,
        confidence=output.confidence,
        cam_file=cam_file,
    )


def score_and_store(
    *,
    version: ModelVersion,
    gate: Gate | None,
    frames: Sequence[Frame],
    runner: ModelRunner,
    replace_stale: bool,
) -> int:
    """Score one batch of frames with `version` (gate first when `gate` is given) and store the rows;
    returns how many rows of `version` this call inserted or found inserted by a concurrent writer.

    `frames` are frames without a current row of `version` (see selectors.current_predictions);
    with `replace_stale` their stale rows of `version` are deleted in the same transaction as the
    new rows are inserted. See the module docstring for the order of things.
    """
    if not frames:
        return 0
    images = open_frame_images(frames)
    boxes = [frame.crop_box for frame in frames]
    frame_ids = [frame.pk for frame in frames]

    new_gate_rows: list[Prediction] = []
    stale_gate_ids: list[int] = []
    passing = list(range(len(frames)))
    if gate is not None:
        gate_values: dict[int, str] = {}
        for row in _gate_rows(gate, frame_ids):
            # A gate-task row with a gate decision of its own was made while the gate task was itself
            # gated (before the gate was moved); it is not a plain prediction and is replaced.
            if row.gate_passed is None:
                gate_values[row.frame_id] = row.predicted_value
            else:
                stale_gate_ids.append(row.pk)
        missing = [index for index, frame in enumerate(frames) if frame.pk not in gate_values]
        if missing:
            outputs = runner.run(gate.version, [images[i] for i in missing], [boxes[i] for i in missing])
            for index, output in zip(missing, outputs, strict=True):
                new_gate_rows.append(_stored_row(frames[index], gate.version, output))
                gate_values[frames[index].pk] = output.predicted_value
        passing = [index for index, frame in enumerate(frames) if gate.passes(gate_values[frame.pk])]

    outputs = (
        runner.run(version, [images[i] for i in passing], [boxes[i] for i in passing]) if passing else []
    )
    scored = {
        index: _stored_row(frames[index], version, output)
        for index, output in zip(passing, outputs, strict=True)
    }

    with transaction.atomic():
        if stale_gate_ids:
            Prediction.objects.filter(pk__in=stale_gate_ids).delete()
        if new_gate_rows:
            Prediction.objects.bulk_create(new_gate_rows, ignore_conflicts=True)
        rows: list[Prediction] = []
        if gate is None:
            rows = list(scored.values())
        else:
            # Re-read: a concurrent writer may have stored the gate row first (ignore_conflicts
            # kept theirs), and the row's id is needed for gate_prediction.
            stored = {row.frame_id: row for row in _gate_rows(gate, frame_ids)}
            for index, frame in enumerate(frames):
                gate_row = stored.get(frame.pk)
                if gate_row is None or gate_row.gate_passed is not None:
                    continue
                passed = gate.passes(gate_row.predicted_value)
                if passed != (index in scored):
                    # The stored gate answer is not the one this call decided on (a concurrent
                    # writer's, numerically different): the frame is left for the next run.
                    continue
                row = scored[index] if passed else _gated_out_row(frame, version)
                row.gate_prediction_id = gate_row.pk
                row.gate_passed = passed
                rows.append(row)
        if replace_stale:
            # Only stale rows: a current one stored meanwhile by a concurrent writer is kept (the
            # insert below then leaves it alone), so no caller is handed a row that is gone.
            current = current_rows(version, gate).filter(frame_id__in=frame_ids)
            Prediction.objects.filter(
                model_version_id=version.pk, task_id=version.task_id, frame_id__in=frame_ids
            ).exclude(pk__in=current.values("pk")).delete()
        Prediction.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def _gate_rows(gate: Gate, frame_ids: list[int]) -> list[Prediction]:
    return list(
        Prediction.objects.filter(
            model_version_id=gate.version.pk, task_id=gate.version.task_id, frame_id__in=frame_ids
        ).only("id", "frame_id", "predicted_value", "gate_passed")
    )


def _gated_out_row(frame: Frame, version: ModelVersion) -> Prediction:
    """The row of a frame the gate judged not diagnostic: the model did not run for it."""
    return Prediction(
        frame_id=frame.pk,
        model_version_id=version.pk,
        task_id=version.task_id,
        probabilities=[],
        predicted_value="",
        confidence=None,
        cam_file="",
    )
