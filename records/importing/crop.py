"""Automatic black-border / circular-field detection.

CLE and endoscopy frames show the tissue inside a bright field of view (a disc for fibre-bundle pCLE,
an octagon for many endoscopes) on black, often with small burned-in overlays (device logo, scale
bar, date) in the black corners. The box of the field is recorded with the frame so that training
and display can crop; the stored image itself is never cut.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageFilter

# Pixels brighter than this (0-255, after block averaging and a median) belong to the field. Both
# filters remove sensor noise in the border first, so a low threshold still keeps dark tissue inside
# the field.
FIELD_THRESHOLD = 12
# A row or column counts as "in the field" when at least this share of it is bright; single stray
# pixels and thin text strokes in the border stay below it.
MIN_COVERAGE = 0.03
# Work on an image of about this size: detection is then ~1 ms whatever the source resolution.
WORKING_SIDE = 256
# A box this close to the whole image is no crop at all.
WHOLE_IMAGE_SHARE = 0.98


def detect_field_of_view(image: Image.Image) -> list[int] | None:
    """[left, top, right, bottom] of the non-black field of view, or None when there is no border.

    Rows and columns are projected; the field is the longest run of covered rows (then columns
    within those rows, then rows again within those columns), so an overlay separated from the
    field by black does not widen the box.
    """
    gray = image if image.mode == "L" else image.convert("L")
    factor = max(1, min(gray.width, gray.height) // WORKING_SIDE)
    small = gray.reduce(factor) if factor > 1 else gray
    # A 3x3 median removes isolated noisy pixels and one-pixel strokes of burned-in text.
    small = small.filter(ImageFilter.MedianFilter(3))
    bright = np.asarray(small) > FIELD_THRESHOLD
    if not bright.any():
        return None

    rows = _longest_run(bright.mean(axis=1) >= MIN_COVERAGE)
    if rows is None:
        return None
    columns = _longest_run(bright[rows[0] : rows[1]].mean(axis=0) >= MIN_COVERAGE)
    if columns is None:
        return None
    rows = _longest_run(bright[:, columns[0] : columns[1]].mean(axis=1) >= MIN_COVERAGE) or rows

    left = columns[0] * factor
    top = rows[0] * factor
    right = gray.width if columns[1] >= small.width else min(gray.width, columns[1] * factor)
    bottom = gray.height if rows[1] >= small.height else min(gray.height, rows[1] * factor)
    if (right - left) >= WHOLE_IMAGE_SHARE * gray.width and (bottom - top) >= WHOLE_IMAGE_SHARE * gray.height:
        return None
    return [int(left), int(top), int(right), int(bottom)]


def _longest_run(covered: NDArray[np.bool_]) -> tuple[int, int] | None:
    """(start, stop) of the longest run of True, bridging gaps of up to 2 % of the length (a dark
    stripe of tissue inside the field must not split it)."""
    indices = np.flatnonzero(covered)
    if indices.size == 0:
        return None
    max_gap = max(1, len(covered) // 50)
    breaks = np.flatnonzero(np.diff(indices) > max_gap + 1)
    starts = np.concatenate(([indices[0]], indices[breaks + 1]))
    stops = np.concatenate((indices[breaks], [indices[-1]])) + 1
    best = int(np.argmax(stops - starts))
    return int(starts[best]), int(stops[best])
