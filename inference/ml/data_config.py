"""How a model wants its input: size, resampling, normalisation, crop. Derived from the model, stored
with its weights (see model_files), applied by preprocessing."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from inference.ml.errors import PreprocessingError

# PIL resampling filters by timm's names ("random" is a training-time choice and never stored).
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")
# timm's eval crop modes: "center" keeps the aspect ratio and crops the centre, "squash" scales each
# edge on its own, "border" fits the whole region inside the input and pads.
CROP_MODES = ("center", "squash", "border")
# "crop_box": the frame's recorded field-of-view box ([left, top, right, bottom]) is cut out before
# resizing (frames without one are used whole); "full_frame": crop boxes are ignored.
CROP_POLICIES = ("crop_box", "full_frame")


@dataclass(frozen=True)
class DataConfig:
    """The model's input contract. `input_size` is (channels, height, width) as in timm."""

    input_size: tuple[int, int, int]
    interpolation: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_pct: float = 1.0
    crop_mode: str = "center"
    crop_policy: str = "crop_box"

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise PreprocessingError("invalid data config: " + "; ".join(problems))

    @property
    def in_chans(self) -> int:
        return self.input_size[0]

    @property
    def height(self) -> int:
        return self.input_size[1]

    @property
    def width(self) -> int:
        return self.input_size[2]

    def with_input_size(self, size: int | Sequence[int]) -> DataConfig:
        """The same config at another (height, width); an int means a square input."""
        height, width = _size_pair(size)
        return replace(self, input_size=(self.in_chans, height, width))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["input_size"] = list(self.input_size)
        data["mean"] = list(self.mean)
        data["std"] = list(self.std)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DataConfig:
        try:
            return cls(
                input_size=_int_triple(data["input_size"]),
                interpolation=str(data["interpolation"]),
                mean=tuple(float(v) for v in data["mean"]),
                std=tuple(float(v) for v in data["std"]),
                crop_pct=float(data.get("crop_pct", 1.0)),
                crop_mode=str(data.get("crop_mode", "center")),
                crop_policy=str(data.get("crop_policy", "crop_box")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PreprocessingError(f"invalid data config: {exc!r}") from exc


def channel_stats(values: Sequence[float], in_chans: int) -> tuple[float, ...]:
    """Per-channel mean or std for `in_chans` channels.

    A config made for another channel count (timm's RGB ImageNet statistics for a 1-channel model)
    is averaged and repeated: the same thing timm does to the stem weights when it adapts an RGB
    network to one channel (it sums them), so a grey frame is normalised as its RGB replica would be
    on average.
    """
    if len(values) == in_chans:
        return tuple(float(v) for v in values)
    average = sum(values) / len(values)
    return (float(average),) * in_chans


def _size_pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    if len(size) == 3:
        size = size[1:]
    if len(size) != 2:
        raise PreprocessingError(f"an input size is an int or (height, width), not {tuple(size)!r}")
    return int(size[0]), int(size[1])


def _int_triple(value: Any) -> tuple[int, int, int]:
    items = tuple(value)
    if len(items) != 3 or not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        raise ValueError(f"input_size must be three integers (channels, height, width), not {value!r}")
    return items[0], items[1], items[2]


def _problems(config: DataConfig) -> list[str]:
    problems = []
    channels, height, width = config.input_size
    if channels < 1 or height < 1 or width < 1:
        problems.append(f"input_size {config.input_size} must be positive")
    if config.interpolation not in INTERPOLATIONS:
        problems.append(f"interpolation {config.interpolation!r} is not one of {', '.join(INTERPOLATIONS)}")
    if len(config.mean) != channels or len(config.std) != channels:
        problems.append(f"mean and std need {channels} values each (one per input channel)")
    if any(not math.isfinite(v) for v in config.mean):
        problems.append("mean values must be finite")
    if any(not (math.isfinite(v) and v > 0) for v in config.std):
        problems.append("std values must be positive")
    if not (math.isfinite(config.crop_pct) and 0.1 <= config.crop_pct <= 2.0):
        problems.append(f"crop_pct {config.crop_pct} must lie in [0.1, 2]")
    if config.crop_mode not in CROP_MODES:
        problems.append(f"crop_mode {config.crop_mode!r} is not one of {', '.join(CROP_MODES)}")
    if config.crop_policy not in CROP_POLICIES:
        problems.append(f"crop_policy {config.crop_policy!r} is not one of {', '.join(CROP_POLICIES)}")
    return problems
