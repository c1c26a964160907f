"""Self-describing model files: weights in safetensors, the description in its header.

The safetensors header's `__metadata__` (a map of strings; structured values are JSON) holds:

    format               "clear-model"
    format_version       "1"
    architecture         registry or timm name, e.g. "efficientnet_b0", "cnn_lstm"
    num_classes          e.g. "2"
    in_chans             "1" or "3"
    tasks                JSON {task key: [labels in output order]}, e.g. {"quality": ["good", "bad"]};
                         format 1 serves exactly one task, whose label count is num_classes
    input_size           JSON [channels, height, width]
    mean, std            JSON lists, one value per input channel
    interpolation        "bilinear", "bicubic", ...
    crop_pct             JSON number (timm's eval crop)
    crop_mode            "center" | "squash" | "border"
    crop_policy          "crop_box" (the frame's field-of-view box is cut out first) | "full_frame"
    training_config      JSON object (free form: what the training run used)
    dataset_snapshot_id  the dataset snapshot trained on, "" when none
    created_at           ISO 8601 with time zone

Nothing but tensors and strings is stored: no pickle. Files are written to a temporary file beside
the target and renamed into place, so a reader never sees half a file; their sha256 is returned.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from safetensors import SafetensorError

from inference.ml.architectures import ClassifierModel, custom_architecture
from inference.ml.data_config import DataConfig
from inference.ml.errors import ArchitectureError, MlError, ModelFileError
from inference.ml.factory import create_model, is_known_architecture
from inference.ml.fileformats import (
    FormatError,
    SafetensorsHeader,
    parse_safetensors_header,
    safetensors_dtype,
    sniff,
)
from inference.ml.predict import select_device

FORMAT = "clear-model"
FORMAT_VERSION = 1
_SHOWN = 5
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ModelMetadata:
    """What a model file says about its weights (see the module docstring for the stored keys)."""

    architecture: str
    num_classes: int
    in_chans: int
    tasks: dict[str, list[str]]
    data_config: DataConfig
    training_config: dict[str, Any] = field(default_factory=dict)
    dataset_snapshot_id: str | None = None
    created_at: str = ""
    format_version: int = FORMAT_VERSION

    @classmethod
    def for_model(
        cls,
        model: ClassifierModel,
        *,
        tasks: Mapping[str, list[str]],
        training_config: Mapping[str, Any] | None = None,
        dataset_snapshot_id: str | None = None,
    ) -> ModelMetadata:
        """Metadata for `model` as built (architecture, classes, channels, data config), made now."""
        return cls(
            architecture=model.architecture,
            num_classes=model.num_classes,
            in_chans=model.in_chans,
            tasks={key: list(labels) for key, labels in tasks.items()},
            data_config=model.data_config,
            training_config=dict(training_config or {}),
            dataset_snapshot_id=dataset_snapshot_id,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )

    @property
    def task(self) -> str:
        """The task the model serves (format 1: exactly one)."""
        return next(iter(self.tasks))

    @property
    def labels(self) -> list[str]:
        """The labels of the model's outputs, in order."""
        return self.tasks[self.task]

    def to_header(self) -> dict[str, str]:
        config = self.data_config
        return {
            "format": FORMAT,
            "format_version": str(self.format_version),
            "architecture": self.architecture,
            "num_classes": str(self.num_classes),
            "in_chans": str(self.in_chans),
            "tasks": json.dumps(self.tasks),
            "input_size": json.dumps(list(config.input_size)),
            "mean": json.dumps(list(config.mean)),
            "std": json.dumps(list(config.std)),
            "interpolation": config.interpolation,
            "crop_pct": json.dumps(config.crop_pct),
            "crop_mode": config.crop_mode,
            "crop_policy": config.crop_policy,
            "training_config": json.dumps(self.training_config, sort_keys=True),
            "dataset_snapshot_id": self.dataset_snapshot_id or "",
            "created_at": self.created_at,
        }

    @classmethod
    def from_header(cls, header: Mapping[str, str] | None) -> ModelMetadata:
        """Parse and check the stored metadata; ModelFileError (code "metadata") names the problem."""
        if not header or header.get("format") != FORMAT:
            raise ModelFileError(
                "it has no CLEAR model metadata (its safetensors header lacks format=clear-model)",
                code="metadata",
            )
        version = _field(header, "format_version", int)
        if version != FORMAT_VERSION:
            raise ModelFileError(
                f"its format version {version} is not supported (this CLEAR reads version {FORMAT_VERSION})",
                code="metadata",
            )
        tasks = _field(header, "tasks", json.loads)
        training_config = _field(header, "training_config", json.loads)
        try:
            config = DataConfig.from_dict(
                {
                    "input_size": _field(header, "input_size", json.loads),
                    "mean": _field(header, "mean", json.loads),
                    "std": _field(header, "std", json.loads),
                    "interpolation": _field(header, "interpolation", str),
                    "crop_pct": _field(header, "crop_pct", float),
                    "crop_mode": _field(header, "crop_mode", str),
                    "crop_policy": _field(header, "crop_policy", str),
                }
            )
        except MlError as exc:
            raise ModelFileError(f"its metadata has an {exc}", code="metadata") from exc
        metadata = cls(
            architecture=_field(header, "architecture", str),
            num_classes=_field(header, "num_classes", int),
            in_chans=_field(header, "in_chans", int),
            tasks=tasks,
            data_config=config,
            training_config=training_config,
            dataset_snapshot_id=header.get("dataset_snapshot_id") or None,
            created_at=_field(header, "created_at", str),
            format_version=version,
        )
        metadata.check()
        return metadata

    def check(self) -> None:
        """ModelFileError (code "metadata") unless the description is complete and consistent."""
        problems = []
        if self.num_classes < 2:
            problems.append(f"num_classes is {self.num_classes}; a classifier needs at least 2")
        if self.in_chans not in (1, 3):
            problems.append(f"in_chans is {self.in_chans}; CLEAR feeds 1- or 3-channel models")
        if self.data_config.in_chans != self.in_chans:
            problems.append(
                f"input_size has {self.data_config.in_chans} channels but in_chans is {self.in_chans}"
            )
        if not isinstance(self.tasks, dict) or len(self.tasks) != 1:
            problems.append("tasks must map exactly one task key to its labels (format 1 serves one task)")
        else:
            for key, labels in self.tasks.items():
                if not (isinstance(key, str) and key):
                    problems.append("the task key must be a non-empty string")
                if not (isinstance(labels, list) and all(isinstance(v, str) and v for v in labels)):
                    problems.append(f"the labels of task {key!r} must be a list of non-empty strings")
                elif len(set(labels)) != len(labels):
                    problems.append(f"the labels of task {key!r} repeat: {labels}")
                elif len(labels) != self.num_classes:
                    problems.append(
                        f"task {key!r} has {len(labels)} labels but the model {self.num_classes} outputs"
                    )
        if not isinstance(self.training_config, dict):
            problems.append("training_config must be a JSON object")
        try:
            stamp = datetime.fromisoformat(self.created_at)
        except ValueError:
            problems.append(f"created_at {self.created_at!r} is not an ISO 8601 date and time")
        else:
            if stamp.tzinfo is None:
                problems.append(f"created_at {self.created_at!r} has no time zone")
        if problems:
            raise ModelFileError("its metadata is invalid: " + "; ".join(problems), code="metadata")


