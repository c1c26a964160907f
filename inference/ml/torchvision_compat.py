"""Make the PyPI torchvision 0.28.0 importable beside the CPU build of torch 2.13.0.

The torchvision wheel on PyPI is built against CUDA torch. Its compiled extension does not load
beside the CPU torch, so the `torchvision::nms` operator is never registered, and
`torchvision/_meta_registrations.py` then fails at import time with
"RuntimeError: operator torchvision::nms does not exist" while registering a fake kernel for it.
timm and pytorch-grad-cam import torchvision, so nothing ML-related would import at all.

The fix: declare the two operator schemas the meta registrations refer to (nms, qnms) ourselves and
import again. Only the schemas exist, no kernels: calling `torchvision.ops.nms` still fails, but
CLEAR needs classification models, transforms and CAMs, none of which call it. On a CUDA torch, or
whenever torchvision imports cleanly, this module does nothing.
"""

from __future__ import annotations

import sys

import torch

_MISSING_OPERATOR = "operator torchvision::nms does not exist"

# Kept alive at module level on purpose: the schemas are unregistered when the Library is collected.
_fragment: torch.library.Library | None = None

SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)


def _forget_torchvision() -> None:
    """Drop the half-imported package so that the next import starts from scratch."""
    for name in [name for name in sys.modules if name == "torchvision" or name.startswith("torchvision.")]:
        del sys.modules[name]


def ensure_torchvision() -> bool:
    """Import torchvision, declaring its operator schemas first if needed; True when the shim was used."""
    global _fragment
    try:
        import torchvision
    except RuntimeError as exc:
        if _MISSING_OPERATOR not in str(exc):
            raise
    else:
        return False
    _forget_torchvision()
    if _fragment is None:
        fragment = torch.library.Library("torchvision", "FRAGMENT")
        for schema in SCHEMAS:
            fragment.define(schema)
        _fragment = fragment
    import torchvision  # noqa: F401

    return True


SHIM_APPLIED = ensure_torchvision()
