"""What training code reads: the ImageFolder export opens with torchvision's ImageFolder and timm's
folder dataset, with the classes and images the manifest says."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

import inference.ml  # noqa: F401  # the torchvision shim, before torchvision is imported
from annotations.datasets import LabelSource
from tests.exports.support import (
    HEALTHY,
    NEOPLASTIC,
    archive_path,
    build_dataset,
    build_export,
    export_params,
    metadata_rows,
    read_members,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def extracted(tmp_path: Path):
    data = build_dataset(patients=8, frames_per_patient=3)
    snapshot = build_export(export_params(data, format="imagefolder", label_source=LabelSource.REFERENCE))
    with zipfile.ZipFile(archive_path(snapshot)) as archive:
        archive.extractall(tmp_path)
    return tmp_path, metadata_rows(read_members(snapshot))


def test_torchvision_imagefolder_reads_each_split_with_the_exported_labels(extracted):
    from torchvision.datasets import ImageFolder

    root, rows = extracted
    manifest = json.loads((root / "manifest.json").read_text())
    for side in ("train", "val", "test"):
        dataset = ImageFolder(str(root / side))
        expected = {row["file_name"]: row["label"] for row in rows if row["split"] == side}
        assert len(dataset) == len(expected) == manifest["counts"]["splits"][side]["frames"]
        assert set(dataset.classes) <= {HEALTHY, NEOPLASTIC}
        for path, target in dataset.samples:
            relative = Path(path).relative_to(root).as_posix()
            assert dataset.classes[target] == expected[relative]
        image, target = dataset[0]
        assert image.size == (48, 40)


def test_timm_image_dataset_reads_the_training_folder(extracted):
    from timm.data import ImageDataset

    root, rows = extracted
    dataset = ImageDataset(str(root / "train"))

    expected = sorted(row["label"] for row in rows if row["split"] == "train")
    assert len(dataset) == len(expected)
    names = dataset.reader.class_to_idx
    targets = [dataset[position][1] for position in range(len(dataset))]
    found = sorted(next(name for name, index in names.items() if index == target) for target in targets)
    assert found == expected
