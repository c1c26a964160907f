"""Previews: rendered once, by the previews job or on the first request, never by the import."""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import cast

import pytest
from django.core.management import call_command
from django.http import FileResponse
from PIL import Image

from jobs.models import Job
from records import media
from records.importing.images import preview_size
from records.importing.options import ImportOptions
from records.models import Frame
from records.previews import PREVIEWS_JOB_KIND, frame_previews_make
from records.services import import_job_create
from records.tasks import _run_import, _run_previews
from tests.factories import ProjectFactory
from tests.records.api_support import Role, client_for, member_of
from tests.records.import_support import gray_frame, media_files, run_import, save

pytestmark = pytest.mark.django_db


def _import(tmp_path: Path, count: int = 3, size: tuple[int, int] = (640, 480)):
    project = ProjectFactory.create()
    for seed in range(count):
        save(gray_frame(seed, size=size), tmp_path / "src" / "patient1" / f"{seed}.png")
    report = run_import(project, [tmp_path / "src"])
    assert report.frames_created == count
    return project


@pytest.mark.parametrize(
    ("size", "expected"),
    [((640, 480), (512, 384)), ((480, 640), (384, 512)), ((576, 592), (498, 512)), ((300, 200), (300, 200))],
)
def test_preview_size_fits_the_longer_side_and_never_enlarges(size, expected, settings) -> None:
    settings.CLEAR_PREVIEW_MAX_SIDE = 512
    assert preview_size(*size) == expected


def test_the_import_records_the_preview_but_leaves_rendering_to_the_job(tmp_path: Path, media_root) -> None:
    project = _import(tmp_path)
    assert media_files(media_root, "previews") == []

    result = frame_previews_make(project_id=project.pk)

    assert result["previews_rendered"] == 3
    for frame in Frame.objects.all():
        with Image.open(media_root / frame.preview_file) as preview:
            assert preview.format == "JPEG" and preview.mode == "L"
            assert preview.size == (frame.preview_width, frame.preview_height) == (512, 384)


def test_the_previews_job_is_idempotent(tmp_path: Path, media_root) -> None:
    project = _import(tmp_path)
    frame_previews_make(project_id=project.pk)
    before = {path: path.stat().st_mtime_ns for path in media_files(media_root, "previews")}

    again = frame_previews_make(project_id=project.pk)

    assert again["previews_rendered"] == 0 and again["frames_checked"] == 3
    assert {path: path.stat().st_mtime_ns for path in media_files(media_root, "previews")} == before


def test_only_frames_created_since_are_checked(tmp_path: Path) -> None:
    project = _import(tmp_path)
    later = Frame.objects.order_by("created_at").last()
    assert later is not None

    result = frame_previews_make(project_id=project.pk, created_since=later.created_at)

    assert result["frames_checked"] == Frame.objects.filter(created_at__gte=later.created_at).count()


def test_a_preview_requested_before_the_job_is_rendered_on_the_spot(tmp_path: Path, media_root) -> None:
    project = _import(tmp_path, count=1)
    frame = Frame.objects.get()
    reader = member_of(project, Role.READER)

    response = client_for(reader).get(f"/api/frames/{frame.pk}/preview/")

    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert cast(FileResponse, response).getvalue() == (media_root / frame.preview_file).read_bytes()
    # The job finds it done and renders nothing twice.
    assert frame_previews_make(project_id=project.pk)["previews_rendered"] == 0


def test_a_preview_whose_frame_file_is_gone_is_a_404_not_a_500(tmp_path: Path) -> None:
    project = _import(tmp_path, count=1)
    frame = Frame.objects.get()
    media.delete(frame.file)

    response = client_for(member_of(project, Role.READER)).get(f"/api/frames/{frame.pk}/preview/")

    assert response.status_code == 404


def test_an_import_job_queues_a_previews_job_for_its_frames(
    tmp_path: Path, media_root, django_capture_on_commit_callbacks
) -> None:
    project = ProjectFactory.create()
    save(gray_frame(1), tmp_path / "src" / "p1" / "a.png")
    job = import_job_create(
        project=project,
        sources=[tmp_path / "src"],
        metadata=None,
        options=ImportOptions(),
        created_by_id=None,
    )
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        result = _run_import(job, lambda *args: None)

    previews = Job.objects.get(kind=PREVIEWS_JOB_KIND)
    assert result["previews_job_id"] == previews.pk
    assert previews.project == project
    assert len(callbacks) == 1  # enqueued after commit
    assert media_files(media_root, "previews") == []
    assert _run_previews(previews, lambda *args: None)["previews_rendered"] == 1
    assert len(media_files(media_root, "previews")) == 1


def test_an_import_of_only_duplicates_queues_no_previews_job(tmp_path: Path) -> None:
    project = _import(tmp_path, count=1)
    job = import_job_create(
        project=project,
        sources=[tmp_path / "src"],
        metadata=None,
        options=ImportOptions(),
        created_by_id=None,
    )

    result = _run_import(job, lambda *args: None)

    assert result["frames_created"] == 0 and result["previews_job_id"] is None
    assert not Job.objects.filter(kind=PREVIEWS_JOB_KIND).exists()


def test_the_import_command_renders_the_previews_after_the_frames(tmp_path: Path, media_root) -> None:
    ProjectFactory.create(slug="cle")
    save(gray_frame(1), tmp_path / "src" / "patient1" / "a.png")

    call_command("import_frames", "cle", str(tmp_path / "src"), stdout=StringIO(), stderr=StringIO())

    frame = Frame.objects.get()
    assert [path.name for path in media_files(media_root, "previews")] == [f"{frame.sha256}.jpg"]
