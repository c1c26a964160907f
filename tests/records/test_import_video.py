"""Videos: decoded with PyAV into frames that know their index and time; broken files store nothing."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np
import pytest

from records.models import ExaminationFrameCount, Frame, Video
from records.pseudonyms import pseudonym_for
from tests.factories import ProjectFactory
from tests.records.import_support import PCLE_VIDEO, error_paths, gray_frame, media_files, run_import, save

pytestmark = pytest.mark.django_db
# Stored and reported paths show the patient folder's pseudonym, never its name.
S01 = pseudonym_for("S01")


def test_pcle_video_gives_260_grayscale_frames_with_indices_and_times(
    realdata: Path, media_root: Path
) -> None:
    project = ProjectFactory.create()
    calls: list[tuple[int, int | None]] = []
    report = run_import(
        project, [realdata / PCLE_VIDEO], progress=lambda done, total, message: calls.append((done, total))
    )

    assert report.errors == [] and report.duplicates == []
    assert report.frames_created == 260
    video = Video.objects.get(examination__patient__project=project)
    # The parent folders name the patient (S01) and the examination (1), as in the upstream tree.
    assert (video.examination.code, video.name, video.kind) == ("1", "S01V01", Video.Kind.VIDEO_FILE)
    assert video.codec == "mpeg1video"
    assert video.frame_rate == pytest.approx(24.0)
    assert video.frame_count == 260
    assert video.duration_s == pytest.approx(260 / 24)
    assert (video.width, video.height) == (576, 592)
    assert video.every_nth == 1
    stored_source = media_root / video.source_file
    assert stored_source.read_bytes() == (realdata / PCLE_VIDEO).read_bytes()
    assert video.source_file == f"videos/{video.source_sha256[:2]}/{video.source_sha256}.mpeg"

    frames = list(video.frames.order_by("index_in_video"))
    assert [frame.index_in_video for frame in frames] == list(range(260))
    times = [frame.time_s for frame in frames]
    assert None not in times
    times_s = [float(t) for t in times if t is not None]
    assert times_s[0] == 0.0
    assert all(later > earlier for earlier, later in itertools.pairwise(times_s))
    assert times_s[-1] == pytest.approx(259 / 24)
    assert {frame.mode for frame in frames} == {"L"}
    assert {(frame.width, frame.height) for frame in frames} == {(576, 592)}
    assert len(media_files(media_root, "frames")) == 260
    assert calls[-1][0] == calls[-1][1] == 260
    # The rows went in by COPY (PostgreSQL): every column as the ORM would have written it, the
    # creation time included, and the examination's maintained frame count follows.
    assert all(frame.created_at is not None for frame in frames)
    assert [frame.source_name for frame in frames] == [f"S01V01.mpeg#frame={i}" for i in range(260)]
    assert {frame.examination_id for frame in frames} == {video.examination_id}
    assert ExaminationFrameCount.objects.get(examination=video.examination).frames == 260

    # Importing the same video again stores nothing new and says so.
    again = run_import(project, [realdata / PCLE_VIDEO])
    assert again.frames_created == 0 and again.videos_created == 0
    assert again.duplicates == [{"path": "S01V01.mpeg", "kind": "video", "duplicate_of": str(video.pk)}]
    assert Frame.objects.count() == 260


def test_every_nth_keeps_every_tenth_frame(realdata: Path) -> None:
    report = run_import(ProjectFactory.create(), [realdata / PCLE_VIDEO], every_nth=10)
    assert report.frames_created == 26
    video = Video.objects.get()
    assert video.every_nth == 10
    assert video.frame_count == 260  # frames in the source, not frames kept
    frames = list(video.frames.order_by("index_in_video"))
    assert [frame.index_in_video for frame in frames] == list(range(0, 260, 10))
    assert frames[1].time_s == pytest.approx(10 / 24)


def _with_good_frame(folder: Path) -> None:
    save(gray_frame(1), folder / "S01" / "1" / "still.png")


def _assert_nothing_of_the_video_stored(media_root: Path) -> None:
    assert not Video.objects.filter(kind=Video.Kind.VIDEO_FILE).exists()
    assert list(Frame.objects.values_list("source_name", flat=True)) == [f"{S01}/1/still.png"]
    assert media_files(media_root, "videos") == []
    assert len(media_files(media_root, "frames")) == 1
    assert media_files(media_root, "previews") == []


def test_truncated_video_is_refused_and_nothing_of_it_is_stored(
    realdata: Path, tmp_path: Path, media_root: Path
) -> None:
    folder = tmp_path / "src"
    _with_good_frame(folder)
    data = (realdata / PCLE_VIDEO).read_bytes()
    # Cut after a few frames: FFmpeg would conceal the damage, CLEAR must refuse.
    (folder / "S01" / "1" / "cut.mpeg").write_bytes(data[:300_000])
    (folder / "S01" / "1" / "head.mpeg").write_bytes(data[:20_000])

    report = run_import(ProjectFactory.create(), [folder])

    errors = error_paths(report)
    assert set(errors) == {f"{S01}/1/cut.mpeg", f"{S01}/1/head.mpeg"}
    assert all("truncated" in error or "unreadable" in error for error in errors.values())
    assert report.frames_created == 1
    _assert_nothing_of_the_video_stored(media_root)


def test_a_video_whose_source_cannot_be_stored_is_refused_and_nothing_of_it_is_stored(
    realdata: Path, tmp_path: Path, media_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The source file is stored by a pool thread while the frames are decoded; when that fails,
    # the frames already written go too.
    from records import media

    save_file = media.save_file

    def refuse_videos(name: str, source: Path, *, move: bool = False) -> bool:
        if name.startswith("videos/"):
            raise OSError("disk full")
        return save_file(name, source, move=move)

    monkeypatch.setattr(media, "save_file", refuse_videos)
    folder = tmp_path / "src"
    _with_good_frame(folder)
    shutil.copyfile(realdata / PCLE_VIDEO, folder / "S01" / "1" / "pcle.mpeg")

    report = run_import(ProjectFactory.create(), [folder], every_nth=26)

    assert error_paths(report) == {f"{S01}/1/pcle.mpeg": "OSError: disk full"}
    assert report.frames_created == 1
    _assert_nothing_of_the_video_stored(media_root)


def test_random_bytes_named_mp4_is_refused(tmp_path: Path, media_root: Path) -> None:
    folder = tmp_path / "src"
    _with_good_frame(folder)
    (folder / "S01" / "1" / "noise.mp4").write_bytes(np.random.default_rng(0).bytes(50_000))
    report = run_import(ProjectFactory.create(), [folder])
    assert "not a readable video" in error_paths(report)[f"{S01}/1/noise.mp4"]
    _assert_nothing_of_the_video_stored(media_root)


def test_video_with_the_name_of_another_video_is_refused(realdata: Path, tmp_path: Path) -> None:
    project = ProjectFactory.create()
    run_import(project, [realdata / PCLE_VIDEO], every_nth=130)
    other = tmp_path / "S01" / "1" / "S01V01.mpeg"
    other.parent.mkdir(parents=True)
    shutil.copyfile(realdata / PCLE_VIDEO, other)
    report = run_import(project, [other], every_nth=65)
    assert "already has a video 'S01V01'" in error_paths(report)["S01V01.mpeg"]
    assert Frame.objects.count() == 2


def test_crop_boxes_of_video_frames_are_stored_as_json(realdata: Path) -> None:
    report = run_import(ProjectFactory.create(), [realdata / PCLE_VIDEO], every_nth=52, crop=True)

    assert report.frames_created == 5
    boxes = list(Frame.objects.order_by("index_in_video").values_list("crop_box", flat=True))
    assert boxes and all(
        isinstance(box, list) and len(box) == 4 and all(isinstance(v, int) for v in box) for box in boxes
    ), boxes
    # A JSON array in the database (not a string of one): the crop filter of the frames API reads it.
    assert Frame.objects.filter(crop_box__isnull=False, crop_box__0__gte=0).count() == 5
