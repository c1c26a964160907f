"""Single-frame prediction on demand, in the web process: a stored frame (the workspace) or an
uploaded image (the upload-and-classify page, like the ENT study's app).

Why here and not on the `gpu` queue, unlike everything else that runs a model: one frame with its
CAM costs about 35-100 ms on a CPU (efficientnet_b0 at 224 px: 34 ms; see inference/ml/cam.py), the
goal is an answer in under 200 ms, and the `gpu` queue runs one job at a time (concurrency 1), so a
request sent there would wait behind a whole re-score job, minutes or hours. The cost to the web
process is bounded: one frame (plus its gate's) per request, models kept loaded in a small LRU
cache (CLEAR_ONDEMAND_MODEL_CACHE files per process, keyed by the file's sha256), each model used by
one request at a time.

`predict_frame_on_demand` stores what it computes exactly as the re-score job would (the same
`scoring.score_and_store`: content-addressed CAM file first, then the rows with ignore_conflicts),
so a concurrent request or job storing the same frame never duplicates a row. `classify_image`
stores nothing: no file, no row.
"""

from __future__ import annotations

import base64
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from PIL import Image, ImageOps

from annotations.models import LabelTask
from inference.ml.model_files import LoadedModel, load_model_file
from inference.ml.predict import select_device
from inference.ml.preprocessing import CropBox
from inference.models import ModelVersion, Prediction
from inference.scoring import FrameOutput, Gate, current_rows, resolve_gate, run_model, score_and_store
from inference.selectors import active_model_version, with_prediction_details
from records import media
from records.importing.images import ImageRejected, normalise_mode, open_image
from records.models import Frame, Project


class NoActiveVersion(Exception):
    """The task has no active model version to predict with (API 409)."""

    def __init__(self, task: LabelTask) -> None:
        self.message = f"No active model version for task {task.key!r}."
        super().__init__(self.message)


@dataclass(frozen=True)
class _CachedModel:
    loaded: LoadedModel
    device: torch.device
    # The CAM switches the model's requires_grad flags for its call (inference.ml.cam): one
    # request at a time per model.
    lock: threading.Lock


class ModelCache:
    """Loaded model files by sha256, least recently used evicted beyond CLEAR_ONDEMAND_MODEL_CACHE.

    A file is loaded by one thread while others asking for it wait (a lock per sha256), so two
    requests never load the same model twice; loading one model does not block the use of others.
    `loads` counts the files loaded (for tests and logs).
    """

    def __init__(self) -> None:
        self._models: OrderedDict[str, _CachedModel] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}
        self.loads = 0

    def get(self, version: ModelVersion) -> _CachedModel:
        key = version.sha256
        with self._lock:
            cached = self._take(key)
            if cached is not None:
                return cached
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            with self._lock:
                cached = self._take(key)
                if cached is not None:
                    return cached
            _limit_torch_threads()
            device = select_device()
            loaded = load_model_file(media.cached_local_path(version.file), device=device)
            cached = _CachedModel(loaded=loaded, device=device, lock=threading.Lock())
            with self._lock:
                self._models[key] = cached
                self.loads += 1
                # A model evicted while a request still uses it stays alive until that request ends.
                while len(self._models) > max(1, settings.CLEAR_ONDEMAND_MODEL_CACHE):
                    self._models.popitem(last=False)
                self._loading.pop(key, None)
        return cached

    def _take(self, key: str) -> _CachedModel | None:
        cached = self._models.get(key)
        if cached is not None:
            self._models.move_to_end(key)
        return cached

    def cached_keys(self) -> list[str]:
        """The sha256 of the loaded models, least recently used first."""
        with self._lock:
            return list(self._models)

    def clear(self) -> None:
        with self._lock:
            self._models.clear()
            self.loads = 0


model_cache = ModelCache()
_threads_limited = False


