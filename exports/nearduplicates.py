"""Near-duplicate frames within an examination, by a 64-bit difference hash (dHash).

Consecutive video frames of a still probe are nearly the same image; in a dataset they weigh one
view many times. dHash: the frame in grayscale, shrunk to 9x8, one bit per horizontally adjacent
pixel pair (is the left one brighter?). Two frames whose hashes differ in at most `distance` bits
are near duplicates. Written with Pillow and numpy (the `imagehash` package would add a dependency
for these few lines).

Frames are compared only within their examination, in the export's order (patient, examination,
sequence, index): a frame is dropped when it is a near duplicate of a frame already kept, so the
first of a run of similar frames stays.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image

from annotations.datasets import FrameRecord

HASH_WIDTH = 8
HASH_BITS = HASH_WIDTH * HASH_WIDTH


def dhash(source: Path | IO[bytes]) -> int:
    """The 64-bit difference hash of an image file (a path or an open binary file)."""
    with Image.open(source) as image:
        image.draft("L", (HASH_WIDTH * 4, HASH_WIDTH * 4))  # JPEG decodes smaller; PNG ignores it
        small = image.convert("L").resize((HASH_WIDTH + 1, HASH_WIDTH), Image.Resampling.BILINEAR)
    pixels = np.asarray(small, dtype=np.int16)
    bits = (pixels[:, :-1] > pixels[:, 1:]).flatten()
    return int(np.packbits(bits).view(">u8")[0])


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


@dataclass
class NearDuplicates:
    kept: list[FrameRecord]
    removed: dict[int, int] = field(default_factory=dict)  # removed frame id -> the kept frame id it repeats


class _KeptHashes:
    """The hashes kept so far in one examination, compared with a new one in a single numpy step."""

    def __init__(self) -> None:
        self.hashes = np.zeros(64, dtype=np.uint64)
        self.frame_ids: list[int] = []

    def nearest(self, value: int) -> tuple[int, int] | None:
        """(distance, frame id) of the closest kept hash, None when nothing is kept yet."""
        count = len(self.frame_ids)
        if not count:
            return None
        distances = np.bitwise_count(self.hashes[:count] ^ np.uint64(value))
        best = int(np.argmin(distances))
        return int(distances[best]), self.frame_ids[best]

    def add(self, value: int, frame_id: int) -> None:
        count = len(self.frame_ids)
        if count == len(self.hashes):
            self.hashes = np.concatenate([self.hashes, np.zeros(count, dtype=np.uint64)])
        self.hashes[count] = value
        self.frame_ids.append(frame_id)


def remove_near_duplicates(
    frames: Sequence[FrameRecord],
    *,
    distance: int,
    read: Callable[[FrameRecord], bytes],
    progress: Callable[[int], None] | None = None,
) -> NearDuplicates:
    """Keep the first of each group of near-duplicate frames of an examination (`frames` in order)."""
    result = NearDuplicates(kept=[])
    kept: dict[int, _KeptHashes] = {}
    hash_of_content: dict[str, int] = {}  # sha256 -> dHash: identical files are decoded once
    for position, frame in enumerate(frames):
        value = hash_of_content.get(frame.sha256)
        if value is None:
            value = hash_of_content[frame.sha256] = dhash(io.BytesIO(read(frame)))
        earlier = kept.setdefault(frame.examination_id, _KeptHashes())
        nearest = earlier.nearest(value)
        if nearest is not None and nearest[0] <= distance:
            result.removed[frame.frame_id] = nearest[1]
        else:
            earlier.add(value, frame.frame_id)
            result.kept.append(frame)
        if progress is not None:
            progress(position + 1)
    return result
