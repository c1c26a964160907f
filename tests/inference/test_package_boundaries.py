"""inference/ml stays plain PyTorch: no Django, no network, no pickle loading."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap

from tests.conftest import REPO_ROOT

ML_ROOT = REPO_ROOT / "inference" / "ml"

# A fresh interpreter: imports every module of the package, builds and runs models, with sockets
# disabled and HF_HUB_OFFLINE unset, so that any attempt to download fails loudly.
SCRIPT = """
import importlib, pkgutil, socket, sys

def refuse(*args, **kwargs):
    raise AssertionError(f"network access attempted: {args!r}")

socket.socket.connect = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse

import inference.ml
modules = [m.name for m in pkgutil.walk_packages(inference.ml.__path__, "inference.ml.")]
for name in modules:
    importlib.import_module(name)

import numpy as np
import torch
from PIL import Image
from inference.ml.cam import predict_frames_with_cam
from inference.ml.factory import create_model

frame = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 50), dtype=np.uint8))
for architecture, size in (("efficientnet_lite0", 32), ("cnn_lstm", 16)):
    model = create_model(architecture, num_classes=2, in_chans=1, input_size=size)
    (result,) = predict_frames_with_cam(
        model, [frame], crop_boxes=[[5, 5, 45, 35]], device=torch.device("cpu")
    )
    assert abs(float(result.probabilities.sum()) - 1) < 1e-5

django = sorted(name for name in sys.modules if name == "django" or name.startswith("django."))
print("modules", len(modules), "django", django)
"""


def test_package_imports_and_runs_without_django_or_network() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "DJANGO_SETTINGS_MODULE")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "django []" in result.stdout
    count = int(result.stdout.split()[1])
    expected = len([p for p in ML_ROOT.rglob("*.py") if p.name != "__init__.py"])
    assert count == expected


def test_every_torch_load_is_weights_only() -> None:
    offenders = []
    for path in ML_ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            function = ast.unparse(node.func)
            if function in ("pickle.load", "pickle.loads", "pickle.Unpickler"):
                offenders.append(f"{path.name}: {function}")
            if function == "torch.load":
                weights_only = [k for k in node.keywords if k.arg == "weights_only"]
                if not (
                    weights_only
                    and isinstance(weights_only[0].value, ast.Constant)
                    and weights_only[0].value.value is True
                ):
                    offenders.append(f"{path.name}:{node.lineno}: torch.load without weights_only=True")
    assert offenders == []
