"""Training a classifier on frames: the configuration, augmentation, class-imbalance handling, the
epoch loop with early stopping, and synthetic bad-quality frames.

Plain PyTorch: Django hands in `TrainingSample`s (file paths, class indices, patients) and gets a
`TrainingOutcome` back (the model with its best weights, the per-epoch history). The same code runs
on a GPU worker and, with tiny models and small frames, on the CPU in the tests.

Frames go through exactly the preprocessing inference uses (`prepare_frame`: crop box, eval crop,
normalisation), with the augmentation applied to the frame before it, so a trained model sees at
prediction time what it saw in training, minus the random changes.
"""

from __future__ import annotations

import copy
import io
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from PIL import Image, ImageEnhance, ImageFilter
from torch import nn
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from inference.ml.architectures import ClassifierModel
from inference.ml.errors import MlError
from inference.ml.factory import create_model
from inference.ml.predict import select_device
from inference.ml.preprocessing import CropBox, model_image, prepare_frame

OPTIMIZERS = ("adamw", "adam", "sgd")
IMBALANCE = ("none", "class_weights", "weighted_sampling", "focal")
SYNTHETIC_KINDS = ("blur", "brightness", "blur_brightness")


class TrainingCancelled(MlError):
    """The caller asked the run to stop (checked between batches)."""


@dataclass(frozen=True)
class Augmentation:
    """Random changes to a training frame. Each is off at 0 (or False)."""

    rotation_degrees: float = 0.0
    horizontal_flip: bool = False
    vertical_flip: bool = False
    translate: float = 0.0  # fraction of the frame's width/height, both ways
    zoom: float = 0.0  # scale in [1 - zoom, 1 + zoom]
    shear_degrees: float = 0.0
    brightness: float = 0.0  # factor in [1 - b, 1 + b]
    contrast: float = 0.0
    blur_probability: float = 0.0
    blur_max_radius: float = 2.0

    @property
    def geometric(self) -> bool:
        return bool(self.rotation_degrees or self.translate or self.zoom or self.shear_degrees)

    def apply(self, image: Image.Image, rng: random.Random) -> Image.Image:
        if self.horizontal_flip and rng.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if self.vertical_flip and rng.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
        if self.geometric:
            image = _affine(image, self, rng)
        if self.brightness:
            image = ImageEnhance.Brightness(image).enhance(
                rng.uniform(1 - self.brightness, 1 + self.brightness)
            )
        if self.contrast:
            image = ImageEnhance.Contrast(image).enhance(rng.uniform(1 - self.contrast, 1 + self.contrast))
        if self.blur_probability and rng.random() < self.blur_probability:
            image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.1, self.blur_max_radius)))
        return image


def _affine(image: Image.Image, augmentation: Augmentation, rng: random.Random) -> Image.Image:
    """Rotation, translation, zoom and shear about the frame's centre in one resampling, with the
    uncovered corners black (the colour of a CLE frame's border)."""
    width, height = image.size
    angle = math.radians(rng.uniform(-augmentation.rotation_degrees, augmentation.rotation_degrees))
    shear = math.radians(rng.uniform(-augmentation.shear_degrees, augmentation.shear_degrees))
    scale = rng.uniform(1 - augmentation.zoom, 1 + augmentation.zoom)
    dx = rng.uniform(-augmentation.translate, augmentation.translate) * width
    dy = rng.uniform(-augmentation.translate, augmentation.translate) * height
    # Forward map: centre -> rotate and shear -> scale -> shift back and translate; PIL wants the
    # inverse (output pixel -> input pixel).
    cos, sin, tan = math.cos(angle), math.sin(angle), math.tan(shear)
    forward = np.array([[cos, -sin + cos * tan], [sin, cos + sin * tan]]) * scale
    inverse = np.linalg.inv(forward)
    cx, cy = width / 2, height / 2
    offset = np.array([cx, cy]) - inverse @ np.array([cx + dx, cy + dy])
    coefficients = (inverse[0, 0], inverse[0, 1], offset[0], inverse[1, 0], inverse[1, 1], offset[1])
    return image.transform(
        image.size, Image.Transform.AFFINE, coefficients, resample=Image.Resampling.BILINEAR
    )


