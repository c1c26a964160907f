"""Uploads are judged by their content, not by their name or Content-Type (records/sniffing.py):
HTML and SVG never get in, under any name, and every refused file is named with its reason."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from jobs.models import Job
from records.sniffing import sniff
from tests.factories import ProjectFactory
from tests.records.api_support import Role, client_for, member_of

pytestmark = pytest.mark.django_db


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (16, 16), 100).save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (1, 2, 3)).save(buffer, format="JPEG")
    return buffer.getvalue()


HTML = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>"
SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
SVG_WITH_BOM = b"\xef\xbb\xbf  \n<svg onload='alert(1)'/>"


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("page.png", HTML, "HTML/SVG/XML markup, which is never imported"),
        ("drawing.png", SVG, "HTML/SVG/XML markup, which is never imported"),
        ("drawing.jpg", SVG_WITH_BOM, "HTML/SVG/XML markup, which is never imported"),
        ("page.zip", HTML, "HTML/SVG/XML markup, which is never imported"),
        ("clip.mp4", SVG, "HTML/SVG/XML markup, which is never imported"),
        (
            "photo.png",
            b"PK\x05\x06" + b"\0" * 18,
            "the content is a ZIP archive, not an image as its name says",
        ),
        ("frame.jpg", b"\0\0\0\x18ftypmp42", "the content is an MP4/QuickTime video, not an image"),
        ("frame.tif", b"plain text, no image", "of no kind CLEAR imports, not an image"),
        ("clip.mp4", _png(), "the content is a PNG image, not a video as its name says"),
        ("frames.zip", _png(), "the content is a PNG image, not a ZIP archive as its name says"),
        ("drawing.svg", SVG, "files of type .svg cannot be imported"),
        ("pic.svg", _png(), "files of type .svg cannot be imported"),
        ("page.html", HTML, "files of type .html cannot be imported"),
    ],
)
def test_a_file_whose_content_is_not_what_an_import_accepts_is_refused_with_its_reason(
    name: str, content: bytes, reason: str
) -> None:
    project = ProjectFactory.create()
    client = client_for(member_of(project, Role.DATA_MANAGER))
    good = SimpleUploadedFile("good.png", _png(), content_type="image/png")
    # The client's Content-Type claims an image: it is not believed.
    bad = SimpleUploadedFile(name, content, content_type="image/png")

    response = client.post(f"/api/projects/{project.pk}/imports/", {"files": [good, bad]}, format="multipart")

    assert response.status_code == 400, response.content
    errors = response.json()["files"]
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"{name}: ") and reason in errors[0]
    assert not Job.objects.exists()
    assert list(Path(settings.CLEAR_UPLOAD_ROOT).rglob("*")) == []


def test_files_whose_content_matches_their_names_are_accepted() -> None:
    project = ProjectFactory.create()
    client = client_for(member_of(project, Role.DATA_MANAGER))
    files = [
        SimpleUploadedFile("a.png", _png(), content_type="application/octet-stream"),
        SimpleUploadedFile("b.JPEG", _jpeg(), content_type="text/html"),
        # A PNG saved under .jpg is still an image: decoded by its real format, re-encoded anyway.
        SimpleUploadedFile("misnamed.jpg", _png()),
        SimpleUploadedFile("c.zip", b"PK\x05\x06" + b"\0" * 18),
        SimpleUploadedFile("d.mp4", b"\0\0\0\x18ftypmp42" + b"\0" * 16),
        SimpleUploadedFile("e.mpeg", b"\0\0\x01\xba" + b"\0" * 16),
    ]
    response = client.post(f"/api/projects/{project.pk}/imports/", {"files": files}, format="multipart")
    assert response.status_code == 202, response.content


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"\x89PNG\r\n\x1a\n....", "png"),
        (b"\xff\xd8\xff\xe0", "jpeg"),
        (b"II*\x00", "tiff"),
        (b"MM\x00*", "tiff"),
        (b"BM" + b"\0" * 20, "bmp"),
        (b"RIFF\0\0\0\0WEBPVP8 ", "webp"),
        (b"RIFF\0\0\0\0AVI LIST", "avi"),
        (b"\x1a\x45\xdf\xa3", "matroska"),
        (b"  <HTML>", "markup"),
        (b"<?xml version='1.0'?><svg/>", "markup"),
        (b"\x47" + b"\0" * 187 + b"\x47", "mpeg-ts"),
        (b"GIF89a", None),
        (b"", None),
    ],
)
def test_sniff_names_each_kind_by_its_magic_number(head: bytes, kind: str | None) -> None:
    assert sniff(head) == kind
