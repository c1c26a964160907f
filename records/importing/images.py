"""Turning one source image into what CLEAR stores: a metadata-free PNG and its sha256; and
rendering a stored frame's preview.

Everything here is pure (no database) so that it can run in worker threads: Pillow releases the GIL
while it decodes, encodes and resamples, so a small thread pool overlaps the work of several frames.
"""

from __future__ import annotations

import hashlib
import io
import struct
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings
from isal import isal_zlib
from numpy.typing import NDArray
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from records import media
from records.importing.crop import detect_field_of_view

# Stored frames are PNG with a fast deflate level: the import's throughput goal (>= 80 % of a bare
# decode + preview loop) leaves no room for zlib level 6-9, which cost 3-10x the encode time for
# files only ~10-20 % smaller. PNG stays lossless whatever the level. The file is written by
# `encode_png` below rather than Pillow's encoder, with ISA-L's deflate (python-isal, a zlib-format
# drop-in): for a 576x592 pCLE frame Pillow takes 9.2 ms, zlib level 1 4.4 ms, ISA-L level 1 1.1 ms,
# for files of 117, 105-120 and 115 kB. The PNG bytes therefore depend on the deflate library's
# version as well as the pixels; duplicates are judged by these bytes' sha256 within one
# installation, where the library is pinned.
PNG_COMPRESS_LEVEL = 1
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOR_TYPES = {"L": 0, "RGB": 2}
# Previews are JPEG: decoded natively by every browser, a grayscale frame's preview stays one-channel
# grayscale (libwebp has no grayscale mode), and encoding a 512 px preview takes 0.6 ms against
# 7.4 ms for WebP at its fastest effort level, which matters for video imports of thousands of frames.
PREVIEW_FORMAT = "JPEG"
PREVIEW_SUFFIX = ".jpg"
PREVIEW_QUALITY = 85
# Pillow's bilinear resize is a proper (antialiased) triangle filter when shrinking; bicubic looked
# no different at a 512 px preview and took 3.2 instead of 1.6 ms per 576x592 frame.
PREVIEW_RESAMPLE = Image.Resampling.BILINEAR

# Extensions of formats that CLEAR refuses but that users plausibly drop into a folder: they are
# opened and refused with a clear error instead of being skipped silently as "not an image".
_REFUSED_IMAGE_EXTENSIONS = frozenset(
    {".gif", ".ico", ".cur", ".apng", ".avif", ".heic", ".heif", ".jp2", ".j2k", ".jpx", ".psd"}
    | {".tga", ".pgm", ".ppm", ".pbm", ".pnm", ".qoi", ".icns", ".dcm", ".svg", ".pcx", ".eps"}
)


# open_image checks the pixel limit itself (see there); Pillow's own warning between the limit and
# twice it would only repeat that check, so it is silenced once, for the whole process.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


class ImageRejected(Exception):
    """A source file that is not an acceptable image; the message is shown to the user."""


@dataclass(frozen=True)
class PreparedFrame:
    """A frame ready to be recorded: its files are already in content-addressed storage."""

    sha256: str
    file: str
    file_bytes: int
    width: int
    height: int
    mode: str
    preview_file: str
    preview_width: int
    preview_height: int
    crop_box: list[int] | None
    created_files: tuple[str, ...]  # media files this preparation wrote (for clean-up on failure)


def image_extensions() -> frozenset[str]:
    """Lower-case suffixes treated as image candidates: the allowed formats' and known refused ones."""
    allowed = {name.upper() for name in settings.CLEAR_ALLOWED_IMAGE_FORMATS}
    registered = Image.registered_extensions()
    videos = {suffix.lower() for suffix in settings.CLEAR_ALLOWED_VIDEO_EXTENSIONS}
    return (
        frozenset(
            {suffix for suffix, name in registered.items() if name in allowed} | _REFUSED_IMAGE_EXTENSIONS
        )
        - videos
    )


