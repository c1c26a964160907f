"""`create_model`: any timm model name or a registered custom architecture, never downloading."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path

import timm
from timm.data import resolve_model_data_config
from timm.models.efficientnet import EfficientNet
from timm.models.inception_v3 import InceptionV3
from timm.models.mobilenetv3 import MobileNetV3
from timm.models.resnet import ResNet
from torch import nn

# Imported for its registration of "cnn_lstm".
from inference.ml import cnn_lstm as cnn_lstm
from inference.ml.architectures import ClassifierModel, custom_architecture, custom_architectures
from inference.ml.data_config import INTERPOLATIONS, DataConfig, channel_stats
from inference.ml.errors import ArchitectureError
from inference.ml.pretrained import load_pretrained

TIMM_DEFAULT_IN_CHANS = 3


def is_known_architecture(name: str) -> bool:
    return custom_architecture(name) is not None or bool(timm.is_model(name))


def check_architecture(name: str) -> None:
    """Raise ArchitectureError, with the closest names, when `name` is neither custom nor timm's."""
    if is_known_architecture(name):
        return
    candidates = custom_architectures() + timm.list_models()
    close = difflib.get_close_matches(name, candidates, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ArchitectureError(
        f"unknown architecture {name!r}: neither a registered custom architecture "
        f"({', '.join(custom_architectures())}) nor a timm model name{hint}"
    )


def create_model(
    architecture: str,
    *,
    num_classes: int,
    in_chans: int | None = None,
    pretrained_file: str | Path | None = None,
    drop_rate: float = 0.0,
    input_size: int | Sequence[int] | None = None,
) -> ClassifierModel:
    """Build `architecture` with random weights, or with `pretrained_file`'s (a local file only).

    `in_chans` defaults to the architecture's own (3 for timm models, 1 for cnn_lstm). `input_size`
    ((height, width) or an int) overrides the default input size of the data config; for
    architectures whose weights depend on it (cnn_lstm) it is also the size the model is built for.
    The module is returned in train mode on the CPU, as timm does; `pretrained_file` goes through
    `load_pretrained` (its report is kept in `.pretrained`).
    """
    check_architecture(architecture)
    if num_classes < 1:
        raise ArchitectureError(f"num_classes must be at least 1, not {num_classes}")
    spec = custom_architecture(architecture)
    if spec is not None:
        chans = spec.default_config.in_chans if in_chans is None else in_chans
        config = DataConfig(
            input_size=(chans, spec.default_config.height, spec.default_config.width),
            interpolation=spec.default_config.interpolation,
            mean=channel_stats(spec.default_config.mean, chans),
            std=channel_stats(spec.default_config.std, chans),
            crop_pct=spec.default_config.crop_pct,
            crop_mode=spec.default_config.crop_mode,
            crop_policy=spec.default_config.crop_policy,
        )
        if input_size is not None:
            config = config.with_input_size(input_size)
        module = spec.builder(
            num_classes=num_classes,
            in_chans=chans,
            input_size=(config.height, config.width),
            drop_rate=drop_rate,
        )
        model = ClassifierModel(
            architecture=architecture,
            module=module,
            num_classes=num_classes,
            in_chans=chans,
            data_config=config,
            cam_layer_names=spec.cam_layers,
            classifier_names=spec.classifier,
            first_conv=spec.first_conv,
            channels_last=spec.channels_last,
            input_size_in_weights=spec.input_size_in_weights,
        )
    else:
        chans = TIMM_DEFAULT_IN_CHANS if in_chans is None else in_chans
        # pretrained=False always: timm would otherwise reach for the Hugging Face hub.
        module = timm.create_model(
            architecture, pretrained=False, num_classes=num_classes, in_chans=chans, drop_rate=drop_rate
        )
        config = timm_data_config(module, chans)
        if input_size is not None:
            config = config.with_input_size(input_size)
        pretrained_cfg = getattr(module, "pretrained_cfg", {}) or {}
        classifier = pretrained_cfg.get("classifier") or "classifier"
        model = ClassifierModel(
            architecture=architecture,
            module=module,
            num_classes=num_classes,
            in_chans=chans,
            data_config=config,
            cam_layer_names=timm_cam_layers(module),
            classifier_names=tuple(classifier) if isinstance(classifier, (list, tuple)) else (classifier,),
            first_conv=pretrained_cfg.get("first_conv"),
            channels_last=True,
        )
    if pretrained_file is not None:
        model.pretrained = load_pretrained(model, pretrained_file)
    return model


def timm_data_config(module: nn.Module, in_chans: int) -> DataConfig:
    """The eval data config timm resolves for `module` (its pretrained_cfg), for `in_chans` channels."""
    resolved = resolve_model_data_config(module)
    _, height, width = resolved["input_size"]
    interpolation = resolved.get("interpolation", "bicubic")
    return DataConfig(
        input_size=(in_chans, int(height), int(width)),
        interpolation=interpolation if interpolation in INTERPOLATIONS else "bicubic",
        mean=channel_stats(resolved["mean"], in_chans),
        std=channel_stats(resolved["std"], in_chans),
        crop_pct=float(resolved.get("crop_pct", 0.875)),
        crop_mode=str(resolved.get("crop_mode", "center")),
    )


def timm_cam_layers(module: nn.Module) -> tuple[str, ...] | None:
    """The Grad-CAM target of the timm families CLEAR uses; None means "trace it when needed".

    The target is the last feature map before global pooling: for EfficientNet (B0-B7, V2, Lite,
    tf_ variants) `bn2`, the activated output of conv_head; for ResNet `layer4`; for Inception v3
    `Mixed_7c`; for MobileNetV3 the last block (its conv_head runs after the pooling).
    """
    if isinstance(module, EfficientNet):
        return ("bn2",)
    if isinstance(module, ResNet):
        return ("layer4",)
    if isinstance(module, InceptionV3):
        return ("Mixed_7c",)
    if isinstance(module, MobileNetV3):
        return (f"blocks.{len(module.blocks) - 1}",)
    return None
