"""Video frames to images: the fast luma path gives exactly what swscale's conversion gives."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from records.importing.video import _to_image, decode_frames
from tests.records.import_support import PCLE_VIDEO


def _frame(pixel_format: str, color_range: int, luma: np.ndarray, chroma: int = 128) -> av.VideoFrame:
    height, width = luma.shape
    frame = av.VideoFrame(width, height, pixel_format)
    for index, plane in enumerate(frame.planes):
        rows = np.full((plane.height, plane.line_size), chroma, dtype=np.uint8)
        if index == 0:
            rows[:, :width] = luma
        plane.update(rows.tobytes())
    frame.color_range = color_range
    return frame


EVERY_LUMA = np.tile(np.arange(256, dtype=np.uint8), 16).reshape(64, 64)


@pytest.mark.parametrize("pixel_format", ["yuv420p", "yuvj420p", "yuv422p", "yuv444p"])
@pytest.mark.parametrize("color_range", [0, 1, 2], ids=["unspecified", "limited", "full"])
def test_gray_frames_match_swscale_for_every_luma_value(pixel_format: str, color_range: int) -> None:
    frame = _frame(pixel_format, color_range, EVERY_LUMA)

    image = _to_image(frame)

    assert image.mode == "L"
    assert np.array_equal(np.asarray(image), frame.to_ndarray(format="gray"))


def test_limited_range_luma_is_stretched_to_full_range() -> None:
    image = _to_image(_frame("yuv420p", 1, EVERY_LUMA))
    pixels = np.asarray(image)
    assert pixels[EVERY_LUMA == 16].max() == 0 and pixels[EVERY_LUMA == 235].min() == 255


def test_a_coloured_frame_stays_rgb() -> None:
    frame = _frame("yuv420p", 1, EVERY_LUMA, chroma=200)
    image = _to_image(frame)
    assert image.mode == "RGB"
    assert np.array_equal(np.asarray(image), frame.to_ndarray(format="rgb24"))


def test_real_pcle_frames_match_swscale(realdata: Path) -> None:
    counter = [0]
    for decoded in decode_frames(realdata / PCLE_VIDEO, every_nth=37, counter=counter):
        image = decoded.image()
        assert image.mode == "L"
        assert np.array_equal(np.asarray(image), decoded.frame.to_ndarray(format="gray"))
    assert counter[0] == 260