def degrade(image: Image.Image, kind: str, rng: random.Random) -> Image.Image:
    """A synthetic bad-quality version of a good frame, as the ENT quality study made them: Gaussian
    blur with a random radius, a strong brightness change, or both."""
    if kind not in SYNTHETIC_KINDS:
        raise MlError(f"unknown synthetic degradation {kind!r}; one of {SYNTHETIC_KINDS}")
    if kind in ("blur", "blur_brightness"):
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(3.0, 8.0)))
    if kind in ("brightness", "blur_brightness"):
        factor = rng.uniform(0.15, 0.4) if rng.random() < 0.5 else rng.uniform(2.0, 3.5)
        image = ImageEnhance.Brightness(image).enhance(factor)
    return image


@dataclass(frozen=True)
class TrainingConfig:
    """Everything that decides a training run (stored with the run and inside the model file)."""

    architecture: str = "efficientnet_b0"
    input_size: int = 224
    in_chans: int | None = None
    epochs: int = 10
    learning_rate: float = 1e-3
    batch_size: int = 32
    optimizer: str = "adamw"
    weight_decay: float = 1e-4
    imbalance: str = "none"
    focal_gamma: float = 2.0
    label_smoothing: float = 0.0
    dropout: float = 0.0
    early_stopping_patience: int = 0  # epochs without a better validation loss; 0: off
    pretrained_file: str | None = None
    seed: int = 0
    augmentation: Augmentation = field(default_factory=Augmentation)
    device: str = "auto"

    def problems(self) -> list[str]:
        problems = []
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer must be one of {OPTIMIZERS}")
        if self.imbalance not in IMBALANCE:
            problems.append(f"imbalance must be one of {IMBALANCE}")
        if not 1 <= self.epochs <= 1000:
            problems.append("epochs must be 1 to 1000")
        if not 1 <= self.batch_size <= 4096:
            problems.append("batch_size must be 1 to 4096")
        if not 0 < self.learning_rate <= 10:
            problems.append("learning_rate must be above 0 and at most 10")
        if not 16 <= self.input_size <= 1024:
            problems.append("input_size must be 16 to 1024 pixels")
        if not 0 <= self.dropout < 1:
            problems.append("dropout must be in [0, 1)")
        if not 0 <= self.label_smoothing < 1:
            problems.append("label_smoothing must be in [0, 1)")
        if self.weight_decay < 0 or self.focal_gamma < 0 or self.early_stopping_patience < 0:
            problems.append("weight_decay, focal_gamma and early_stopping_patience cannot be negative")
        if self.in_chans not in (None, 1, 3):
            problems.append("in_chans must be 1 or 3 (or left to the architecture)")
        return problems

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrainingConfig:
        known = {name for name in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise MlError(f"unknown training settings: {unknown}")
        values = dict(data)
        augmentation = values.pop("augmentation", None) or {}
        unknown_aug = sorted(set(augmentation) - set(Augmentation.__dataclass_fields__))
        if unknown_aug:
            raise MlError(f"unknown augmentation settings: {unknown_aug}")
        try:
            config = cls(**values, augmentation=Augmentation(**augmentation))
        except TypeError as exc:
            raise MlError(f"invalid training settings: {exc}") from exc
        problems = config.problems()
        if problems:
            raise MlError("; ".join(problems))
        return config


@dataclass(frozen=True)
class TrainingSample:
    """One training input: an image file, its class index, its patient (for grouping), its crop
    box, and for a synthetic bad-quality sample the degradation made from it (else None).

    `path` is a file path, or with `read` the name `read` turns into the file's bytes (Django passes
    records.media.read_bytes, so that frames come from the media storage whatever its backend)."""

    path: str
    label: int
    patient: str
    crop_box: CropBox | None = None
    synthetic: str | None = None
    frame_id: int | None = None
    read: Callable[[str], bytes] | None = None


class FrameDataset(Dataset[tuple[torch.Tensor, int]]):
    """Samples as model inputs. Decoded frames are kept (frames are small and re-read every epoch);
    random changes come from a per-item generator seeded by (seed, epoch, index), so a run is
    reproducible whatever the loader's worker count."""

    def __init__(
        self,
        samples: Sequence[TrainingSample],
        model: ClassifierModel,
        *,
        augmentation: Augmentation | None = None,
        seed: int = 0,
    ) -> None:
        self.samples = list(samples)
        self.config = model.data_config
        self.augmentation = augmentation
        self.seed = seed
        self.epoch = 0
        self._images: dict[str, Image.Image] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def image(self, sample: TrainingSample) -> Image.Image:
        image = self._images.get(sample.path)
        if image is None:
            source = Path(sample.path) if sample.read is None else io.BytesIO(sample.read(sample.path))
            with Image.open(source) as opened:
                image = model_image(opened.copy(), self.config.in_chans)
            self._images[sample.path] = image
        return image

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        sample = self.samples[index]
        image = self.image(sample)
        # String seeds: random.Random hashes them with SHA-512, the same in every process (hash() of a
        # str is salted per process).
        rng = random.Random(f"{self.seed}:{self.epoch}:{index}")
        if sample.synthetic:
            # The same degraded frame every epoch: it stands for one bad-quality frame.
            image = degrade(image, sample.synthetic, random.Random(f"{self.seed}:synthetic:{index}"))
        if self.augmentation is not None:
            image = self.augmentation.apply(image, rng)
        tensor, _geometry = prepare_frame(image, self.config, sample.crop_box)
        return tensor, sample.label


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017) with optional class weights and label smoothing: the smoothed
    cross-entropy of each sample scaled by (1 - p_true) ** gamma."""

    def __init__(
        self, gamma: float, weight: torch.Tensor | None = None, label_smoothing: float = 0.0
    ) -> None:
        super().__init__()
        self.gamma = gamma
        self.label_smoothing = label_smoothing
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        weight: torch.Tensor | None = self.weight  # type: ignore[assignment]  # a registered buffer
        ce = F.cross_entropy(
            logits, target, weight=weight, reduction="none", label_smoothing=self.label_smoothing
        )
        p_true = logits.softmax(dim=1).gather(1, target.unsqueeze(1)).squeeze(1)
        return ((1 - p_true).clamp(min=0) ** self.gamma * ce).mean()


def class_weights(labels: Sequence[int], num_classes: int) -> NDArray[np.float64]:
    """Inverse-frequency weights normalised to mean 1 (a class without samples gets weight 0)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(np.float64)
    weights = np.divide(1.0, counts, out=np.zeros_like(counts), where=counts > 0)
    present = weights > 0
    return weights * present.sum() / weights.sum() if weights.sum() else weights