def _limit_torch_threads() -> None:
    """Cap torch's intra-op threads in this (web) process, once, before its first model loads.

    A web host runs several worker processes on few cores; one frame's small operations with two
    threads each wait for the thread that is not running. Measured on the 2-core machine while
    other processes ran: efficientnet_b0 with CAM, 2 threads median 546 ms (p95 2.3-3 s), 1 thread
    82-197 ms; quiet, 1 thread 47 ms (bench/README.md). The re-score worker keeps torch's default,
    where batches profit from every core. 0 leaves torch's default."""
    global _threads_limited
    if _threads_limited:
        return
    _threads_limited = True
    threads = settings.CLEAR_ONDEMAND_TORCH_THREADS
    if threads > 0:
        torch.set_num_threads(threads)


class _CachedModels:
    """The ModelRunner of on-demand prediction: models from `model_cache`, one call at a time each."""

    def run(
        self, version: ModelVersion, images: Sequence[Image.Image], crop_boxes: Sequence[CropBox | None]
    ) -> list[FrameOutput]:
        cached = model_cache.get(version)
        with cached.lock:
            return run_model(
                cached.loaded,
                version.labels,
                images,
                crop_boxes,
                device=cached.device,
                batch_size=max(1, len(images)),
            )


def _version_and_gate(task: LabelTask) -> tuple[ModelVersion, Gate | None]:
    version = active_model_version(project_id=task.project_id, task_id=task.pk)
    if version is None:
        raise NoActiveVersion(task)
    return version, resolve_gate(task.pk)


def _current(frame: Frame, version: ModelVersion, gate: Gate | None) -> Prediction | None:
    return with_prediction_details(current_rows(version, gate).filter(frame_id=frame.pk)).first()


def stored_prediction_with(*, frame: Frame, version: ModelVersion, gate: Gate | None) -> Prediction | None:
    """The frame's current prediction by `version` under `gate`, if one is stored."""
    return _current(frame, version, gate)


def stored_frame_prediction(*, frame: Frame, task: LabelTask) -> Prediction | None:
    """The frame's current prediction by the task's active version, if one is stored.
    NoActiveVersion or scoring.GateUnavailable when the task cannot be predicted now."""
    version, gate = _version_and_gate(task)
    return _current(frame, version, gate)


def predict_frame_on_demand(*, frame: Frame, task: LabelTask) -> Prediction:
    """The frame's prediction by the task's active version: the stored one if there is one, else
    computed now with its CAM (gate first when the task is gated: a frame the gate judges not
    diagnostic gets a gated-out row and the model is not run), stored and returned.

    Raises NoActiveVersion, or scoring.GateUnavailable for a gated task whose gate task has no
    active version.
    """
    version, gate = _version_and_gate(task)
    return predict_frame_with(frame=frame, version=version, gate=gate)


def predict_frame_with(*, frame: Frame, version: ModelVersion, gate: Gate | None) -> Prediction:
    """As predict_frame_on_demand, with a given version and gate instead of the task's active ones
    (a reader study shows the versions frozen when it opened)."""
    if not Frame.objects.filter(pk=frame.pk, examination__patient__project_id=version.project_id).exists():
        raise ValueError("the model version belongs to another project than the frame")
    runner = _CachedModels()
    # Twice at most: the first attempt can leave the frame unscored only when a concurrent writer
    # stored a different gate answer meanwhile (score_and_store leaves such a frame out); the
    # second decides on that stored answer.
    for _ in range(2):
        stored = _current(frame, version, gate)
        if stored is not None:
            return stored
        score_and_store(version=version, gate=gate, frames=[frame], runner=runner, replace_stale=True)
    stored = _current(frame, version, gate)
    if stored is None:
        raise RuntimeError(f"frame {frame.pk} could not be scored with {version.name!r}")
    return stored


@dataclass(frozen=True)
class ClassifyGate:
    """The gate's decision for an uploaded image: its prediction and the values that pass."""

    task_key: str
    predicted_value: str
    confidence: float
    model_version: int
    model_version_name: str
    diagnostic_values: list[str]


@dataclass(frozen=True)
class ClassifyResult:
    """An uploaded image classified (nothing stored). Gated out: gate_passed False, no
    probabilities, empty predicted value, no confidence and no CAM."""

    task_key: str
    model_version: int
    model_version_name: str
    predicted_value: str
    confidence: float | None
    probabilities: list[tuple[str, float]]
    cam_png: bytes | None
    gate_passed: bool | None
    gate: ClassifyGate | None
    width: int
    height: int
    elapsed_ms: float

    @property
    def cam_png_base64(self) -> str | None:
        return base64.b64encode(self.cam_png).decode("ascii") if self.cam_png is not None else None


