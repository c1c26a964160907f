"""Video frames to pixels: the fast luma path gives exactly what swscale's conversion gives."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from records.importing.video import _to_pixels, decode_frames
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


# Widths whose plane rows are padded (line_size > width), which the lookup must skip.
EVERY_LUMA_EVEN_WIDTH = np.tile(np.arange(256, dtype=np.uint8), 17)[: 66 * 62].reshape(66, 62)
EVERY_LUMA_ODD_WIDTH = np.tile(np.arange(256, dtype=np.uint8), 17)[: 65 * 63].reshape(65, 63)


@pytest.mark.parametrize("pixel_format", ["yuv420p", "yuvj420p", "yuv422p", "yuv444p"])
@pytest.mark.parametrize("color_range", [0, 1, 2], ids=["unspecified", "limited", "full"])
@pytest.mark.parametrize(
    "luma", [EVERY_LUMA_EVEN_WIDTH, EVERY_LUMA_ODD_WIDTH], ids=["even-width", "odd-width"]
)
def test_gray_frames_match_swscale_for_every_luma_value(
    pixel_format: str, color_range: int, luma: np.ndarray
) -> None:
    # Even widths go through the two-pixel table, odd ones through the one-pixel table.
    frame = _frame(pixel_format, color_range, luma)
    assert frame.planes[0].line_size > frame.width

    pixels = _to_pixels(frame)

    assert pixels.dtype == np.uint8 and pixels.shape == luma.shape and pixels.flags.owndata
    assert np.array_equal(pixels, frame.to_ndarray(format="gray"))


def test_limited_range_luma_is_stretched_to_full_range() -> None:
    pixels = _to_pixels(_frame("yuv420p", 1, EVERY_LUMA))
    assert pixels[EVERY_LUMA == 16].max() == 0 and pixels[EVERY_LUMA == 235].min() == 255


def test_a_coloured_frame_stays_rgb() -> None:
    frame = _frame("yuv420p", 1, EVERY_LUMA, chroma=200)
    pixels = _to_pixels(frame)
    assert pixels.shape == (64, 64, 3)
    assert np.array_equal(pixels, frame.to_ndarray(format="rgb24"))


def test_real_pcle_frames_match_swscale(realdata: Path) -> None:
    counter = [0]
    for decoded in decode_frames(realdata / PCLE_VIDEO, every_nth=37, counter=counter):
        pixels = decoded.pixels()
        assert pixels.ndim == 2
        assert np.array_equal(pixels, decoded.frame.to_ndarray(format="gray"))
    assert counter[0] == 260
