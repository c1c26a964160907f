"""Architectures by name: timm's, plus a registry of custom ones, and the built model's description.

A custom architecture is a builder function registered with `register_architecture`, which also
declares what a timm model would otherwise tell us: its default input config, its Grad-CAM target
layer(s), its output layer and its stem convolution. `ClassifierModel` is what every other module of
the package works with: the torch module together with those facts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeVar

import timm
import torch
from torch import nn

from inference.ml.data_config import DataConfig, channel_stats
from inference.ml.errors import ArchitectureError

if TYPE_CHECKING:
    from inference.ml.pretrained import PretrainedReport

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class Builder(Protocol):
    """Builds a custom architecture's module; every argument is given by the factory."""

    def __call__(
        self, *, num_classes: int, in_chans: int, input_size: tuple[int, int], drop_rate: float
    ) -> nn.Module: ...


@dataclass(frozen=True)
class ArchitectureSpec:
    """What CLEAR knows about a custom architecture besides how to build it."""

    name: str
    builder: Builder
    default_config: DataConfig
    cam_layers: tuple[str, ...]
    classifier: tuple[str, ...]
    first_conv: str | None
    channels_last: bool
    # True when the input size shapes the weights (e.g. a dense layer over a flattened row), so a
    # model file must be rebuilt at the size it was trained at.
    input_size_in_weights: bool


_REGISTRY: dict[str, ArchitectureSpec] = {}

B = TypeVar("B", bound=Callable[..., nn.Module])


def register_architecture(
    name: str,
    *,
    in_chans: int,
    input_size: tuple[int, int],
    mean: Sequence[float],
    std: Sequence[float],
    cam_layers: Sequence[str],
    classifier: Sequence[str],
    first_conv: str | None = None,
    interpolation: str = "bilinear",
    crop_pct: float = 1.0,
    crop_mode: str = "squash",
    channels_last: bool = True,
    input_size_in_weights: bool = False,
) -> Callable[[B], B]:
    """Register a builder `(num_classes, in_chans, input_size, drop_rate) -> nn.Module` under `name`.

    `cam_layers` and `classifier` are submodule names (`model.get_submodule`); `in_chans`,
    `input_size`, `mean`/`std` etc. give the default data config. Names are lower-case identifiers and
    may shadow neither another registration nor a timm model.
    """
    if not _NAME.match(name):
        raise ArchitectureError(f"architecture name {name!r} must be lower-case letters, digits and _")
    if name in _REGISTRY:
        raise ArchitectureError(f"architecture {name!r} is already registered")
    if timm.is_model(name):
        raise ArchitectureError(f"architecture {name!r} is a timm model name; pick another name")
    if not cam_layers:
        raise ArchitectureError(f"architecture {name!r} needs at least one Grad-CAM target layer")
    config = DataConfig(
        input_size=(in_chans, *input_size),
        interpolation=interpolation,
        mean=channel_stats(mean, in_chans),
        std=channel_stats(std, in_chans),
        crop_pct=crop_pct,
        crop_mode=crop_mode,
    )

    def decorate(builder: B) -> B:
        if name in _REGISTRY:
            raise ArchitectureError(f"architecture {name!r} is already registered")
        _REGISTRY[name] = ArchitectureSpec(
            name=name,
            builder=builder,
            default_config=config,
            cam_layers=tuple(cam_layers),
            classifier=tuple(classifier),
            first_conv=first_conv,
            channels_last=channels_last,
            input_size_in_weights=input_size_in_weights,
        )
        return builder

    return decorate


def unregister_architecture(name: str) -> None:
    """Forget a custom architecture (tests register throw-away ones)."""
    _REGISTRY.pop(name, None)


def custom_architecture(name: str) -> ArchitectureSpec | None:
    return _REGISTRY.get(name)


def custom_architectures() -> list[str]:
    return sorted(_REGISTRY)


@dataclass(eq=False)
class ClassifierModel:
    """A built classifier and what the rest of the package needs to know about it.

    `module` is a plain `nn.Module` (train it, move it, save its state_dict as usual). `data_config`
    is the input contract used by preprocessing. `cam_layer_names` are the Grad-CAM target layers;
    None means "not declared", and they are then found by tracing the first time they are needed.
    """

    architecture: str
    module: nn.Module
    num_classes: int
    in_chans: int
    data_config: DataConfig
    cam_layer_names: tuple[str, ...] | None
    classifier_names: tuple[str, ...]
    first_conv: str | None
    channels_last: bool
    input_size_in_weights: bool = False
    pretrained: PretrainedReport | None = field(default=None)

    def target_layer_names(self) -> tuple[str, ...]:
        if self.cam_layer_names is None:
            self.cam_layer_names = (trace_cam_layer(self.module, self.data_config),)
        return self.cam_layer_names

    def target_layers(self) -> list[nn.Module]:
        """The Grad-CAM target modules of this model."""
        return [self.module.get_submodule(name) for name in self.target_layer_names()]

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device


def trace_cam_layer(module: nn.Module, config: DataConfig) -> str:
    """The module that produces a CNN's final feature map, for architectures without a declared one.

    Runs `forward_features` once on a blank input and takes the last module (in order of
    completion, so a stage wins over the blocks inside it) whose output has the feature map's shape;
    identities are skipped. Models whose features are not a (N, C, H, W) map (transformers) have no
    Grad-CAM target here.
    """
    forward_features = getattr(module, "forward_features", None)
    if not callable(forward_features):
        raise ArchitectureError(
            f"{type(module).__name__} has no forward_features and no declared Grad-CAM target layer"
        )
    names = {id(sub): name for name, sub in module.named_modules() if name}
    seen: list[tuple[str, tuple[int, ...]]] = []

    def record(sub: nn.Module, _args: object, output: object) -> None:
        if isinstance(output, torch.Tensor) and not isinstance(sub, nn.Identity) and id(sub) in names:
            seen.append((names[id(sub)], tuple(output.shape)))

    handles = [sub.register_forward_hook(record) for name, sub in module.named_modules() if name]
    was_training = module.training
    try:
        module.eval()
        device = next(module.parameters()).device
        with torch.inference_mode():
            features = forward_features(torch.zeros(1, *config.input_size, device=device))
    finally:
        for handle in handles:
            handle.remove()
        module.train(was_training)
    if not isinstance(features, torch.Tensor) or features.ndim != 4:
        shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        raise ArchitectureError(
            f"{type(module).__name__} has no convolutional feature map for Grad-CAM (its features are "
            f"{shape}); CAMs need a CNN"
        )
    for name, shape in reversed(seen):
        if shape == tuple(features.shape):
            return name
    raise ArchitectureError(f"no module of {type(module).__name__} produces its final feature map")
