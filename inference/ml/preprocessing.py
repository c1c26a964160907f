"""Frames (PIL images) to model inputs, as the model's DataConfig says, with the geometry kept.

Each frame goes through one resampling step: the crop box is cut out (so that no pixel outside it
leaks in through the filter), and the part of it the model will see (its "view", in frame pixel
coordinates) is resized to the input size by PIL in a single `Image.resize(size, filter, box=view)`.
The view is the frame's crop box (or the whole frame), then timm's eval crop applied to that region:

- "center": scale the region so that it covers the input at 1/crop_pct of the input size (aspect
  ratio kept), and take the centre; with crop_pct 1 the shorter side fills the input exactly;
- "squash": scale each side on its own to 1/crop_pct of the input size, take the centre;
- "border": fit the whole region inside 1/crop_pct of the input size (aspect kept), pad around it
  with the mean colour.

This is timm's eval transform (Resize + CenterCrop) up to sub-pixel rounding, done in one step so
that the frame-to-input mapping is exact and the CAM can be mapped back (see `cam`).

Grayscale is explicit: a 1-channel model takes `L` frames (an `RGB` frame whose three channels are
identical is the same picture and is accepted as its first channel); a 3-channel model takes `RGB`
frames, and `L` frames are replicated into three equal channels. Anything else (a colour frame for a
grey model, palette, alpha, 16-bit) is refused instead of converted behind the caller's back.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
from PIL import Image

from inference.ml.data_config import DataConfig
from inference.ml.errors import PreprocessingError

CropBox = Sequence[int]
"""[left, top, right, bottom] in frame pixels, right and bottom exclusive (as Frame.crop_box)."""

Box = tuple[float, float, float, float]

_RESAMPLING = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}
# Views this close to the region's edge (floating-point noise) are treated as inside it.
_EPSILON = 1e-6

T = TypeVar("T")


@dataclass(frozen=True)
class FrameGeometry:
    """Where a model input came from in its frame.

    `frame_size` is the stored frame's (width, height); `region` the crop box applied (the whole
    frame when there was none or the policy ignores crop boxes); `view` the frame rectangle the
    model input shows, in continuous frame coordinates (pixel x spans [x, x + 1)). The view lies
    inside the region except in "border" mode or with crop_pct > 1, where the input is padded;
    `input_size` is the input's (height, width).
    """

    frame_size: tuple[int, int]
    region: tuple[int, int, int, int]
    view: Box
    input_size: tuple[int, int]


@dataclass(frozen=True)
class PreparedBatch:
    """A batch of normalised inputs (N, C, H, W) and, per frame, where it came from."""

    tensor: torch.Tensor
    geometries: tuple[FrameGeometry, ...]

    def __len__(self) -> int:
        return len(self.geometries)


def check_crop_box(crop_box: CropBox, frame_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The crop box as a tuple, or PreprocessingError when it is not a box inside the frame."""
    width, height = frame_size
    try:
        left, top, right, bottom = (int(v) for v in crop_box)
    except (TypeError, ValueError) as exc:
        raise PreprocessingError(f"a crop box is [left, top, right, bottom], not {crop_box!r}") from exc
    if list(crop_box) != [left, top, right, bottom]:
        raise PreprocessingError(f"crop box {list(crop_box)!r} must hold whole pixels")
    if not (0 <= left < right <= width and 0 <= top < bottom <= height):
        raise PreprocessingError(
            f"crop box {[left, top, right, bottom]} is not a non-empty box inside the {width}x{height} frame"
        )
    return left, top, right, bottom


def frame_geometry(
    frame_size: tuple[int, int], config: DataConfig, crop_box: CropBox | None = None
) -> FrameGeometry:
    """Where the model input of a frame of `frame_size` comes from (see the module docstring)."""
    width, height = frame_size
    if crop_box is None or config.crop_policy == "full_frame":
        region = (0, 0, width, height)
    else:
        region = check_crop_box(crop_box, frame_size)
    return FrameGeometry(
        frame_size=(width, height),
        region=region,
        view=view_box(region, config),
        input_size=(config.height, config.width),
    )


def view_box(region: tuple[int, int, int, int], config: DataConfig) -> Box:
    """The rectangle of the frame, centred on `region`, that timm's eval crop would show."""
    left, top, right, bottom = region
    region_w, region_h = right - left, bottom - top
    target_h, target_w = config.height, config.width
    # timm: scale_size = floor(img_size / crop_pct), per edge.
    scale_h = math.floor(target_h / config.crop_pct)
    scale_w = math.floor(target_w / config.crop_pct)
    if config.crop_mode == "squash":
        view_w = region_w * target_w / scale_w
        view_h = region_h * target_h / scale_h
    else:
        ratios = (scale_h / region_h, scale_w / region_w)
        factor = max(ratios) if config.crop_mode == "center" else min(ratios)
        view_w = target_w / factor
        view_h = target_h / factor
    centre_x = (left + right) / 2
    centre_y = (top + bottom) / 2
    return (centre_x - view_w / 2, centre_y - view_h / 2, centre_x + view_w / 2, centre_y + view_h / 2)


