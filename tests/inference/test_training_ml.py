"""The training loop's parts, without Django: settings, augmentation, synthetic degradation, losses
and sampling for imbalanced classes, early stopping and cancellation."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from inference.ml.errors import MlError
from inference.ml.training import (
    Augmentation,
    FocalLoss,
    TrainingCancelled,
    TrainingConfig,
    TrainingSample,
    class_weights,
    degrade,
    train,
)

TINY = TrainingConfig(architecture="cnn_lstm", input_size=32, epochs=3, batch_size=4, seed=3)


def stripes(seed: int, size: int = 48) -> Image.Image:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    pixels = 127 + 100 * np.sin(xx * 0.9 + yy * rng.uniform(0, 1)) + rng.normal(0, 10, (size, size))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "L")


@pytest.fixture
def samples(tmp_path: Path) -> list[TrainingSample]:
    found = []
    for index in range(12):
        path = tmp_path / f"{index}.png"
        stripes(index).save(path)
        found.append(TrainingSample(str(path), index % 2, f"P{index % 4}"))
    return found


def test_settings_round_trip_and_refuse_what_they_do_not_know() -> None:
    config = TrainingConfig(augmentation=Augmentation(rotation_degrees=15, horizontal_flip=True))
    assert TrainingConfig.from_json(config.to_json()) == config
    cases: list[tuple[dict[str, Any], str]] = [
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"epochs": 0}, "epochs"),
        ({"momentum": 0.9}, "unknown training settings"),
        ({"augmentation": {"mixup": 0.2}}, "unknown augmentation"),
        ({"dropout": 1.0}, "dropout"),
        ({"in_chans": 4}, "in_chans"),
    ]
    for bad, message in cases:
        with pytest.raises(MlError, match=message):
            TrainingConfig.from_json(bad)


def test_augmentation_is_seeded_and_off_when_zero() -> None:
    image = stripes(1)
    augmentation = Augmentation(
        rotation_degrees=20, translate=0.1, zoom=0.2, shear_degrees=10, brightness=0.3
    )
    first = augmentation.apply(image, random.Random("1:1:5"))
    again = augmentation.apply(image, random.Random("1:1:5"))
    other = augmentation.apply(image, random.Random("1:2:5"))
    assert np.array_equal(np.asarray(first), np.asarray(again))
    assert not np.array_equal(np.asarray(first), np.asarray(other))
    assert first.size == image.size and first.mode == "L"
    untouched = Augmentation().apply(image, random.Random(0))
    assert np.array_equal(np.asarray(untouched), np.asarray(image))


def test_synthetic_degradations_blur_or_change_brightness() -> None:
    image = stripes(2)
    edges = np.asarray(image.filter(ImageFilter.FIND_EDGES), dtype=float).mean()
    blurred = degrade(image, "blur", random.Random(0))
    assert np.asarray(blurred.filter(ImageFilter.FIND_EDGES), dtype=float).mean() < edges / 3
    brightness = [
        np.asarray(degrade(image, "brightness", random.Random(seed)), dtype=float).mean() for seed in range(8)
    ]
    mean = np.asarray(image, dtype=float).mean()
    assert all(abs(value - mean) > 0.3 * mean for value in brightness)
    with pytest.raises(MlError):
        degrade(image, "noise", random.Random(0))


def test_focal_loss_is_cross_entropy_at_gamma_0_and_smaller_for_easy_samples() -> None:
    logits = torch.tensor([[3.0, -1.0], [0.2, 0.1], [-2.0, 2.0]])
    target = torch.tensor([0, 1, 1])
    ce = torch.nn.functional.cross_entropy(logits, target)
    assert torch.allclose(FocalLoss(0.0)(logits, target), ce)
    assert FocalLoss(2.0)(logits, target) < ce
    smoothed = torch.nn.functional.cross_entropy(logits, target, label_smoothing=0.1)
    assert torch.allclose(FocalLoss(0.0, label_smoothing=0.1)(logits, target), smoothed)


def test_class_weights_give_the_rare_class_more_weight() -> None:
    weights = class_weights([0, 0, 0, 1], 3)
    assert weights[1] == pytest.approx(3 * weights[0]) and weights[2] == 0
    assert weights[:2].mean() == pytest.approx(1.0)


def test_training_records_each_epoch_and_keeps_the_best_weights(samples: list[TrainingSample]) -> None:
    epochs: list[int] = []
    outcome = train(
        TrainingConfig.from_json(
            {**TINY.to_json(), "epochs": 8, "early_stopping_patience": 2, "learning_rate": 0.5}
        ),
        num_classes=2,
        train_samples=samples[:8],
        val_samples=samples[8:],
        on_epoch=lambda record, planned: epochs.append(record.epoch),
    )
    assert epochs == [record.epoch for record in outcome.history]
    val_losses = [record.val_loss or 0.0 for record in outcome.history]
    assert outcome.best_epoch == 1 + int(np.argmin(val_losses))
    # Stopped two epochs after the best one, unless the best was late.
    if outcome.stopped_early:
        assert len(outcome.history) == outcome.best_epoch + 2 < 8
    assert not outcome.model.module.training


@pytest.mark.parametrize("imbalance", ["class_weights", "weighted_sampling", "focal"])
def test_every_imbalance_setting_trains(samples: list[TrainingSample], imbalance: str) -> None:
    skewed = samples[:6] + [s for s in samples[6:] if s.label == 0]
    outcome = train(
        TrainingConfig.from_json({**TINY.to_json(), "imbalance": imbalance, "label_smoothing": 0.1}),
        num_classes=2,
        train_samples=skewed,
    )
    assert len(outcome.history) == 3 and all(np.isfinite(r.train_loss) for r in outcome.history)


def test_a_cancelled_run_stops_between_batches(samples: list[TrainingSample]) -> None:
    calls = []

    def cancelled() -> bool:
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(TrainingCancelled):
        train(TINY, num_classes=2, train_samples=samples, cancelled=cancelled)
    assert len(calls) == 3
