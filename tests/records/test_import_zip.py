"""ZIP archives: members are imported like a folder; zip slip and zip bombs are refused."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import pytest
from django.test import override_settings

from records.importing.safety import safe_member_path
from records.models import Frame
from records.pseudonyms import pseudonym_for
from tests.factories import ProjectFactory
from tests.records.import_support import error_paths, gray_frame, media_files, run_import

pytestmark = pytest.mark.django_db
P1 = pseudonym_for("patient1")


def _png_bytes(seed: int) -> bytes:
    buffer = io.BytesIO()
    gray_frame(seed).save(buffer, format="PNG")
    return buffer.getvalue()


def _zip(path: Path, members: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_archive_members_are_imported_like_a_folder(tmp_path: Path) -> None:
    archive = _zip(
        tmp_path / "study.zip",
        {
            "study/patient1/seq1/0002.png": _png_bytes(2),
            "study/patient1/seq1/0001.png": _png_bytes(1),
            "study/patient1/seq1/0001_mask.png": _png_bytes(3),
            "__MACOSX/study/patient1/seq1/._0001.png": b"junk",
        },
    )
    report = run_import(ProjectFactory.create(), [archive])
    assert report.errors == []
    assert report.frames_created == 2
    assert list(Frame.objects.order_by("index_in_video").values_list("source_name", "index_in_video")) == [
        (f"study.zip/study/{P1}/seq1/0001.png", 0),
        (f"study.zip/study/{P1}/seq1/0002.png", 1),
    ]
    assert [entry["path"] for entry in report.skipped] == [f"study.zip/study/{P1}/seq1/0001_mask.png"]


def test_archive_stem_can_name_the_patient(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "patient4.zip", {"seq1/1.png": _png_bytes(1)})
    run_import(ProjectFactory.create(), [archive])
    assert Frame.objects.get().examination.patient.pseudonym == pseudonym_for("patient4")


@pytest.mark.parametrize(
    "name",
    [
        "../evil.png",
        "patient1/../../evil.png",
        "/etc/evil.png",
        "C:/evil.png",
        "C:\\evil.png",
        "..\\evil.png",
    ],
)
def test_zip_slip_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="zip slip"):
        safe_member_path(name)


def test_zip_slip_member_is_an_error_and_the_rest_is_imported(tmp_path: Path, media_root: Path) -> None:
    archive = tmp_path / "upload" / "slip.zip"
    archive.parent.mkdir()
    _zip(archive, {"patient1/seq1/good.png": _png_bytes(1), "../../evil.png": _png_bytes(2)})
    report = run_import(ProjectFactory.create(), [archive])
    errors = error_paths(report)
    assert "zip slip" in errors["slip.zip/../../evil.png"]
    assert report.frames_created == 1
    assert not (tmp_path / "evil.png").exists() and not (tmp_path.parent / "evil.png").exists()
    assert len(media_files(media_root, "frames")) == 1


def test_symlink_member_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "links.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("patient1/seq1/good.png", _png_bytes(1))
        link = zipfile.ZipInfo("patient1/seq1/link.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    report = run_import(ProjectFactory.create(), [archive])
    assert "symbolic link" in error_paths(report)["links.zip/patient1/seq1/link.png"]
    assert report.frames_created == 1


def test_zip_bomb_is_stopped_by_the_ratio_cap_while_reading(tmp_path: Path, media_root: Path) -> None:
    archive = _zip(
        tmp_path / "bomb.zip",
        {"patient1/seq1/good.png": _png_bytes(1), "patient1/seq1/bomb.png": b"\x00" * (8 * 1024 * 1024)},
    )
    with override_settings(CLEAR_ZIP_MAX_RATIO=50):
        report = run_import(ProjectFactory.create(), [archive])
    assert "compression ratio" in error_paths(report)["bomb.zip/patient1/seq1/bomb.png"]
    assert report.frames_created == 1
    assert len(media_files(media_root, "frames")) == 1


def test_size_caps_are_enforced_on_real_bytes_not_headers(tmp_path: Path) -> None:
    archive = _zip(
        tmp_path / "liar.zip",
        {"patient1/seq1/good.png": _png_bytes(1), "patient1/seq1/big.png": b"\x01" * 200_000},
        compression=zipfile.ZIP_STORED,
    )
    # Make the header of the big member claim 10 bytes (central directory and local header).
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo("patient1/seq1/big.png")
    real = (200_000).to_bytes(4, "little")
    fake = (10).to_bytes(4, "little")
    central = data.rfind(b"patient1/seq1/big.png") - 46
    data[central + 24 : central + 28] = fake  # uncompressed size in the central directory
    assert data[info.header_offset + 22 : info.header_offset + 26] == real
    data[info.header_offset + 22 : info.header_offset + 26] = fake
    archive.write_bytes(bytes(data))

    with override_settings(CLEAR_ZIP_MAX_MEMBER_BYTES=100_000):
        report = run_import(ProjectFactory.create(), [archive])
    error = error_paths(report)["liar.zip/patient1/seq1/big.png"]
    assert "per-file cap" in error or "Bad" in error or "size" in error
    assert report.frames_created == 1


def test_total_size_cap_refuses_members_beyond_it(tmp_path: Path) -> None:
    members = {f"patient1/seq1/{index}.png": _png_bytes(index) for index in range(4)}
    archive = _zip(tmp_path / "many.zip", members, compression=zipfile.ZIP_STORED)
    one = len(_png_bytes(0))
    with override_settings(CLEAR_ZIP_MAX_TOTAL_BYTES=int(one * 2.5)):
        report = run_import(ProjectFactory.create(), [archive])
    assert report.frames_created == 2
    assert len(report.errors) == 2
    assert all("total" in entry["error"] for entry in report.errors)


def test_member_count_cap_refuses_the_archive(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "crowd.zip", {f"patient1/{index}.png": _png_bytes(index) for index in range(3)})
    with override_settings(CLEAR_ZIP_MAX_MEMBERS=2):
        report = run_import(ProjectFactory.create(), [archive])
    assert "3 members (limit 2)" in error_paths(report)["crowd.zip"]
    assert report.frames_created == 0


def test_file_named_zip_that_is_not_a_zip_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "src" / "patient1").mkdir(parents=True)
    gray_frame(1).save(tmp_path / "src" / "patient1" / "good.png")
    (tmp_path / "src" / "broken.zip").write_bytes(b"PK\x03\x04 not really a zip")
    report = run_import(ProjectFactory.create(), [tmp_path / "src"])
    assert "not a valid ZIP archive" in error_paths(report)["broken.zip"]
    assert report.frames_created == 1
