"""Synthetic CLE-like demo data: grayscale frames with a circular field of view, and a source folder.

Nothing here is real patient data. The frames imitate what a probe-based confocal laser
endomicroscope shows (a round field of view on black, fluorescein-bright cell borders, crypts with a
dark lumen) closely enough that the labelling UI, previews, cropping and models have something
plausible to work on. Each patient has its own brightness, contrast and cell size; "healthy" and
"neoplastic" examinations differ in texture (regular round crypts versus crowded, irregular cells
and dark distorted structures), so that a tiny model trained on the demo can learn something.

Everything is seeded: the same call writes byte-identical files, which keeps `seed_demo` idempotent.
"""

from __future__ import annotations

import csv
import io
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

FRAME_WIDTH = 576
FRAME_HEIGHT = 592
HEALTHY = "healthy"
NEOPLASTIC = "neoplastic"
DEVICE = "pCLE (synthetic demo probe)"
METADATA_FILENAME = "metadata.csv"
SEQUENCE = "seq1"


@dataclass(frozen=True)
class DemoExamination:
    patient: str  # source identifier; the import turns it into a pseudonym
    code: str
    anatomical_site: str
    reference_label: str  # HEALTHY or NEOPLASTIC, "histopathology" in the demo's fiction
    frames: int


DEMO_EXAMINATIONS: tuple[DemoExamination, ...] = (
    DemoExamination("patient01", "E1", "colon", HEALTHY, 8),
    DemoExamination("patient01", "E2", "colon", NEOPLASTIC, 8),
    DemoExamination("patient02", "E1", "oral cavity", NEOPLASTIC, 8),
    DemoExamination("patient02", "E2", "oral cavity", HEALTHY, 8),
    DemoExamination("patient03", "E1", "larynx", HEALTHY, 8),
    DemoExamination("patient03", "E2", "larynx", NEOPLASTIC, 8),
)


def _seed(*parts: str | int) -> int:
    # zlib.crc32 rather than hash(): str hashes are salted per process, and the files must not change.
    return zlib.crc32("/".join(str(part) for part in parts).encode())


def _blurred_noise(rng: np.random.Generator, radius: float, size: tuple[int, int]) -> np.ndarray:
    """Smooth random field in [0, 1]: the diffuse fluorescence of the tissue."""
    noise = Image.fromarray(rng.integers(0, 256, size=(size[1], size[0]), dtype=np.uint8), mode="L")
    field = np.asarray(noise.filter(ImageFilter.GaussianBlur(radius)), dtype=np.float32)
    field -= field.min()
    return field / max(float(field.max()), 1e-6)