def _loss(config: TrainingConfig, labels: Sequence[int], num_classes: int, device: torch.device) -> nn.Module:
    weight = None
    if config.imbalance in ("class_weights", "focal"):
        weight = torch.tensor(class_weights(labels, num_classes), dtype=torch.float32, device=device)
    if config.imbalance == "focal":
        return FocalLoss(config.focal_gamma, weight, config.label_smoothing).to(device)
    return nn.CrossEntropyLoss(weight=weight, label_smoothing=config.label_smoothing)


def _optimizer(config: TrainingConfig, module: nn.Module) -> torch.optim.Optimizer:
    parameters = [p for p in module.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            parameters, lr=config.learning_rate, momentum=0.9, weight_decay=config.weight_decay, nesterov=True
        )
    if config.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)
    return torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)


def _loader(
    dataset: FrameDataset, config: TrainingConfig, *, train: bool, generator: torch.Generator
) -> DataLoader[tuple[torch.Tensor, int]]:
    if train and config.imbalance == "weighted_sampling":
        labels = [sample.label for sample in dataset.samples]
        per_class = class_weights(labels, max(labels) + 1)
        sampler = WeightedRandomSampler(
            [float(per_class[label]) for label in labels], len(labels), replacement=True, generator=generator
        )
        return DataLoader(dataset, batch_size=config.batch_size, sampler=sampler)
    return DataLoader(
        dataset, batch_size=config.batch_size, shuffle=train, generator=generator if train else None
    )


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    seconds: float
    frames_per_second: float


@dataclass
class TrainingOutcome:
    model: ClassifierModel
    history: list[EpochRecord]
    best_epoch: int
    stopped_early: bool

    def history_json(self) -> list[dict[str, Any]]:
        return [asdict(record) for record in self.history]


EpochCallback = Callable[[EpochRecord, int], None]
"""Called after every epoch with its record and the number of epochs planned."""
CancelCheck = Callable[[], bool]


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def build_model(config: TrainingConfig, num_classes: int) -> ClassifierModel:
    return create_model(
        config.architecture,
        num_classes=num_classes,
        in_chans=config.in_chans,
        pretrained_file=config.pretrained_file,
        drop_rate=config.dropout,
        input_size=config.input_size,
    )


