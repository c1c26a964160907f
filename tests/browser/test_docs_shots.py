"""The guides' screenshot hook: nothing is written (nor taken) unless CLEAR_DOCS_SCREENSHOTS=1, and
large screenshots are reduced to a palette PNG with the same pixels' look and size."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Page

from tests.browser.docs_shots import MASK_COLOR, PALETTE_ABOVE_BYTES, compact_png, docs_screenshot


class FakePage:
    """Records each screenshot request and answers with a given PNG."""

    def __init__(self, png: bytes, *, content_height: int = 600) -> None:
        self.png = png
        self.content_height = content_height
        self.viewport_size = {"width": 1280, "height": 800}
        self.calls: list[dict[str, Any]] = []
        self.viewports: list[dict[str, int]] = []

    def screenshot(self, **options: Any) -> bytes:
        self.calls.append({**options, "viewport": dict(self.viewport_size)})
        return self.png

    def evaluate(self, script: str) -> int:
        return self.content_height

    def set_viewport_size(self, size: dict[str, int]) -> None:
        self.viewports.append(dict(size))
        self.viewport_size = dict(size)


def png_of(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def flat_ui_png() -> bytes:
    """A 1280x800 image of a few flat colours with noise in one corner, above the palette limit."""
    rng = np.random.default_rng(0)
    pixels = np.zeros((800, 1280, 3), dtype=np.uint8)
    pixels[:, :640] = (250, 250, 250)
    pixels[:, 640:] = (30, 60, 90)
    pixels[:300, :400] = rng.integers(0, 256, size=(300, 400, 1), dtype=np.uint8)
    return png_of(pixels)


def test_nothing_is_taken_or_written_without_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CLEAR_DOCS_SCREENSHOTS", raising=False)
    page = FakePage(png_of(np.zeros((4, 4, 3), dtype=np.uint8)))
    assert docs_screenshot(cast(Page, page), "workspace", directory=tmp_path) is None
    monkeypatch.setenv("CLEAR_DOCS_SCREENSHOTS", "0")
    assert docs_screenshot(cast(Page, page), "workspace", directory=tmp_path) is None
    assert page.calls == [] and list(tmp_path.iterdir()) == []


def test_with_the_variable_the_image_is_written_under_its_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CLEAR_DOCS_SCREENSHOTS", "1")
    small = png_of(np.full((8, 8, 3), 200, dtype=np.uint8))
    page = FakePage(small)
    path = docs_screenshot(cast(Page, page), "review-page", directory=tmp_path / "images")
    assert path == tmp_path / "images" / "review-page.png"
    assert path.read_bytes() == small  # small enough: kept as taken
    options = {"animations": "disabled", "caret": "hide", "mask": [], "mask_color": MASK_COLOR}
    assert page.calls == [{**options, "viewport": {"width": 1280, "height": 800}}]
    assert page.viewports == []  # the viewport is left alone


@pytest.mark.parametrize(("content_height", "shot_height"), [(2100, 2100), (500, 800), (9000, 3200)])
def test_a_whole_page_is_shot_in_a_viewport_as_tall_as_its_content_then_set_back(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, content_height: int, shot_height: int
) -> None:
    monkeypatch.setenv("CLEAR_DOCS_SCREENSHOTS", "1")
    page = FakePage(png_of(np.zeros((4, 4, 3), dtype=np.uint8)), content_height=content_height)
    docs_screenshot(cast(Page, page), "dashboard", whole_page=True, directory=tmp_path)
    assert [call["viewport"] for call in page.calls] == [{"width": 1280, "height": shot_height}]
    assert page.viewport_size == {"width": 1280, "height": 800}


@pytest.mark.parametrize("name", ["Review", "review page", "../review", "review_page", ""])
def test_a_name_that_is_not_hyphenated_lower_case_is_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lower-case"):
        docs_screenshot(cast(Page, FakePage(b"")), name, directory=tmp_path)


def test_a_large_screenshot_becomes_a_smaller_palette_png_of_the_same_size() -> None:
    original = flat_ui_png()
    assert len(original) > PALETTE_ABOVE_BYTES
    compacted = compact_png(original)
    assert len(compacted) < len(original)
    image = Image.open(io.BytesIO(compacted))
    assert (image.mode, image.size) == ("P", (1280, 800))
    # The flat areas keep their colours exactly.
    rgb = image.convert("RGB")
    assert rgb.getpixel((1000, 700)) == (30, 60, 90)
    assert rgb.getpixel((600, 700)) == (250, 250, 250)
