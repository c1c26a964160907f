"""Helpers shared by the import pipeline tests (not a test module itself)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from records.importing.options import ImportOptions, ImportReport
from records.importing.service import import_sources

PCLE_VIDEO = "amphybio_endomicroscopy-analysis/data-sample/comparative-sample/main/S01/1/S01V01.mpeg"


def run_import(
    project: Any,  # a Project (factory-boy instances type as their factory)
    sources: list[Path],
    *,
    metadata: Path | None = None,
    progress: Any = None,
    **options: Any,
) -> ImportReport:
    return import_sources(
        project_id=project.pk,
        sources=sources,
        metadata=metadata,
        options=ImportOptions(**options),
        progress=progress,
    )


def gray_frame(seed: int, *, size: tuple[int, int] = (64, 48)) -> Image.Image:
    """A small grayscale frame whose content depends on `seed` (so its hash does too)."""
    rng = np.random.default_rng(seed)
    width, height = size
    return Image.fromarray(rng.integers(0, 256, size=(height, width), dtype=np.uint8), mode="L")


def color_frame(seed: int, *, size: tuple[int, int] = (64, 48)) -> Image.Image:
    rng = np.random.default_rng(seed)
    width, height = size
    return Image.fromarray(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8), mode="RGB")


def save(image: Image.Image, path: Path, **params: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **params)
    return path


def error_paths(report: ImportReport) -> dict[str, str]:
    return {entry["path"]: entry["error"] for entry in report.errors}


def skipped_paths(report: ImportReport) -> dict[str, str]:
    return {entry["path"]: entry["reason"] for entry in report.skipped}


def media_files(root: Path, kind: str) -> list[Path]:
    """Real files (not temporary ones) of `kind` (frames, previews, videos) below MEDIA_ROOT."""
    folder = root / kind
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.rglob("*") if path.is_file() and not path.name.startswith("."))