def train(
    config: TrainingConfig,
    *,
    num_classes: int,
    train_samples: Sequence[TrainingSample],
    val_samples: Sequence[TrainingSample] = (),
    on_epoch: EpochCallback | None = None,
    cancelled: CancelCheck | None = None,
) -> TrainingOutcome:
    """Train a new model on `train_samples`; with `val_samples`, keep the weights of the epoch with
    the lowest validation loss and stop early after `early_stopping_patience` epochs without a
    better one. Raises TrainingCancelled when `cancelled()` turns true (checked between batches)."""
    if not train_samples:
        raise MlError("no training frames")
    generator = seed_everything(config.seed)
    model = build_model(config, num_classes)
    device = select_device(config.device)
    memory_format = torch.channels_last if model.channels_last else torch.contiguous_format
    model.module.to(device=device, memory_format=memory_format)  # type: ignore[call-overload]
    train_set = FrameDataset(train_samples, model, augmentation=config.augmentation, seed=config.seed)
    val_set = FrameDataset(val_samples, model, seed=config.seed) if val_samples else None
    criterion = _loss(config, [s.label for s in train_samples], num_classes, device)
    optimizer = _optimizer(config, model.module)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    history: list[EpochRecord] = []
    best_loss, best_epoch, best_state = math.inf, 0, None
    stopped_early = False
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        train_set.epoch = epoch
        model.module.train()
        total_loss, correct, seen = 0.0, 0, 0
        for inputs, targets in _loader(train_set, config, train=True, generator=generator):
            if cancelled is not None and cancelled():
                raise TrainingCancelled("the training run was cancelled")
            inputs = inputs.to(device, memory_format=memory_format, non_blocking=True)
            targets = targets.to(device)
            optimizer.zero_grad(set_to_none=True)
            logits = model.module(inputs)
            loss = criterion(logits, targets)
            loss.backward()
            optimizer.step()
            total_loss += float(loss.detach()) * len(targets)
            correct += int((logits.argmax(1) == targets).sum())
            seen += len(targets)
        scheduler.step()
        val_loss = val_accuracy = None
        if val_set is not None:
            probabilities = predict(model, val_set, config.batch_size, device)
            targets_np = np.array([s.label for s in val_set.samples])
            val_loss = float(
                F.nll_loss(
                    torch.log(torch.from_numpy(probabilities).clamp(min=1e-7)), torch.from_numpy(targets_np)
                )
            )
            val_accuracy = float((probabilities.argmax(1) == targets_np).mean())
        seconds = time.perf_counter() - started
        record = EpochRecord(
            epoch=epoch,
            train_loss=total_loss / seen,
            train_accuracy=correct / seen,
            val_loss=val_loss,
            val_accuracy=val_accuracy,
            seconds=seconds,
            frames_per_second=seen / seconds if seconds else 0.0,
        )
        history.append(record)
        if on_epoch is not None:
            on_epoch(record, config.epochs)
        monitored = val_loss if val_loss is not None else record.train_loss
        if monitored < best_loss - 1e-6:
            best_loss, best_epoch = monitored, epoch
            best_state = copy.deepcopy(model.module.state_dict())
        elif (
            config.early_stopping_patience
            and val_set is not None
            and epoch - best_epoch >= config.early_stopping_patience
        ):
            stopped_early = True
            break
    if best_state is not None:
        model.module.load_state_dict(best_state)
    model.module.to(device="cpu", memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    model.module.eval()
    return TrainingOutcome(model=model, history=history, best_epoch=best_epoch, stopped_early=stopped_early)


@torch.inference_mode()
def predict(
    model: ClassifierModel, dataset: FrameDataset, batch_size: int, device: torch.device | None = None
) -> NDArray[np.float64]:
    """Softmax probabilities (N, classes) of the dataset's frames, without augmentation."""
    device = device or model.device
    augmentation, dataset.augmentation = dataset.augmentation, None
    memory_format = torch.channels_last if model.channels_last else torch.contiguous_format
    was_training = model.module.training
    model.module.eval()
    rows = []
    try:
        for inputs, _targets in DataLoader(dataset, batch_size=batch_size, shuffle=False):
            logits = model.module(inputs.to(device, memory_format=memory_format))
            rows.append(logits.float().softmax(1).cpu().numpy().astype(np.float64))
    finally:
        dataset.augmentation = augmentation
        model.module.train(was_training)
    return np.concatenate(rows) if rows else np.zeros((0, model.num_classes))


def predict_samples(
    model: ClassifierModel, samples: Sequence[TrainingSample], batch_size: int = 32
) -> NDArray[np.float64]:
    """Softmax probabilities of samples (held-out frames) with the model where it is."""
    return predict(model, FrameDataset(samples, model), batch_size)
