"""Frames whose class shows in their texture, for tests that must show a model learning: "healthy"
frames are smooth blotches, "neoplastic" frames noisy stripes of random direction and phase; every
frame has its own brightness and contrast, and every patient its own examination."""

from __future__ import annotations

import hashlib
import io

import numpy as np
from PIL import Image

from annotations.models import LabelTask
from records import media
from records.models import Frame, Project
from tests.factories import (
    ExaminationFactory,
    FrameFactory,
    LabelChoiceFactory,
    LabelTaskFactory,
    PatientFactory,
)

SIZE = 48


def texture(label: str, rng: np.random.Generator, size: int = SIZE) -> Image.Image:
    if label == "healthy":
        coarse = rng.normal(0, 1, (size // 8, size // 8))
        blotches = Image.fromarray(_to_bytes(np.kron(coarse, np.ones((8, 8))))).resize(
            (size, size), Image.Resampling.BILINEAR
        )
        pixels = np.asarray(blotches, dtype=np.float64)
    else:
        yy, xx = np.mgrid[0:size, 0:size]
        angle = rng.uniform(0, np.pi)
        phase = (xx * np.cos(angle) + yy * np.sin(angle)) * rng.uniform(1.2, 1.8) + rng.uniform(0, 2 * np.pi)
        pixels = np.sin(phase) + rng.normal(0, 0.6, (size, size))
        pixels = _to_bytes(pixels).astype(np.float64)
    pixels = pixels * rng.uniform(0.7, 1.0) + rng.uniform(0, 40)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "L")


def _to_bytes(values: np.ndarray) -> np.ndarray:
    span = float(np.ptp(values)) or 1.0
    return ((values - values.min()) / span * 255).astype(np.uint8)


def texture_frame(examination: object, label: str, rng: np.random.Generator) -> Frame:
    buffer = io.BytesIO()
    texture(label, rng).save(buffer, format="PNG")
    png = buffer.getvalue()
    sha256 = hashlib.sha256(png).hexdigest()
    relative = media.content_path("frames", sha256, ".png")
    media.save_bytes(relative, png)
    return FrameFactory.create(
        examination=examination, sha256=sha256, file=relative, file_bytes=len(png), width=SIZE, height=SIZE,
        reference_label=label,
    )  # fmt: skip


def diagnosis_task(project: Project) -> LabelTask:
    task = LabelTaskFactory.create(project=project, key="diagnosis", name="Diagnosis")
    LabelChoiceFactory.create(task=task, value="healthy", order=0)
    LabelChoiceFactory.create(task=task, value="neoplastic", order=1)
    return task


def texture_dataset(project: Project, *, patients: int = 8, per_class: int = 6, seed: int = 0) -> list[Frame]:
    """`patients` patients with `per_class` frames of each class, the class as the frames'
    reference label (site "colon" for even patients, "ileum" for odd ones)."""
    rng = np.random.default_rng(seed)
    frames = []
    for index in range(patients):
        examination = ExaminationFactory.create(
            patient=PatientFactory.create(project=project),
            anatomical_site="colon" if index % 2 == 0 else "ileum",
        )
        for _ in range(per_class):
            for label in ("healthy", "neoplastic"):
                frames.append(texture_frame(examination, label, rng))
    return frames