def _field(header: Mapping[str, str], key: str, parse: Any) -> Any:
    if key not in header:
        raise ModelFileError(f"its metadata lacks {key!r}", code="metadata")
    try:
        return parse(header[key])
    except (TypeError, ValueError, RecursionError) as exc:  # RecursionError: deeply nested JSON
        raise ModelFileError(
            f"its metadata {key!r} is invalid ({header[key]!r}): {exc}", code="metadata"
        ) from exc


@dataclass(frozen=True)
class ModelFileInfo:
    """A checked model file: its description, its sha256 (hex) and its size in bytes."""

    path: Path
    metadata: ModelMetadata
    sha256: str
    size: int


@dataclass(frozen=True)
class LoadedModel:
    """A model file loaded: the model (eval mode, on its device) and the file's description."""

    model: ClassifierModel
    metadata: ModelMetadata
    sha256: str


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def save_model_file(path: str | Path, model: ClassifierModel, metadata: ModelMetadata) -> ModelFileInfo:
    """Write `model`'s weights and `metadata` to `path` atomically; return the file's description."""
    path = Path(path)
    metadata.check()
    mismatches = [
        f"{name} {ours!r} in the metadata but {theirs!r} in the model"
        for name, ours, theirs in (
            ("architecture", metadata.architecture, model.architecture),
            ("num_classes", metadata.num_classes, model.num_classes),
            ("in_chans", metadata.in_chans, model.in_chans),
        )
        if ours != theirs
    ]
    if model.input_size_in_weights and metadata.data_config.input_size != model.data_config.input_size:
        mismatches.append(
            f"input_size {list(metadata.data_config.input_size)} in the metadata but the "
            f"{model.architecture} model was built for {list(model.data_config.input_size)}"
        )
    if mismatches:
        raise ModelFileError(
            "the metadata does not describe the model: " + "; ".join(mismatches), code="model"
        )
    tensors = {
        name: tensor.detach().to("cpu").contiguous() for name, tensor in model.module.state_dict().items()
    }
    data = safetensors.torch.save(tensors, metadata=metadata.to_header())
    digest = hashlib.sha256(data).hexdigest()
    _write_atomically(path, data)
    return ModelFileInfo(path=path, metadata=metadata, sha256=digest, size=len(data))


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    # The rename itself survives a crash only once the directory entry is on disk.
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def validate_model_file(path: str | Path) -> ModelFileInfo:
    """Check a model file without loading its weights; ModelFileError with a human message if not.

    Checks, in order: the file exists; it is safetensors (a pickle .pth is refused as such); its
    header is intact; its metadata is complete and consistent; the architecture is known; its
    tensors are exactly the ones that architecture has (missing and unexpected names), with the
    shapes and dtypes it has.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist", code="missing")
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(9)
        if sniff(head, size) == "safetensors":
            head += handle.read(int.from_bytes(head[:8], "little") - 1)
    header = _parse(path, head, size)
    metadata = ModelMetadata.from_header(header.metadata)
    _check_tensors(path, header, metadata, _expected_tensors(metadata))
    return ModelFileInfo(path=path, metadata=metadata, sha256=file_sha256(path), size=size)


def load_model_file(path: str | Path, *, device: torch.device | str | None = None) -> LoadedModel:
    """Check and load a model file; the model comes back in eval mode on `device` (default: CUDA
    when present). The bytes are read once: what is hashed is what is loaded."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist", code="missing")
    data = path.read_bytes()
    header = _parse(path, data, len(data))
    metadata = ModelMetadata.from_header(header.metadata)
    model = _build(metadata)
    expected = {
        name: (tuple(t.shape), safetensors_dtype(t.dtype)) for name, t in model.module.state_dict().items()
    }
    _check_tensors(path, header, metadata, expected)
    try:
        tensors = safetensors.torch.load(data)
    except SafetensorError as exc:
        raise ModelFileError(f"{path.name} is damaged: {exc}", code="damaged") from exc
    model.module.load_state_dict(tensors, strict=True)
    model.module.to(select_device(device)).eval()
    return LoadedModel(model=model, metadata=metadata, sha256=hashlib.sha256(data).hexdigest())