def classify_image(*, project: Project, task: LabelTask, image: Image.Image) -> ClassifyResult:
    """Classify an uploaded image (L or RGB, as the import leaves it) with the task's active version,
    gate first when the task is gated; returns probabilities, the CAM as PNG bytes (render_cam's
    grayscale image, spanning the whole image) and how long it took (gate, model and CAM; not the
    upload's decoding). Nothing is stored.

    Raises NoActiveVersion, scoring.GateUnavailable, or inference.ml's PreprocessingError when the
    image does not suit the model (a colour image for a grayscale model).
    """
    if task.project_id != project.pk:
        raise ValueError("the task belongs to another project")
    started = time.perf_counter()
    version, gate = _version_and_gate(task)
    runner = _CachedModels()
    gate_passed: bool | None = None
    gate_info: ClassifyGate | None = None
    if gate is not None:
        (gate_output,) = runner.run(gate.version, [image], [None])
        gate_passed = gate.passes(gate_output.predicted_value)
        gate_info = ClassifyGate(
            task_key=gate.task_gate.gate_task.key,
            predicted_value=gate_output.predicted_value,
            confidence=gate_output.confidence,
            model_version=gate.version.pk,
            model_version_name=gate.version.name,
            diagnostic_values=list(gate.task_gate.diagnostic_values),
        )
    output = runner.run(version, [image], [None])[0] if gate_passed is not False else None
    return ClassifyResult(
        task_key=task.key,
        model_version=version.pk,
        model_version_name=version.name,
        predicted_value=output.predicted_value if output else "",
        confidence=output.confidence if output else None,
        probabilities=list(zip(version.labels, output.probabilities, strict=True)) if output else [],
        cam_png=output.cam_png if output else None,
        gate_passed=gate_passed,
        gate=gate_info,
        width=image.width,
        height=image.height,
        elapsed_ms=(time.perf_counter() - started) * 1000,
    )


# Uploads to classify: at most this many bytes (or CLEAR_MAX_UPLOAD_BYTES if lower). One image;
# the pixel limit (CLEAR_MAX_IMAGE_PIXELS) bounds what decoding it can cost.
CLASSIFY_MAX_BYTES = 50 * 1024 * 1024


class ImageUploadRejected(Exception):
    """An uploaded image that cannot be classified; the message is for the user (API 400)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def open_uploaded_image(upload: UploadedFile) -> Image.Image:
    """The uploaded image decoded with the import's rules (records.importing.images): allowed
    formats judged by content, the pixel limit checked from the header before decoding, truncated
    files refused; then oriented by its EXIF tag and its mode normalised (grayscale stays L,
    everything else RGB, alpha flattened onto black) as an imported frame would be, so that the
    model sees what it would see after an import. ImageUploadRejected says what is wrong."""
    limit = min(settings.CLEAR_MAX_UPLOAD_BYTES, CLASSIFY_MAX_BYTES)
    size = upload.size or 0
    if size == 0:
        raise ImageUploadRejected("The uploaded file is empty.")
    if size > limit:
        raise ImageUploadRejected(f"The uploaded file has {size:,} bytes; at most {limit:,} are accepted.")
    temporary = getattr(upload, "temporary_file_path", None)
    try:
        if temporary is not None:
            image = open_image(Path(temporary()))
        else:
            # open_image reads a path; a small upload held in memory goes through a private
            # temporary file (removed at once, never below MEDIA_ROOT).
            staging = Path(settings.CLEAR_UPLOAD_ROOT)
            staging.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=staging, prefix="classify-") as handle:
                for chunk in upload.chunks():
                    handle.write(chunk)
                handle.flush()
                image = open_image(Path(handle.name))
    except ImageRejected as exc:
        raise ImageUploadRejected(f"The uploaded file was refused: {exc}") from exc
    try:
        return normalise_mode(ImageOps.exif_transpose(image))
    finally:
        image.close()
