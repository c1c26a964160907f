"""Screenshots for the user guides (docs/guide-*.md), taken by the browser tests themselves.

`docs_screenshot(page, name)` writes `docs/images/<name>.png` only when CLEAR_DOCS_SCREENSHOTS=1, so
that a normal run (CI included) never writes into the repository; otherwise it does nothing at all,
not even a screenshot, and changes nothing the test sees. With the variable set, the browser
context's viewport is 1280x800 (conftest's `browser_context_args`), so the guides' images share one
size. The tests' data are generated (factory frames, made-up usernames), so no personal data can
reach an image. Regenerate them with:

    CLEAR_DOCS_SCREENSHOTS=1 .venv/bin/pytest tests/browser
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Sequence
from pathlib import Path

from PIL import Image
from playwright.sync_api import Locator, Page, ViewportSize

ENABLED_VARIABLE = "CLEAR_DOCS_SCREENSHOTS"
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
# An image above this many bytes is reduced to a 256-colour palette: the UI's flat colours survive
# it, and the repository keeps each image small (the guides hold about twenty).
PALETTE_ABOVE_BYTES = 120_000
MAX_WHOLE_PAGE_HEIGHT = 3200
# A masked element becomes a flat box of the app's panel grey (Playwright's default is magenta).
MASK_COLOR = "#2a2e35"
NAME = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")


def docs_screenshots_enabled() -> bool:
    return os.environ.get(ENABLED_VARIABLE) == "1"


def docs_screenshot(
    page: Page,
    name: str,
    *,
    whole_page: bool = False,
    scroll_to: Locator | None = None,
    mask: Sequence[Locator] = (),
    directory: Path = DOCS_IMAGES,
) -> Path | None:
    """Save the page as `<directory>/<name>.png` when enabled; return the path, or None when not.

    `scroll_to` brings an element into view first (scrolling changes nothing a test asserts).
    `mask` covers elements with a flat box: an image that is not generated test data (a real
    sample read from ../shared) must not end up in the repository.
    `whole_page` shows all of a long page (a form, a dashboard): the app scrolls inside `.content`,
    not the document, so Playwright's full_page sees one screen only; the viewport is made as tall
    as the content (at most MAX_WHOLE_PAGE_HEIGHT) for the shot and set back right after.
    """
    if not NAME.fullmatch(name):
        raise ValueError(f"screenshot name {name!r}: lower-case words joined by hyphens")
    if not docs_screenshots_enabled():
        return None
    if scroll_to is not None:
        scroll_to.scroll_into_view_if_needed()
    png = whole_page_screenshot(page, mask) if whole_page else viewport_screenshot(page, mask)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.png"
    path.write_bytes(compact_png(png))
    return path


def viewport_screenshot(page: Page, mask: Sequence[Locator]) -> bytes:
    return page.screenshot(animations="disabled", caret="hide", mask=list(mask), mask_color=MASK_COLOR)


def whole_page_screenshot(page: Page, mask: Sequence[Locator]) -> bytes:
    viewport = page.viewport_size or VIEWPORT
    needed = int(
        page.evaluate(
            """() => {
                const content = document.querySelector(".content");
                if (!content) return document.documentElement.scrollHeight;
                return Math.ceil(content.getBoundingClientRect().top + content.scrollHeight);
            }"""
        )
    )
    height = min(max(needed, viewport["height"]), MAX_WHOLE_PAGE_HEIGHT)
    page.set_viewport_size({"width": viewport["width"], "height": height})
    try:
        return viewport_screenshot(page, mask)
    finally:
        page.set_viewport_size(viewport)


def compact_png(png: bytes) -> bytes:
    """The screenshot as it is when small, else as an optimised 256-colour palette PNG."""
    if len(png) <= PALETTE_ABOVE_BYTES:
        return png
    image = Image.open(io.BytesIO(png)).convert("RGB")
    palette = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    palette.save(buffer, format="PNG", optimize=True)
    return min(png, buffer.getvalue(), key=len)