def _parse(path: Path, data: bytes, size: int) -> SafetensorsHeader:
    try:
        return parse_safetensors_header(data, size)
    except FormatError as exc:
        if exc.kind == "pickle":
            message = (
                f"{path.name} is a pickle file (torch.save / .pth), and pickle is refused: it can run "
                "arbitrary code when loaded. CLEAR model files are safetensors; import legacy .pth "
                "weights with load_pretrained (weights_only) and save them with save_model_file"
            )
        elif exc.kind == "not_safetensors":
            message = f"{path.name} is not a safetensors file: {exc}"
        else:
            message = f"{path.name} is a damaged safetensors file: {exc}"
        raise ModelFileError(message, code=exc.kind) from exc


def _build(metadata: ModelMetadata, *, device: torch.device | None = None) -> ClassifierModel:
    if not is_known_architecture(metadata.architecture):
        raise ModelFileError(
            f"its architecture {metadata.architecture!r} is unknown here (neither a registered custom "
            "architecture nor a timm model)",
            code="architecture",
        )
    spec = custom_architecture(metadata.architecture)
    size = metadata.data_config.input_size[1:] if spec is not None and spec.input_size_in_weights else None
    try:
        with torch.device(device or "cpu"):
            model = create_model(
                metadata.architecture,
                num_classes=metadata.num_classes,
                in_chans=metadata.in_chans,
                input_size=size,
            )
    except (ArchitectureError, ValueError, RuntimeError) as exc:
        raise ModelFileError(
            f"its architecture cannot be built as described: {exc}", code="architecture"
        ) from exc
    model.data_config = metadata.data_config
    return model


def _expected_tensors(metadata: ModelMetadata) -> dict[str, tuple[tuple[int, ...], str]]:
    """Names, shapes and dtypes of the architecture's tensors; built on the meta device (no memory)."""
    model = _build(metadata, device=torch.device("meta"))
    return {
        name: (tuple(t.shape), safetensors_dtype(t.dtype)) for name, t in model.module.state_dict().items()
    }


def _check_tensors(
    path: Path,
    header: SafetensorsHeader,
    metadata: ModelMetadata,
    expected: Mapping[str, tuple[tuple[int, ...], str]],
) -> None:
    found = header.tensors
    described = (
        f"{metadata.architecture} (num_classes={metadata.num_classes}, in_chans={metadata.in_chans}, "
        f"input {list(metadata.data_config.input_size)})"
    )
    missing = [name for name in expected if name not in found]
    unexpected = [name for name in found if name not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing ({_few(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({_few(unexpected)})")
        raise ModelFileError(
            f"{path.name}: its tensors are not those of {described}: {' and '.join(parts)}", code="keys"
        )
    shapes = [
        f"{name} is {list(found[name].shape)} in the file but {list(shape)} in the model"
        for name, (shape, _) in expected.items()
        if found[name].shape != shape
    ]
    if shapes:
        raise ModelFileError(
            f"{path.name}: {len(shapes)} tensor shapes do not fit {described}: {_few(shapes)}", code="shapes"
        )
    dtypes = [
        f"{name} is {found[name].dtype} in the file but {dtype} in the model"
        for name, (_, dtype) in expected.items()
        if found[name].dtype != dtype
    ]
    if dtypes:
        raise ModelFileError(
            f"{path.name}: {len(dtypes)} tensors have the wrong dtype: {_few(dtypes)}", code="dtype"
        )


def _few(items: list[str]) -> str:
    shown = ", ".join(items[:_SHOWN])
    return shown + (f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")
