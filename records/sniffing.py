"""What an uploaded file really is, from its first bytes: the name and the client's Content-Type
are claims, the magic numbers are not.

The import API accepts a file only when its content is one of the allowed kinds *and* agrees with
its extension (an image extension needs an allowed image format, `.zip` a ZIP, a video extension a
video container). Markup (HTML, SVG, XML) is refused whatever it is called: an SVG is an image to a
browser and may carry script, and nothing CLEAR stores or serves is ever markup from a user. Stored
frames are re-encoded PNG anyway; refusing at the door also keeps such files out of the upload
folder and gives the uploader a clear answer per file instead of a failed import later.
"""

from __future__ import annotations

from typing import IO

HEAD_BYTES = 512

# Extension -> the content kinds it may hold.
IMAGE_KINDS = {
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".bmp": "bmp",
    ".webp": "webp",
}
VIDEO_KINDS = frozenset({"mpeg-ps", "mpeg-ts", "iso-bmff", "avi", "matroska"})
DESCRIPTIONS = {
    "png": "a PNG image",
    "jpeg": "a JPEG image",
    "tiff": "a TIFF image",
    "bmp": "a BMP image",
    "webp": "a WebP image",
    "zip": "a ZIP archive",
    "markup": "HTML/SVG/XML markup",
    "mpeg-ps": "an MPEG video",
    "mpeg-ts": "an MPEG transport stream",
    "iso-bmff": "an MP4/QuickTime video",
    "avi": "an AVI video",
    "matroska": "a Matroska video",
}


def sniff(head: bytes) -> str | None:
    """The kind of content that starts with `head`, or None when it is none CLEAR knows."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head.startswith(b"BM") and len(head) >= 14:
        return "bmp"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if head[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3"):
        return "mpeg-ps"
    if head[:1] == b"\x47" and head[188:189] == b"\x47":  # two 188-byte packets' sync bytes
        return "mpeg-ts"
    if head[4:8] == b"ftyp":
        return "iso-bmff"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"
    if _is_markup(head):
        return "markup"
    return None


def _is_markup(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf\xfe\xff\x00 \t\r\n").lower()
    return text.startswith(b"<") or b"<svg" in text or b"<html" in text or b"<script" in text


def read_head(upload: IO[bytes]) -> bytes:
    """The first bytes of an upload; the file is rewound for whoever reads it next."""
    upload.seek(0)
    head = upload.read(HEAD_BYTES)
    upload.seek(0)
    return head


def content_problem(
    name: str, extension: str, head: bytes, *, video_extensions: frozenset[str]
) -> str | None:
    """Why the file may not be imported, or None when its content matches an allowed kind."""
    kind = sniff(head)
    found = DESCRIPTIONS.get(kind or "", "of no kind CLEAR imports")
    if kind == "markup":
        return f"{name}: the content is {found}, which is never imported (whatever the file is called)."
    if extension in IMAGE_KINDS:
        # Any allowed image format will do: a PNG saved as .jpg is common and harmless (it is decoded
        # by its real format and re-encoded); what matters is that it is an image at all.
        expected, ok = "image", kind in IMAGE_KINDS.values()
    elif extension == ".zip":
        expected, ok = "zip", kind == "zip"
    elif extension in video_extensions:
        expected, ok = "video", kind in VIDEO_KINDS
    else:
        return None  # the extension check reports it
    if ok:
        return None
    wanted = {"video": "a video", "image": "an image"}.get(expected) or DESCRIPTIONS[expected]
    return f"{name}: the content is {found}, not {wanted} as its name says; the file was not accepted."
