"""export_table: what a training run reads of an export snapshot, without extracting the images."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from records.importing import export_archive
from records.importing.export_archive import ExportArchiveRejected, export_table

TABLE = b"frame_id,sha256,label,split\n1,aa,healthy,train\n2,bb,neoplastic,test\n"
IMAGE = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def _archive(path: Path, *, table: bytes = TABLE, listed_table: bytes = TABLE, image: bytes = IMAGE) -> Path:
    """A CLEAR-style export ZIP: the table, one image and a manifest listing both (as built from
    `listed_table`, so that a different `table` is a member altered after the export)."""
    files = [
        {"path": "images/train/1.png", "sha256": hashlib.sha256(IMAGE).hexdigest(), "size": len(IMAGE)},
        {
            "path": "metadata.csv",
            "sha256": hashlib.sha256(listed_table).hexdigest(),
            "size": len(listed_table),
        },
    ]
    manifest = {"files": files, "snapshot_hash": "f" * 64, "parameters": {"format": "csv"}}
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("images/train/1.png", image)
        zf.writestr("metadata.csv", table)
        zf.writestr("manifest.json", json.dumps(manifest))
    return path


def test_the_table_is_read_and_checked_without_extracting_the_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    extracted: list[str] = []
    real_extract = export_archive.extract_zip

    def spying_extract(archive: Path, target: Path, **options: Any) -> Any:
        result = real_extract(archive, target, **options)
        extracted.extend(path.relative_to(target).as_posix() for path in result.files)
        return result

    monkeypatch.setattr(export_archive, "extract_zip", spying_extract)
    manifest, rows = export_table(_archive(tmp_path / "export.zip"))
    assert manifest["snapshot_hash"] == "f" * 64
    assert [(row["frame_id"], row["label"], row["split"]) for row in rows] == [
        ("1", "healthy", "train"),
        ("2", "neoplastic", "test"),
    ]
    assert sorted(extracted) == ["manifest.json", "metadata.csv"]


def test_a_damaged_image_does_not_matter_to_the_table(tmp_path: Path) -> None:
    # The run reads frames from the installation's own storage; the archive's images are not used.
    archive = _archive(tmp_path / "export.zip", image=IMAGE[:-1] + b"\x01")
    assert len(export_table(archive)[1]) == 2


def test_an_altered_table_is_refused(tmp_path: Path) -> None:
    altered = TABLE.replace(b"healthy", b"HEALTHY")  # same size, other content
    archive = _archive(tmp_path / "export.zip", table=altered)
    with pytest.raises(ExportArchiveRejected, match=r"metadata\.csv: does not match the manifest"):
        export_table(archive)


def test_a_listed_table_missing_from_the_archive_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "export.zip"
    _archive(archive)
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(tmp_path / "cut.zip", "w") as cut:
        for info in source.infolist():
            if info.filename != "metadata.csv":
                cut.writestr(info, source.read(info))
    with pytest.raises(ExportArchiveRejected, match=r"metadata\.csv: listed in the manifest but missing"):
        export_table(tmp_path / "cut.zip")
