"""Images: re-encoding strips metadata, modes are normalised, and bad files are refused one by one."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from django.test import override_settings
from PIL import Image, PngImagePlugin

from records.importing.images import encode_png, normalise_mode
from records.models import Frame
from records.previews import frame_previews_make
from tests.factories import ProjectFactory
from tests.records.import_support import error_paths, gray_frame, media_files, run_import, save

pytestmark = pytest.mark.django_db


@pytest.fixture
def patient_folder(tmp_path: Path) -> Path:
    """patient1/seq1/ with one good frame, where each test adds its bad file."""
    folder = tmp_path / "import" / "patient1" / "seq1"
    save(gray_frame(1), folder / "good.png")
    return tmp_path / "import"


def _assert_only_good_frame_stored(report_errors: dict[str, str], media_root: Path) -> None:
    frames = list(Frame.objects.all())
    assert [frame.source_name.rsplit("/", 1)[-1] for frame in frames] == ["good.png"]
    # Nothing of the bad file reached storage: exactly the good frame's PNG exists (previews are
    # rendered later, by the previews job).
    assert [path.name for path in media_files(media_root, "frames")] == [f"{frames[0].sha256}.png"]
    assert media_files(media_root, "previews") == []


def _error_for(report_errors: dict[str, str], name: str) -> str:
    matches = [error for path, error in report_errors.items() if path.endswith(name)]
    assert len(matches) == 1, report_errors
    return matches[0]


def test_text_file_renamed_png_is_refused_and_good_files_still_land(
    patient_folder: Path, media_root: Path
) -> None:
    (patient_folder / "patient1" / "seq1" / "notes.png").write_text("this is not an image\n")
    report = run_import(ProjectFactory.create(), [patient_folder])
    errors = error_paths(report)
    assert "not an image" in _error_for(errors, "notes.png")
    assert report.frames_created == 1
    _assert_only_good_frame_stored(errors, media_root)


@pytest.mark.parametrize(("suffix", "image_format"), [(".png", "PNG"), (".jpg", "JPEG")])
def test_truncated_image_is_refused(
    patient_folder: Path, media_root: Path, suffix: str, image_format: str
) -> None:
    buffer = io.BytesIO()
    gray_frame(2, size=(256, 256)).save(buffer, format=image_format)
    data = buffer.getvalue()
    (patient_folder / "patient1" / "seq1" / f"cut{suffix}").write_bytes(data[: len(data) // 2])
    report = run_import(ProjectFactory.create(), [patient_folder])
    assert "truncated" in _error_for(error_paths(report), f"cut{suffix}")
    assert report.frames_created == 1
    _assert_only_good_frame_stored(error_paths(report), media_root)


def test_decompression_bomb_is_refused(patient_folder: Path, media_root: Path) -> None:
    save(gray_frame(3, size=(200, 200)), patient_folder / "patient1" / "seq1" / "huge.png")
    # 40,000 pixels is above the limit but below twice it: Pillow only warns there, CLEAR refuses.
    with override_settings(CLEAR_MAX_IMAGE_PIXELS=30_000):
        report = run_import(ProjectFactory.create(), [patient_folder])
    assert "too large" in _error_for(error_paths(report), "huge.png")
    assert report.frames_created == 1
    _assert_only_good_frame_stored(error_paths(report), media_root)


@pytest.mark.parametrize(("name", "image_format"), [("anim.gif", "GIF"), ("icon.ico", "ICO")])
def test_format_outside_the_allow_list_is_refused(
    patient_folder: Path, media_root: Path, name: str, image_format: str
) -> None:
    save(gray_frame(4, size=(32, 32)), patient_folder / "patient1" / "seq1" / name, format=image_format)
    report = run_import(ProjectFactory.create(), [patient_folder])
    assert f"format {image_format} is not allowed" in _error_for(error_paths(report), name)
    _assert_only_good_frame_stored(error_paths(report), media_root)


def test_allow_list_is_judged_by_content_not_extension(patient_folder: Path, media_root: Path) -> None:
    save(gray_frame(5, size=(32, 32)), patient_folder / "patient1" / "seq1" / "disguised.png", format="GIF")
    report = run_import(ProjectFactory.create(), [patient_folder])
    assert "GIF is not allowed" in _error_for(error_paths(report), "disguised.png")
    _assert_only_good_frame_stored(error_paths(report), media_root)


def _exif_with_gps_and_comment() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010E] = "patient Jane Doe, MRN 000123"  # ImageDescription
    exif[0x9286] = b"ASCII\x00\x00\x00secret comment"  # UserComment (Exif IFD, kept for realism)
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0)}  # GPSInfo
    return exif


def test_exif_and_text_chunks_are_stripped(tmp_path: Path, media_root: Path) -> None:
    folder = tmp_path / "src" / "patient1"
    save(
        Image.new("RGB", (40, 30), (200, 10, 10)),
        folder / "photo.jpg",
        exif=_exif_with_gps_and_comment(),
        comment=b"JPEG COM secret",
    )
    text = PngImagePlugin.PngInfo()
    text.add_text("Comment", "patient Jane Doe, MRN 000123")
    text.add_itxt("Description", "secret itxt")
    save(gray_frame(6), folder / "scan.png", pnginfo=text, dpi=(300, 300))
    with Image.open(folder / "photo.jpg") as check:
        assert check.getexif() and check.info.get("comment")  # the fixture really carries metadata

    report = run_import(ProjectFactory.create(), [tmp_path / "src"])

    assert report.frames_created == 2, report.errors
    for frame in Frame.objects.all():
        stored = media_root / frame.file
        data = stored.read_bytes()
        with Image.open(stored) as image:
            assert image.format == "PNG"
            assert not image.getexif()
            assert not getattr(image, "text", {})  # no tEXt / iTXt / zTXt
            assert "icc_profile" not in image.info and "dpi" not in image.info
        assert b"Jane Doe" not in data and b"secret" not in data
        assert _png_chunk_types(data) <= {b"IHDR", b"IDAT", b"IEND"}


def _png_chunk_types(data: bytes) -> set[bytes]:
    types = set()
    position = 8
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        types.add(data[position + 4 : position + 8])
        position += 12 + length
    return types


def test_exif_orientation_is_applied(tmp_path: Path, media_root: Path) -> None:
    image = Image.new("L", (40, 20), 0)
    image.paste(255, (0, 0, 10, 20))  # bright band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    save(image, tmp_path / "src" / "patient1" / "rotated.jpg", exif=exif, quality=95)
    report = run_import(ProjectFactory.create(), [tmp_path / "src"])
    assert report.frames_created == 1, report.errors
    frame = Frame.objects.get()
    assert (frame.width, frame.height) == (20, 40)
    with Image.open(media_root / frame.file) as stored:
        top = np.asarray(stored)[:10].mean()
        bottom = np.asarray(stored)[-10:].mean()
    assert top > 200 > 50 > bottom  # the left band is now on top


def test_grayscale_stays_grayscale_and_previews_too(tmp_path: Path, media_root: Path) -> None:
    save(gray_frame(7, size=(1024, 600)), tmp_path / "src" / "patient1" / "big.png")
    project = ProjectFactory.create()
    report = run_import(project, [tmp_path / "src"])
    frame_previews_make(project_id=project.pk)
    assert report.frames_created == 1
    frame = Frame.objects.get()
    assert frame.mode == "L"
    assert (frame.width, frame.height) == (1024, 600)
    assert (frame.preview_width, frame.preview_height) == (512, 300)
    assert frame.file == f"frames/{frame.sha256[:2]}/{frame.sha256}.png"
    assert frame.preview_file.endswith(f"{frame.sha256}.jpg")
    with Image.open(media_root / frame.file) as stored:
        assert stored.mode == "L"
        assert frame.file_bytes == (media_root / frame.file).stat().st_size
    with Image.open(media_root / frame.preview_file) as preview:
        assert preview.format == "JPEG"
        assert preview.mode == "L"
        assert preview.size == (512, 300)


def test_sixteen_bit_grayscale_becomes_eight_bit_without_going_black(tmp_path: Path) -> None:
    twelve_bit = np.linspace(0, 4095, 64 * 32).reshape(32, 64).astype(np.uint16)
    converted = normalise_mode(Image.fromarray(twelve_bit))
    assert converted.mode == "L"
    values = np.asarray(converted)
    assert values.max() == 255 and values.min() == 0  # a 12-bit range fills 8 bits


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (Image.new("LA", (4, 4), (200, 255)), "L"),
        (Image.new("RGBA", (4, 4), (1, 2, 3, 255)), "RGB"),
        (Image.new("CMYK", (4, 4)), "RGB"),
        (Image.new("1", (4, 4), 1), "L"),
        (Image.new("L", (4, 4)).convert("P"), "L"),  # a gray palette stays gray
        (Image.new("RGB", (4, 4), (9, 99, 199)).convert("P"), "RGB"),
    ],
)
def test_modes_are_normalised_to_l_or_rgb(source: Image.Image, expected: str) -> None:
    assert normalise_mode(source).mode == expected


def test_transparent_pixels_become_black() -> None:
    image = Image.new("RGBA", (2, 1), (255, 255, 255, 255))
    image.putpixel((1, 0), (255, 255, 255, 0))
    assert np.asarray(normalise_mode(image)).tolist() == [[[255, 255, 255], [0, 0, 0]]]


def test_stored_png_is_compressed_and_lossless(tmp_path: Path, media_root: Path) -> None:
    gradient = np.add.outer(np.arange(120), np.arange(160)) % 256
    source = Image.fromarray(gradient.astype(np.uint8), mode="L")  # smooth, like a field of view
    save(source, tmp_path / "src" / "patient1" / "a.png")
    run_import(ProjectFactory.create(), [tmp_path / "src"])
    stored = media_root / Frame.objects.get().file
    assert stored.stat().st_size < source.width * source.height
    with Image.open(stored) as decoded:
        assert np.array_equal(np.asarray(decoded), np.asarray(source))


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_stored_png_decodes_to_exactly_the_source_pixels(mode: str) -> None:
    rng = np.random.default_rng(3)
    shape = (37, 53) if mode == "L" else (37, 53, 3)
    pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
    encoded = encode_png(Image.fromarray(pixels, mode=mode))
    # Video frames reach the encoder as arrays (images.prepare_pixels): the same file.
    assert encode_png(pixels) == encoded
    with Image.open(io.BytesIO(encoded)) as decoded:
        decoded.load()
        assert decoded.format == "PNG"
        assert decoded.mode == mode
        assert np.array_equal(np.asarray(decoded), pixels)
        assert decoded.info == {}


def test_png_encoding_depends_only_on_the_pixels() -> None:
    image = Image.new("L", (20, 10), 40)
    copy = image.copy()
    copy.info["comment"] = "metadata must not matter"
    assert encode_png(image) == encode_png(copy)


def test_png_encoder_refuses_modes_it_does_not_write() -> None:
    with pytest.raises(ValueError, match="L or RGB"):
        encode_png(Image.new("RGBA", (2, 2)))
    with pytest.raises(ValueError, match="height x width x 3"):
        encode_png(np.zeros((2, 2, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="8-bit"):
        encode_png(np.zeros((2, 2), dtype=np.uint16))