def _structures(rng: np.random.Generator, label: str, cell_scale: float, size: tuple[int, int]) -> np.ndarray:
    """Bright cell borders and crypts in [0, 1]."""
    width, height = size
    layer = Image.new("L", size, 0)
    draw = ImageDraw.Draw(layer)
    if label == HEALTHY:
        # Regular crypts on a jittered grid: a bright epithelial ring around a dark lumen.
        step = int(70 * cell_scale)
        for y in range(-step // 2, height + step, step):
            for x in range(-step // 2, width + step, step):
                cx = x + rng.normal(0, step * 0.08) + (step / 2 if (y // step) % 2 else 0)
                cy = y + rng.normal(0, step * 0.08)
                r = step * rng.uniform(0.30, 0.38)
                draw.ellipse((cx - r, cy - r * 0.9, cx + r, cy + r * 0.9), fill=int(rng.uniform(170, 230)))
                inner = r * rng.uniform(0.45, 0.6)
                draw.ellipse((cx - inner, cy - inner * 0.9, cx + inner, cy + inner * 0.9), fill=15)
        # Small round goblet-like cells between the crypts.
        for _ in range(int(120 / cell_scale)):
            cx, cy = rng.uniform(0, width), rng.uniform(0, height)
            r = rng.uniform(2.5, 4.5) * cell_scale
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=int(rng.uniform(200, 255)))
    else:
        # Dark, distorted crypt remnants of irregular outline and size, with a thickened bright rim...
        for _ in range(int(rng.integers(5, 10))):
            cx, cy = rng.uniform(0, width), rng.uniform(0, height)
            mean_r = rng.uniform(18, 45) * cell_scale
            angles = np.sort(rng.uniform(0, 2 * np.pi, size=int(rng.integers(6, 11))))
            radii = mean_r * rng.uniform(0.55, 1.35, size=angles.size)
            outline = [(cx + r * np.cos(a), cy + r * np.sin(a)) for a, r in zip(angles, radii, strict=True)]
            draw.polygon(outline, fill=int(rng.uniform(0, 30)), outline=int(rng.uniform(150, 220)), width=4)
        # ...among crowded, irregular cells of varied size and brightness.
        for _ in range(int(420 / cell_scale)):
            cx, cy = rng.uniform(0, width), rng.uniform(0, height)
            rx, ry = rng.uniform(3, 10) * cell_scale, rng.uniform(2.5, 8) * cell_scale
            draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=int(rng.uniform(80, 255)))
    blurred = layer.filter(ImageFilter.GaussianBlur(1.6 * cell_scale))
    return np.asarray(blurred, dtype=np.float32) / 255.0


def demo_frame(*, patient: str, examination: str, label: str, index: int) -> Image.Image:
    """One synthetic CLE frame, 576x592, mode L, black outside a circular field of view."""
    size = (FRAME_WIDTH, FRAME_HEIGHT)
    patient_rng = np.random.default_rng(_seed("patient", patient))
    gain = patient_rng.uniform(0.75, 1.05)  # per-patient laser power / gain
    cell_scale = patient_rng.uniform(0.85, 1.2)  # per-patient tissue scale
    rng = np.random.default_rng(_seed("frame", patient, examination, label, index))

    tissue = 0.55 * _blurred_noise(rng, 6.0, size) + 0.25 * _blurred_noise(rng, 1.2, size)
    image = 0.35 * tissue + 0.75 * _structures(rng, label, cell_scale, size)
    image = image * gain + rng.normal(0, 0.035, size=image.shape)  # detector noise

    # The fibre bundle's round field of view, with the vignetting a probe shows towards its edge.
    yy, xx = np.mgrid[0:FRAME_HEIGHT, 0:FRAME_WIDTH].astype(np.float32)
    cx, cy = FRAME_WIDTH / 2 + rng.normal(0, 3), FRAME_HEIGHT / 2 + rng.normal(0, 3)
    radius = min(FRAME_WIDTH, FRAME_HEIGHT) / 2 - 12
    distance = np.hypot(xx - cx, yy - cy) / radius
    image *= np.clip(1.15 - 0.45 * distance**2, 0, 1)
    image[distance > 1.0] = 0.0

    pixels = np.clip(image * 255.0, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, mode="L")


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


@dataclass(frozen=True)
class DemoSource:
    root: Path
    metadata: Path
    frames: int
    written: int  # files that were missing or different and were (re)written


def write_demo_source(
    root: Path, examinations: tuple[DemoExamination, ...] = DEMO_EXAMINATIONS
) -> DemoSource:
    """Write `root/<patient>/<examination>/seq1/frame_NNN.png` and `root/metadata.csv`.

    The folder-per-patient layout the importer reads (records/importing/layout.py): the patient
    folder, then the examination code, then the acquisition sequence. The sheet has one row per
    examination with its device, site and reference label.

    Frames already there are left alone (they are written under a temporary name and renamed, so a
    file that exists is complete), so running this again is cheap and changes nothing.
    """
    root.mkdir(parents=True, exist_ok=True)
    frames = written = 0
    for exam in examinations:
        folder = root / exam.patient / exam.code / SEQUENCE
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(exam.frames):
            target = folder / f"frame_{index:03d}.png"
            frames += 1
            if target.is_file():
                continue
            image = demo_frame(
                patient=exam.patient, examination=exam.code, label=exam.reference_label, index=index
            )
            _write_atomic(target, _png_bytes(image))
            written += 1
    metadata = root / METADATA_FILENAME
    text = _metadata_csv(examinations)
    if not metadata.is_file() or metadata.read_text() != text:
        _write_atomic(metadata, text.encode())
    return DemoSource(root=root, metadata=metadata, frames=frames, written=written)


def _write_atomic(target: Path, data: bytes) -> None:
    # An interrupted seed must not leave a truncated PNG that the next run would take as complete.
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)


def _metadata_csv(examinations: tuple[DemoExamination, ...]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        ["patient", "examination", "device", "anatomical_site", "reference_label", "reference_source"]
    )
    for exam in examinations:
        writer.writerow(
            [exam.patient, exam.code, DEVICE, exam.anatomical_site, exam.reference_label, "histopathology"]
        )
    return buffer.getvalue()
