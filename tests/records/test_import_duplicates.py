"""Duplicates: same content in the same examination is skipped; re-running an import adds nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from records.importing import service
from records.models import Examination, Frame, Patient, Video
from tests.factories import ProjectFactory
from tests.records.import_support import gray_frame, media_files, run_import, save

pytestmark = pytest.mark.django_db


def test_same_image_twice_in_an_examination_is_reported_as_duplicate(tmp_path: Path) -> None:
    save(gray_frame(1), tmp_path / "src" / "patient1" / "seq1" / "a.png")
    save(gray_frame(1), tmp_path / "src" / "patient1" / "seq2" / "copy.png")
    report = run_import(ProjectFactory.create(), [tmp_path / "src"])
    assert report.frames_created == 1
    original = Frame.objects.get()
    assert len(report.duplicates) == 1
    duplicate = report.duplicates[0]
    assert duplicate["path"].endswith("seq2/copy.png")
    assert duplicate == {**duplicate, "kind": "frame", "duplicate_of": str(original.pk)}


def test_same_image_in_another_examination_is_not_a_duplicate(tmp_path: Path, media_root: Path) -> None:
    save(gray_frame(1), tmp_path / "src" / "patient1" / "exam1" / "seq1" / "a.png")
    save(gray_frame(1), tmp_path / "src" / "patient1" / "exam2" / "seq1" / "a.png")
    report = run_import(ProjectFactory.create(), [tmp_path / "src"])
    assert report.frames_created == 2
    assert report.duplicates == []
    assert Frame.objects.values("sha256").distinct().count() == 1
    assert len(media_files(media_root, "frames")) == 1  # content-addressed: stored once


def test_rerunning_the_same_import_creates_nothing_new(tmp_path: Path) -> None:
    for index in range(4):
        save(gray_frame(index), tmp_path / "src" / "patient1" / "exam1" / "seq1" / f"{index}.png")
    save(gray_frame(9), tmp_path / "src" / "patient2" / "loose.png")
    project = ProjectFactory.create()
    first = run_import(project, [tmp_path / "src"])
    counts = (
        Patient.objects.count(),
        Examination.objects.count(),
        Video.objects.count(),
        Frame.objects.count(),
    )

    second = run_import(project, [tmp_path / "src"])

    assert (first.frames_created, first.patients_created, first.videos_created) == (5, 2, 1)
    assert (second.frames_created, second.patients_created, second.examinations_created) == (0, 0, 0)
    assert second.videos_created == 0
    assert len(second.duplicates) == 5
    assert counts == (Patient.objects.count(), Examination.objects.count(), Video.objects.count(), 5)


def test_new_files_in_a_known_sequence_are_appended_after_its_frames(tmp_path: Path) -> None:
    project = ProjectFactory.create()
    save(gray_frame(1), tmp_path / "one" / "patient1" / "seq1" / "frame1.png")
    run_import(project, [tmp_path / "one"])
    # A second folder with the same layout and file name but different content.
    save(gray_frame(2), tmp_path / "two" / "patient1" / "seq1" / "frame1.png")
    save(gray_frame(3), tmp_path / "two" / "patient1" / "seq1" / "frame2.png")
    report = run_import(project, [tmp_path / "two"])
    assert report.frames_created == 2 and report.errors == []
    video = Video.objects.get()
    indices = list(video.frames.values_list("index_in_video", flat=True))
    assert None not in indices
    assert sorted(index for index in indices if index is not None) == [0, 1, 2]
    assert video.frame_count == 3


def test_concurrent_insert_of_the_same_frame_counts_as_duplicate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, media_root: Path
) -> None:
    save(gray_frame(1), tmp_path / "src" / "patient1" / "seq1" / "a.png")
    project = ProjectFactory.create()
    run_import(project, [tmp_path / "src"])
    existing = Frame.objects.get()
    # Simulate another worker having inserted the frame after this import read the examination:
    # the cache of known hashes misses it, so the INSERT hits the unique constraint.
    real_known = service._Importer._known
    calls = {"count": 0}

    def stale_known(self: service._Importer, examination: Examination) -> dict[str, int]:
        calls["count"] += 1
        return {} if calls["count"] == 1 else real_known(self, examination)

    monkeypatch.setattr(service._Importer, "_known", stale_known)
    report = run_import(project, [tmp_path / "src"])
    assert report.errors == []
    assert report.frames_created == 0
    assert report.duplicates[0]["duplicate_of"] == str(existing.pk)
    assert Frame.objects.count() == 1
    assert (media_root / existing.file).is_file()  # still referenced, so not cleaned up


def test_failed_insert_removes_the_files_it_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, media_root: Path
) -> None:
    save(gray_frame(1), tmp_path / "src" / "patient1" / "seq1" / "a.png")

    def broken_create(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr(Frame.objects, "create", broken_create)
    monkeypatch.setattr(Frame.objects, "bulk_create", broken_create)
    report = run_import(ProjectFactory.create(), [tmp_path / "src"])
    assert "database went away" in report.errors[0]["error"]
    assert media_files(media_root, "frames") == [] and media_files(media_root, "previews") == []
    # The patient, examination and sequence were part of the failed unit: none is left behind.
    assert not Patient.objects.exists() and not Video.objects.exists()
    assert report.patients_created == 0
