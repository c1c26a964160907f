"""Batched class activation maps (pytorch-grad-cam) and their rendering aligned to the frame.

One call (`predict_with_cam`) gives each frame of a batch its softmax probabilities and its CAM from
a single forward pass: the probabilities are read from the logits of the forward the CAM method runs
anyway. While it runs, the model's parameters are frozen and the first target layer's output is made
the start of the autograd graph, so the backward pass only goes through the layers after the target
layer (for a CNN: pooling and the classifier) instead of through the whole network; the CAM is the
same (tested against the library's plain use).

The CAM needs gradients, so this path runs with autograd enabled (from the target layer on only);
plain prediction (`predict`) runs under `torch.inference_mode()`. Not thread-safe on a shared model
(requires_grad flags are switched for the call): one CAM call per model at a time, as on a GPU worker.

The CAM alignment contract (what the browser overlay relies on) is in `render_cam`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from io import BytesIO
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image
from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, XGradCAM
from pytorch_grad_cam.base_cam import BaseCAM
from torch import nn

from inference.ml.architectures import ClassifierModel
from inference.ml.errors import MlError
from inference.ml.predict import prepare_for_inference, to_device
from inference.ml.preprocessing import CropBox, FrameGeometry, PreparedBatch, iter_batches, prepare_batch

CAM_METHODS: dict[str, type[BaseCAM]] = {
    "gradcam": GradCAM,
    "gradcam++": GradCAMPlusPlus,
    "xgradcam": XGradCAM,
    "hirescam": HiResCAM,
    "layercam": LayerCAM,
    "eigencam": EigenCAM,
}
DEFAULT_MAX_SIDE = 224


@dataclass(frozen=True)
class FrameCam:
    """One frame's prediction and CAM.

    `cam` is float32 (input height, input width) in [0, 1], on the model input's pixel grid, scaled
    per frame by pytorch-grad-cam (its minimum 0, its maximum 1 unless it is zero everywhere).
    `target_class` is the class it explains. `geometry` maps it back to the frame (`render_cam`).
    """

    probabilities: NDArray[np.float32]
    predicted_class: int
    target_class: int
    cam: NDArray[np.float32]
    geometry: FrameGeometry


@dataclass(frozen=True)
class FrameCamImage:
    """A frame's prediction and its CAM image rendered to the frame's geometry (`render_cam`)."""

    probabilities: NDArray[np.float32]
    predicted_class: int
    target_class: int
    image: NDArray[np.uint8]


class _ClassTarget:
    """The logit of a class, or of the frame's own top class when `category` is None; `chosen` is
    the class it explained (the top logit, decided on the very logits the CAM is computed from)."""

    def __init__(self, category: int | None) -> None:
        self.category = category
        self.chosen = category

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        if self.chosen is None:
            self.chosen = int(output.argmax())
        return output[..., self.chosen]


def predict_with_cam(
    model: ClassifierModel,
    batch: PreparedBatch,
    *,
    method: str = "gradcam",
    target_classes: Sequence[int | None] | None = None,
    device: torch.device | None = None,
) -> list[FrameCam]:
    """Probabilities and a CAM for every frame of `batch`, from one forward pass.

    `method` is one of CAM_METHODS ("gradcam", "gradcam++", ...). `target_classes` gives per frame
    the class to explain; None (for the batch or for a frame) means the frame's predicted class.
    """
    cam_class = CAM_METHODS.get(method)
    if cam_class is None:
        raise MlError(f"unknown CAM method {method!r}; choose one of {', '.join(CAM_METHODS)}")
    targets: Sequence[int | None] = [None] * len(batch) if target_classes is None else target_classes
    if len(targets) != len(batch):
        raise MlError(f"{len(batch)} frames but {len(targets)} target classes")
    for target in targets:
        if target is not None and not 0 <= target < model.num_classes:
            raise MlError(f"target class {target} is not one of the model's {model.num_classes} classes")

    device = prepare_for_inference(model, device)
    layers = model.target_layers()
    inputs = to_device(model, batch.tensor, device)
    with torch.enable_grad(), _gradients_from(model.module, layers):
        cam = cam_class(model=model.module, target_layers=layers)
        class_targets = [_ClassTarget(t) for t in targets]
        try:
            maps = cam(input_tensor=inputs, targets=class_targets)
            logits: torch.Tensor = cam.outputs
            probabilities = torch.softmax(logits.detach().float(), dim=1).cpu().numpy()
        finally:
            # Not `with cam:`: its __exit__ prints and swallows IndexErrors.
            cam.activations_and_grads.release()

    results = []
    for index, geometry in enumerate(batch.geometries):
        row = probabilities[index]
        chosen = class_targets[index].chosen
        results.append(
            FrameCam(
                probabilities=row,
                predicted_class=int(row.argmax()),
                target_class=int(row.argmax()) if chosen is None else chosen,
                cam=np.asarray(maps[index], dtype=np.float32),
                geometry=geometry,
            )
        )
    return results


@contextlib.contextmanager
def _gradients_from(module: nn.Module, layers: list[nn.Module]) -> Iterator[None]:
    """Autograd only from the target layers on: parameters frozen, the first target output a leaf.

    The hooks are registered before the CAM object registers its own, so it sees the leaf and
    records its gradient. A target output that already requires grad (downstream of another
    target) is left alone. Parameters get their requires_grad flags back afterwards.
    """
    flags = [(parameter, parameter.requires_grad) for parameter in module.parameters()]

    def make_leaf(_module: nn.Module, _args: Any, output: Any) -> Any:
        if isinstance(output, torch.Tensor) and not output.requires_grad:
            return output.detach().requires_grad_(True)
        return None

    handles = [layer.register_forward_hook(make_leaf) for layer in layers]
    try:
        for parameter, _ in flags:
            parameter.requires_grad_(False)
        yield
    finally:
        for handle in handles:
            handle.remove()
        for parameter, flag in flags:
            parameter.requires_grad_(flag)


def cam_image_size(frame_size: tuple[int, int], max_side: int = DEFAULT_MAX_SIDE) -> tuple[int, int]:
    """(width, height) of a frame's CAM image: the frame scaled so that its longer side is at most
    `max_side` (never enlarged), each side rounded and at least 1 pixel."""
    width, height = frame_size
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def render_cam(
    cam: NDArray[np.float32],
    geometry: FrameGeometry,
    *,
    max_side: int = DEFAULT_MAX_SIDE,
    colormap: str | None = None,
) -> NDArray[np.uint8]:
    """The CAM as a small image covering the whole frame. The alignment contract:

    1. The image spans the entire stored frame (width W, height H, `geometry.frame_size`), not the
       crop box nor the model input: (w, h) = `cam_image_size((W, H), max_side)`, the frame scaled
       to at most `max_side` px on its longer side. Pixel (row i, column j) stands for the frame
       rectangle x in [j * W / w, (j + 1) * W / w), y in [i * H / h, (i + 1) * H / h); its value is
       the CAM at that rectangle's centre. To overlay, draw the image stretched over the displayed
       frame (`ctx.drawImage(cam, 0, 0, shownWidth, shownHeight)`, smoothing on), nothing else: no
       crop, offset or padding is to be applied by the viewer.
    2. The crop box is already accounted for: the CAM covers only the part of the frame the model
       saw (`geometry.view`: the crop box, further narrowed by the model's centre crop, if any) and is
       0 everywhere else, in particular outside the crop box (the black border, burned-in overlays).
    3. Inside, the value is round(255 * c), c in [0, 1] being pytorch-grad-cam's CAM for the target
       class, scaled per frame (minimum 0, maximum 255 unless the CAM is zero everywhere), sampled
       bilinearly from the model-input grid. Values are relative within a frame, not comparable
       between frames.

    `colormap` None gives that (h, w) grayscale array; "jet" gives (h, w, 4) RGBA: the jet colour of
    the value, alpha 255 where the model saw the frame and 0 outside (so the border stays untinted).
    """
    values, seen = _frame_values(cam, geometry, max_side)
    gray = np.round(values * 255).astype(np.uint8)
    if colormap is None:
        return gray
    if colormap != "jet":
        raise MlError(f"unknown colour map {colormap!r}; use None (grayscale) or 'jet'")
    return np.concatenate([_jet(gray), np.where(seen, 255, 0).astype(np.uint8)[..., None]], axis=-1)


def _frame_values(
    cam: NDArray[np.float32], geometry: FrameGeometry, max_side: int
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """CAM values in [0, 1] at the CAM image's pixel centres, and where the model saw the frame."""
    frame_w, frame_h = geometry.frame_size
    width, height = cam_image_size(geometry.frame_size, max_side)
    x0, y0, x1, y1 = geometry.view
    left, top, right, bottom = geometry.region
    input_h, input_w = cam.shape
    # Centres of the CAM image's pixels in frame coordinates, then in input pixel indices.
    xs = (np.arange(width) + 0.5) * (frame_w / width)
    ys = (np.arange(height) + 0.5) * (frame_h / height)
    columns = _interpolation_matrix((xs - x0) * input_w / (x1 - x0) - 0.5, input_w)
    rows = _interpolation_matrix((ys - y0) * input_h / (y1 - y0) - 0.5, input_h)
    sampled = rows @ np.clip(cam.astype(np.float64), 0.0, 1.0) @ columns.T
    inside_x = (xs >= max(x0, left)) & (xs < min(x1, right))
    inside_y = (ys >= max(y0, top)) & (ys < min(y1, bottom))
    seen = inside_y[:, None] & inside_x[None, :]
    return np.clip(sampled * seen, 0.0, 1.0), seen


def _interpolation_matrix(positions: NDArray[np.float64], size: int) -> NDArray[np.float64]:
    """(len(positions), size) weights of linear interpolation at fractional indices, edges clamped."""
    positions = np.clip(positions, 0.0, size - 1)
    lower = np.floor(positions).astype(np.int64)
    upper = np.minimum(lower + 1, size - 1)
    fraction = positions - lower
    matrix = np.zeros((len(positions), size))
    index = np.arange(len(positions))
    # Each row is touched once per statement, so plain fancy-index += accumulates correctly (at the
    # last column lower == upper and the two weights add up to 1).
    matrix[index, lower] += 1.0 - fraction
    matrix[index, upper] += fraction
    return matrix


def _jet(gray: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """The classic jet colour map (blue, cyan, yellow, red) as RGB."""
    value = gray.astype(np.float32) / 255.0
    channels = [np.clip(1.5 - np.abs(4.0 * value - k), 0.0, 1.0) for k in (3.0, 2.0, 1.0)]
    return np.round(np.stack(channels, axis=-1) * 255).astype(np.uint8)


def encode_png(image: NDArray[np.uint8]) -> bytes:
    """PNG bytes of a rendered CAM: (h, w) grayscale or (h, w, 4) RGBA (see `render_cam`)."""
    mode = "L" if image.ndim == 2 else "RGBA"
    buffer = BytesIO()
    Image.fromarray(np.ascontiguousarray(image), mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


def predict_frames_with_cam(
    model: ClassifierModel,
    frames: Sequence[Image.Image],
    *,
    crop_boxes: Sequence[CropBox | None] | None = None,
    target_classes: Sequence[int | None] | None = None,
    method: str = "gradcam",
    batch_size: int = 16,
    max_side: int = DEFAULT_MAX_SIDE,
    colormap: str | None = None,
    device: torch.device | None = None,
) -> list[FrameCamImage]:
    """Prepare, predict and explain frames in batches; CAMs rendered per `render_cam`."""
    count = len(frames)
    boxes: Sequence[CropBox | None] = [None] * count if crop_boxes is None else crop_boxes
    targets: Sequence[int | None] = [None] * count if target_classes is None else target_classes
    if len(boxes) != count or len(targets) != count:
        raise MlError(f"{count} frames but {len(boxes)} crop boxes and {len(targets)} target classes")
    device = prepare_for_inference(model, device)
    results: list[FrameCamImage] = []
    for indices in iter_batches(range(count), batch_size):
        batch = prepare_batch([frames[i] for i in indices], model.data_config, [boxes[i] for i in indices])
        for frame_cam in predict_with_cam(
            model, batch, method=method, target_classes=[targets[i] for i in indices], device=device
        ):
            results.append(
                FrameCamImage(
                    probabilities=frame_cam.probabilities,
                    predicted_class=frame_cam.predicted_class,
                    target_class=frame_cam.target_class,
                    image=render_cam(frame_cam.cam, frame_cam.geometry, max_side=max_side, colormap=colormap),
                )
            )
    return results
