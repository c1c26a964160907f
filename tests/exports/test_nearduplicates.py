"""Near-duplicate removal within an examination by difference hash (exports/nearduplicates.py)."""

from __future__ import annotations

import numpy as np
import pytest

from annotations.datasets import LabelSource, frame_records
from annotations.splits import NoSplit
from exports.nearduplicates import dhash, hamming, remove_near_duplicates
from records import media
from records.models import Frame
from tests.exports.support import (
    build_dataset,
    build_export,
    export_params,
    frame_from_pixels,
    metadata_rows,
    read_members,
)
from tests.factories import ExaminationFactory

pytestmark = pytest.mark.django_db


def _texture(seed: int, size: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(8, 8)).astype(np.float64)
    return np.kron(coarse, np.ones((size // 8, size // 8))).astype(np.uint8)


def _noisy(pixels: np.ndarray, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).integers(-3, 4, size=pixels.shape)
    return np.clip(pixels.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def test_dhash_is_close_for_a_slightly_noisy_copy_and_far_for_another_image(tmp_path):
    from PIL import Image

    paths = {}
    for name, pixels in {"a": _texture(1), "a_noisy": _noisy(_texture(1), 9), "b": _texture(2)}.items():
        paths[name] = tmp_path / f"{name}.png"
        Image.fromarray(pixels, mode="L").save(paths[name])

    assert hamming(dhash(paths["a"]), dhash(paths["a_noisy"])) <= 4
    assert hamming(dhash(paths["a"]), dhash(paths["b"])) > 16
    assert 0 <= dhash(paths["a"]) < 2**64


def test_the_first_of_near_duplicates_in_an_examination_is_kept_and_other_examinations_are_untouched():
    examination = ExaminationFactory.create()
    other = ExaminationFactory.create(patient=examination.patient)
    first = frame_from_pixels(examination, _texture(1), index_in_video=None)
    repeat = frame_from_pixels(examination, _noisy(_texture(1), 5))
    distinct = frame_from_pixels(examination, _texture(2))
    elsewhere = frame_from_pixels(other, _noisy(_texture(1), 6))
    records = frame_records(Frame.objects.filter(pk__in=[first.pk, repeat.pk, distinct.pk, elsewhere.pk]))
    records = sorted(records, key=lambda record: record.frame_id)

    result = remove_near_duplicates(records, distance=4, read=lambda record: media.read_bytes(record.file))

    assert [record.frame_id for record in result.kept] == [first.pk, distinct.pk, elsewhere.pk]
    assert result.removed == {repeat.pk: first.pk}
    # Distance 0 keeps everything that is not pixel-for-pixel the same hash.
    strict = remove_near_duplicates(records, distance=0, read=lambda record: media.read_bytes(record.file))
    assert len(strict.kept) >= 3


def test_an_export_with_near_duplicate_removal_counts_what_it_left_out():
    data = build_dataset(patients=2, frames_per_patient=2)
    examination = data.examinations[0]
    kept = frame_from_pixels(examination, _texture(3))
    frame_from_pixels(examination, _noisy(_texture(3), 1))
    frame_from_pixels(examination, _noisy(_texture(3), 2))

    snapshot = build_export(
        export_params(data, split=NoSplit(), label_source=LabelSource.REFERENCE, remove_near_duplicates=True)
    )

    frames = {int(row["frame_id"]) for row in metadata_rows(read_members(snapshot))}
    assert kept.pk in frames and len(frames) == 5
    assert snapshot.counts["near_duplicates_removed"] == 2
