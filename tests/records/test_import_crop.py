"""Automatic black-border / circular-field detection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from records.importing.crop import detect_field_of_view
from records.models import Frame
from tests.factories import ProjectFactory
from tests.records.import_support import PCLE_VIDEO, gray_frame, run_import, save


def circular_field(
    *, width: int = 640, height: int = 480, centre: tuple[int, int] = (330, 250), radius: int = 200
) -> Image.Image:
    """A noisy disc of tissue on a noisy black border, with a burned-in logo and scale bar."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width]
    disc = (yy - centre[1]) ** 2 + (xx - centre[0]) ** 2 < radius**2
    pixels = np.clip(rng.normal(6, 4, (height, width)), 0, 255)
    pixels[disc] = np.clip(rng.normal(100, 40, int(disc.sum())), 0, 255)
    image = Image.fromarray(pixels.astype(np.uint8), mode="L")
    draw = ImageDraw.Draw(image)
    draw.text((5, 5), "Cellvizio 2024", fill=255)
    draw.rectangle((560, 450, 620, 453), fill=255)
    return image


def test_circular_field_box_is_found_despite_noise_and_overlays() -> None:
    box = detect_field_of_view(circular_field())
    assert box is not None
    expected = [130, 50, 530, 450]
    assert all(abs(found - wanted) <= 4 for found, wanted in zip(box, expected, strict=True)), box


def test_colour_images_work_too() -> None:
    assert detect_field_of_view(circular_field().convert("RGB")) == detect_field_of_view(circular_field())


def test_no_box_when_the_field_fills_the_image() -> None:
    assert detect_field_of_view(gray_frame(1, size=(200, 100)).point(lambda value: 50 + value // 2)) is None
    assert detect_field_of_view(Image.new("L", (100, 100), 0)) is None


def test_real_pcle_frame_box_stays_on_the_disc(realdata: Path) -> None:
    frames = sorted((realdata / PCLE_VIDEO).parent.glob("S01V01_frames/*.png"))
    with Image.open(frames[10]) as image:
        box = detect_field_of_view(image)
    # The Cellvizio disc spans the whole width and nearly all the height: only thin bands go.
    assert box is None or (box[2] - box[0] >= 560 and box[3] - box[1] >= 560)


@pytest.mark.django_db
def test_crop_option_stores_the_box_and_keeps_the_original(tmp_path: Path, media_root: Path) -> None:
    save(circular_field(), tmp_path / "src" / "patient1" / "field.png")
    run_import(ProjectFactory.create(), [tmp_path / "src"], crop=True)
    frame = Frame.objects.get()
    assert frame.crop_box is not None and len(frame.crop_box) == 4
    assert (frame.width, frame.height) == (640, 480)
    with Image.open(media_root / frame.file) as stored:
        assert stored.size == (640, 480)


@pytest.mark.django_db
def test_without_the_crop_option_no_box_is_stored(tmp_path: Path) -> None:
    save(circular_field(), tmp_path / "src" / "patient1" / "field.png")
    run_import(ProjectFactory.create(), [tmp_path / "src"])
    assert Frame.objects.get().crop_box is None