def open_image(path: Path) -> Image.Image:
    """Open and fully decode `path` with CLEAR's safety rules, or raise ImageRejected.

    - Images over CLEAR_MAX_IMAGE_PIXELS are refused from their header, before any pixel is
      decoded. Pillow itself only warns above Image.MAX_IMAGE_PIXELS and errors above twice it;
      turning its warning into an error with warnings.catch_warnings() is not an option here,
      because the warning filters are process-wide and this runs in several threads at once (a
      refusal was observed to slip through), so the limit is checked explicitly instead.
    - Only formats in CLEAR_ALLOWED_IMAGE_FORMATS are accepted, judged by content, not extension.
    - Truncated files fail: img.load() raises and LOAD_TRUNCATED_IMAGES is never switched on.
    """
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise RuntimeError("ImageFile.LOAD_TRUNCATED_IMAGES is on; CLEAR refuses to import like that")
    Image.MAX_IMAGE_PIXELS = settings.CLEAR_MAX_IMAGE_PIXELS
    allowed = {name.upper() for name in settings.CLEAR_ALLOWED_IMAGE_FORMATS}
    limit: int = settings.CLEAR_MAX_IMAGE_PIXELS
    try:
        image = Image.open(path)
        try:
            if image.format not in allowed:
                raise ImageRejected(
                    f"image format {image.format} is not allowed (allowed: {', '.join(sorted(allowed))})"
                )
            if image.width * image.height > limit:
                raise ImageRejected(
                    f"image is too large: {image.width}x{image.height} pixels (limit {limit:,} pixels)"
                )
            image.load()
        except BaseException:
            image.close()
            raise
    except ImageRejected:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageRejected(
            f"image is too large (limit {settings.CLEAR_MAX_IMAGE_PIXELS:,} pixels): {exc}"
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageRejected("not an image (Pillow cannot identify the file)") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Truncated data ("image file is truncated"), corrupt chunks, bad headers.
        raise ImageRejected(f"unreadable or truncated image: {exc}") from exc
    return image


def normalise_mode(image: Image.Image) -> Image.Image:
    """Grayscale stays L, everything else becomes RGB; alpha is flattened onto black.

    Black is the background of every CLE / endoscopy field of view, so transparent areas become
    part of the border instead of inventing a colour.
    """
    mode = image.mode
    if mode in {"L", "RGB"}:
        return image
    if mode == "1":
        return image.convert("L")
    if mode.startswith("I") or mode == "F":
        return _high_depth_to_l(image)
    if mode == "P":
        palette_mode = image.palette.mode if image.palette is not None else ""
        has_alpha = "transparency" in image.info or palette_mode == "RGBA"
        converted = image.convert("RGBA" if has_alpha else "RGB")
        if _palette_is_gray(image):
            return _flatten_alpha(converted, "L") if has_alpha else converted.convert("L")
        return _flatten_alpha(converted, "RGB") if has_alpha else converted
    if mode in {"LA", "La"}:
        return _flatten_alpha(image.convert("LA"), "L")
    if mode in {"RGBA", "RGBa", "PA"}:
        return _flatten_alpha(image.convert("RGBA"), "RGB")
    return image.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX


def _flatten_alpha(image: Image.Image, target_mode: str) -> Image.Image:
    background = Image.new(target_mode, image.size, 0)
    background.paste(image.convert(target_mode), mask=image.getchannel("A"))
    return background


def _palette_is_gray(image: Image.Image) -> bool:
    palette = image.getpalette() or []
    triples = zip(palette[0::3], palette[1::3], palette[2::3], strict=False)
    return all(red == green == blue for red, green, blue in triples)


def _high_depth_to_l(image: Image.Image) -> Image.Image:
    """16-bit (or 32-bit / float) grayscale to 8 bits without a per-image contrast stretch.

    Many scientific cameras fill only 10-12 of 16 bits; dividing by 256 would make those frames
    nearly black. So the shift is the number of bits the image actually uses beyond eight: a 12-bit
    frame is shifted by 4, a full 16-bit one by 8, and relative brightness within a frame is kept.
    Floats in [0, 1] are scaled to 0-255; other floats are scaled by their maximum.
    """
    data = np.asarray(image)
    if data.dtype.kind == "f":
        data = np.nan_to_num(data.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        data = np.clip(data, 0.0, None)
        peak = float(data.max()) if data.size else 0.0
        scale = 255.0 if peak <= 1.0 else 255.0 / peak
        return Image.fromarray(np.clip(data * scale + 0.5, 0, 255).astype(np.uint8), mode="L")
    values = np.clip(data.astype(np.int64), 0, None)
    peak = int(values.max()) if values.size else 0
    shift = max(0, peak.bit_length() - 8)
    return Image.fromarray((values >> shift).astype(np.uint8), mode="L")


def prepare_image(image: Image.Image, *, crop: bool) -> PreparedFrame:
    """Orient, normalise, re-encode (dropping EXIF, ICC and text chunks), hash and store.

    The file is written into content-addressed storage here (writes are atomic and idempotent), so
    that worker threads do the I/O too; `created_files` lets the caller remove it again if the
    database row cannot be written. The preview is not made here: its path and size are fixed now
    (both follow from the frame's hash and size) and the file is rendered later by the previews job,
    or on the first request for it (records.previews), so that an import costs only what makes a
    frame available for labelling.
    """
    # exif_transpose always returns a new image (a plain copy when there is nothing to rotate), so
    # the source image is never modified. Only the pixels go into the stored file: nothing of the
    # source's metadata (EXIF, ICC, text chunks, DPI) can reach it.
    clean = normalise_mode(ImageOps.exif_transpose(image))
    return _store_pixels(
        np.asarray(clean, dtype=np.uint8), crop_box=(lambda: detect_field_of_view(clean)) if crop else None
    )


def prepare_pixels(pixels: NDArray[np.uint8], *, crop: bool) -> PreparedFrame:
    """prepare_image for a frame decoded from a video: its pixels (height x width for L, x 3 for
    RGB, video.DecodedFrame.pixels) have no orientation or metadata, and going through a Pillow
    image would copy them once more (0.07 ms of a video frame's 1.5 ms of work)."""
    return _store_pixels(
        pixels, crop_box=(lambda: detect_field_of_view(Image.fromarray(pixels))) if crop else None
    )


def _store_pixels(
    pixels: NDArray[np.uint8], *, crop_box: Callable[[], list[int] | None] | None
) -> PreparedFrame:
    """Encode, hash and store a frame's pixels; `crop_box` finds its field of view when asked."""
    data = encode_png(pixels)
    sha256 = hashlib.sha256(data).hexdigest()
    height, width = pixels.shape[:2]
    preview_width, preview_height = preview_size(width, height)
    file = media.content_path("frames", sha256, ".png")
    created = [file] if media.save_bytes(file, data) else []
    return PreparedFrame(
        sha256=sha256,
        file=file,
        file_bytes=len(data),
        width=width,
        height=height,
        mode=_pixels_mode(pixels),
        preview_file=media.content_path("previews", sha256, PREVIEW_SUFFIX),
        preview_width=preview_width,
        preview_height=preview_height,
        crop_box=crop_box() if crop_box is not None else None,
        created_files=tuple(created),
    )


def _pixels_mode(pixels: NDArray[np.uint8]) -> str:
    if pixels.ndim == 2:
        return "L"
    if pixels.ndim == 3 and pixels.shape[2] == 3:
        return "RGB"
    raise ValueError(f"frames are height x width (L) or height x width x 3 (RGB) pixels, not {pixels.shape}")


def preview_size(width: int, height: int) -> tuple[int, int]:
    """The preview's size: the frame's, scaled so that its longer side is at most
    CLEAR_PREVIEW_MAX_SIDE (never enlarged), the aspect ratio kept to the nearest pixel."""
    max_side: int = settings.CLEAR_PREVIEW_MAX_SIDE
    longer = max(width, height)
    if longer <= max_side:
        return width, height
    scale = max_side / longer
    return max(1, round(width * scale)), max(1, round(height * scale))


def render_preview(image: Image.Image, size: tuple[int, int]) -> bytes:
    """The JPEG preview of a stored frame at `size` (the one recorded with the frame)."""
    preview = image if image.size == size else image.resize(size, PREVIEW_RESAMPLE)
    buffer = io.BytesIO()
    preview.save(buffer, format=PREVIEW_FORMAT, quality=PREVIEW_QUALITY)
    return buffer.getvalue()


def encode_png(image: Image.Image | NDArray[np.uint8]) -> bytes:
    """A lossless 8-bit PNG of an L or RGB image (or of its pixels, height x width [x 3]) with
    nothing in it but pixels.

    Every row uses PNG filter type 2 ("Up": each byte minus the byte above it, the row above the
    first being zero), which suits the smooth images of endoscopy, then deflate at PNG_COMPRESS_LEVEL.
    The output depends only on the pixels, so equal frames get equal sha256s.
    """
    if isinstance(image, Image.Image):
        if image.mode not in _PNG_COLOR_TYPES:
            raise ValueError(f"encode_png takes L or RGB images, not {image.mode}")
        pixels = np.asarray(image, dtype=np.uint8)
    elif image.dtype == np.uint8:
        pixels = image
    else:
        raise ValueError(f"encode_png takes 8-bit pixels, not {image.dtype}")
    color_type = _PNG_COLOR_TYPES[_pixels_mode(pixels)]
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, -1)
    filtered = np.empty((height, rows.shape[1] + 1), dtype=np.uint8)
    filtered[:, 0] = 2
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])  # uint8 arithmetic wraps modulo 256, as PNG wants
    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    idat = isal_zlib.compress(filtered, PNG_COMPRESS_LEVEL)
    return b"".join(
        (_PNG_SIGNATURE, *_png_chunk(b"IHDR", header), *_png_chunk(b"IDAT", idat), *_png_chunk(b"IEND", b""))
    )


def _png_chunk(kind: bytes, data: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    # ISA-L's CRC-32 (the same checksum as zlib's) takes 2 us of a frame's 114 KiB IDAT, zlib's 27;
    # the image data is joined into the file once, not copied per chunk.
    crc = isal_zlib.crc32(data, isal_zlib.crc32(kind))
    return struct.pack(">I", len(data)), kind, data, struct.pack(">I", crc)


def prepare_image_file(path: Path, *, crop: bool) -> PreparedFrame:
    """open_image + prepare_image for one file; raises ImageRejected for bad input."""
    with open_image(path) as image:
        return prepare_image(image, crop=crop)
