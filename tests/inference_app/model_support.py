"""Tiny real CLEAR model files for the inference app's tests (not a test module itself)."""

from __future__ import annotations

from pathlib import Path

import torch

from inference.ml.factory import create_model
from inference.ml.model_files import ModelMetadata, save_model_file

QUALITY = {"quality": ["good", "bad"]}


def write_tiny_model_file(
    path: Path, tasks: dict[str, list[str]] | None = None, seed: int = 0, always: str | None = None
) -> Path:
    """A CNN-LSTM (1 channel, 32 px input, about 1.3 MB) with seeded random weights, saved with its
    metadata by `save_model_file`. With `always` (one of the labels) the classifier's weights are
    zero and its bias favours that label, so the model predicts it for every frame (a gate that
    always says "bad", say)."""
    tasks = tasks or QUALITY
    torch.manual_seed(seed)
    labels = next(iter(tasks.values()))
    model = create_model("cnn_lstm", num_classes=len(labels), input_size=32)
    if always is not None:
        classifier = model.module.classifier
        assert isinstance(classifier, torch.nn.Linear)
        with torch.no_grad():
            classifier.weight.zero_()
            classifier.bias.fill_(-5.0)
            classifier.bias[labels.index(always)] = 5.0
    save_model_file(path, model, ModelMetadata.for_model(model, tasks=tasks))
    return path