def model_image(image: Image.Image, in_chans: int) -> Image.Image:
    """The frame in the mode the model takes: `L` for 1 channel, `L` or `RGB` for 3 (see module)."""
    if in_chans not in (1, 3):
        raise PreprocessingError(f"frames can feed 1- or 3-channel models, not {in_chans}-channel ones")
    if image.mode == "L":
        return image
    if image.mode == "RGB":
        if in_chans == 3:
            return image
        pixels = np.asarray(image)
        if np.array_equal(pixels[..., 0], pixels[..., 1]) and np.array_equal(pixels[..., 0], pixels[..., 2]):
            return image.getchannel(0)
        raise PreprocessingError(
            "the model takes grayscale frames (1 channel) but this frame is in colour (RGB with "
            "differing channels); it is not converted silently: convert it to L first if that is meant"
        )
    raise PreprocessingError(
        f"frames must be 8-bit grayscale (L) or RGB; got mode {image.mode!r}, which is not converted "
        "silently: convert it explicitly first"
    )


def prepare_frame(
    image: Image.Image, config: DataConfig, crop_box: CropBox | None = None
) -> tuple[torch.Tensor, FrameGeometry]:
    """One frame as a normalised (C, H, W) float32 tensor, and its geometry."""
    source = model_image(image, config.in_chans)
    geometry = frame_geometry(source.size, config, crop_box)
    pixels = np.asarray(_render(source, geometry, config), dtype=np.float32) / 255.0
    tensor = torch.from_numpy(pixels)
    tensor = tensor.permute(2, 0, 1) if tensor.ndim == 3 else tensor.unsqueeze(0)
    if tensor.shape[0] != config.in_chans:
        tensor = tensor.expand(config.in_chans, -1, -1)  # L for a 3-channel model: three equal channels
    mean = torch.tensor(config.mean, dtype=torch.float32).view(-1, 1, 1)
    std = torch.tensor(config.std, dtype=torch.float32).view(-1, 1, 1)
    return ((tensor - mean) / std).contiguous(), geometry


def prepare_batch(
    images: Sequence[Image.Image], config: DataConfig, crop_boxes: Sequence[CropBox | None] | None = None
) -> PreparedBatch:
    """Frames (with their crop boxes, None where a frame has none) as one (N, C, H, W) batch."""
    boxes: Sequence[CropBox | None] = [None] * len(images) if crop_boxes is None else crop_boxes
    if len(boxes) != len(images):
        raise PreprocessingError(f"{len(images)} frames but {len(boxes)} crop boxes")
    if not images:
        raise PreprocessingError("an empty batch has no frames to prepare")
    prepared = [prepare_frame(image, config, box) for image, box in zip(images, boxes, strict=True)]
    return PreparedBatch(
        tensor=torch.stack([tensor for tensor, _ in prepared]),
        geometries=tuple(geometry for _, geometry in prepared),
    )


def iter_batches(items: Sequence[T], batch_size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most `batch_size` items."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    for start in range(0, len(items), batch_size):
        yield items[start : start + batch_size]


def _render(image: Image.Image, geometry: FrameGeometry, config: DataConfig) -> Image.Image:
    """The view of `image` resampled to the input size, from the region's pixels only; parts of the
    view outside the region are filled (the mean colour in "border" mode, as timm pads; black
    otherwise, as CenterCrop pads)."""
    size = (config.width, config.height)
    resample = _RESAMPLING[config.interpolation]
    # Cut the region out first, so that no pixel outside the crop box (the black border, overlays)
    # leaks into the edge of the input through the resampling filter; coordinates are then relative.
    left, top, right, bottom = geometry.region
    if (left, top, right, bottom) != (0, 0, *image.size):
        image = image.crop((left, top, right, bottom))
    x0, y0, x1, y1 = (
        geometry.view[0] - left,
        geometry.view[1] - top,
        geometry.view[2] - left,
        geometry.view[3] - top,
    )
    left, top, right, bottom = 0, 0, right - left, bottom - top
    if x0 >= left - _EPSILON and y0 >= top - _EPSILON and x1 <= right + _EPSILON and y1 <= bottom + _EPSILON:
        box = (max(x0, left), max(y0, top), min(x1, right), min(y1, bottom))
        return image.resize(size, resample, box=box)

    fill: int | tuple[int, ...] = 0 if image.mode == "L" else (0, 0, 0)
    if config.crop_mode == "border":
        means = config.mean
        fill = (
            round(255 * sum(means) / len(means))
            if image.mode == "L"
            else tuple(round(255 * v) for v in means)
        )
    canvas = Image.new(image.mode, size, fill)
    inside = (max(x0, left), max(y0, top), min(x1, right), min(y1, bottom))
    scale_x = config.width / (x1 - x0)
    scale_y = config.height / (y1 - y0)
    px0, px1 = round((inside[0] - x0) * scale_x), round((inside[2] - x0) * scale_x)
    py0, py1 = round((inside[1] - y0) * scale_y), round((inside[3] - y0) * scale_y)
    if px1 > px0 and py1 > py0:
        canvas.paste(image.resize((px1 - px0, py1 - py0), resample, box=inside), (px0, py0))
    return canvas
