"""The torchvision shim: timm and pytorch-grad-cam import and run on the CPU torch build."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

import inference.ml
from inference.ml import torchvision_compat
from tests.conftest import REPO_ROOT

# Never reach for a hub: every model here is built with random weights.
os.environ["HF_HUB_OFFLINE"] = "1"


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    """A fresh interpreter, so that no earlier import in this process hides the failure."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_timm_model_runs_forward_after_importing_inference_ml() -> None:
    import timm

    assert inference.ml.torchvision_compat is torchvision_compat
    model = timm.create_model("efficientnet_b0", pretrained=False, num_classes=2).eval()
    with torch.inference_mode():
        out = model(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 2)


def test_grad_cam_runs_on_a_tiny_model() -> None:
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, kernel_size=3, padding=1)
    model = nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)).eval()
    with GradCAM(model=model, target_layers=[conv]) as cam:
        heatmap = cam(input_tensor=torch.randn(2, 3, 16, 16), targets=[ClassifierOutputTarget(1)] * 2)
    assert heatmap.shape == (2, 16, 16)
    assert heatmap.min() >= 0.0 and heatmap.max() <= 1.0


def test_torchvision_is_importable_and_shim_is_idempotent() -> None:
    import torchvision

    assert torchvision.__version__
    # A second call finds torchvision imported and does nothing.
    assert torchvision_compat.ensure_torchvision() is False


def test_fresh_interpreter_needs_the_shim_only_where_torchvision_is_broken() -> None:
    plain = _run_python("import timm")
    shimmed = _run_python(
        """
        import inference.ml
        from inference.ml import torchvision_compat
        import timm
        print("shim", torchvision_compat.SHIM_APPLIED)
        """
    )
    assert shimmed.returncode == 0, shimmed.stderr
    if plain.returncode != 0:
        # The broken pairing (CPU torch + CUDA-built torchvision wheel): the shim is what makes it work.
        assert "torchvision::nms does not exist" in plain.stderr
        assert "shim True" in shimmed.stdout
    else:
        # A torch whose torchvision imports cleanly: the compat module must be a no-op.
        assert "shim False" in shimmed.stdout


def test_other_import_errors_are_not_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def failing_import(name: str, *args: object, **kwargs: object) -> object:
        if name == "torchvision":
            raise RuntimeError("something else entirely")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", failing_import)
    with pytest.raises(RuntimeError, match="something else entirely"):
        torchvision_compat.ensure_torchvision()


def test_inference_ml_has_no_django_import() -> None:
    ml_root = REPO_ROOT / "inference" / "ml"
    offenders = [
        str(path.relative_to(REPO_ROOT))
        for path in ml_root.rglob("*.py")
        if any(
            line.strip().startswith(("import django", "from django"))
            for line in path.read_text().splitlines()
        )
    ]
    assert offenders == []
