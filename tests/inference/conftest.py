"""Fixtures for the pure ML package: models are built once per session (timm builds are slow here)."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
import torch

from inference.ml.architectures import ClassifierModel
from inference.ml.factory import create_model

# Nothing in these tests may reach a model hub; every model starts from random or local weights.
os.environ["HF_HUB_OFFLINE"] = "1"

LISTED_TIMM = ["efficientnet_b0", "tf_efficientnetv2_s", "resnet34", "inception_v3", "efficientnet_lite0"]
# The smallest input each family takes comfortably (inception_v3 needs 75 px at least).
TINY_INPUT = {"inception_v3": 80}
CPU = torch.device("cpu")

ModelCache = Callable[..., ClassifierModel]


@pytest.fixture(scope="session")
def built_model() -> ModelCache:
    """`built_model(name, in_chans, num_classes=3)`: one shared model per argument set, tiny input.

    Shared between tests: use it for read-only work (forward, CAM), never to load weights into.
    """
    cache: dict[tuple[str, int, int], ClassifierModel] = {}

    def build(name: str, in_chans: int, num_classes: int = 3) -> ClassifierModel:
        key = (name, in_chans, num_classes)
        if key not in cache:
            torch.manual_seed(0)
            size = 32 if name == "cnn_lstm" else TINY_INPUT.get(name, 64)
            cache[key] = create_model(name, num_classes=num_classes, in_chans=in_chans, input_size=size)
        return cache[key]

    return build
