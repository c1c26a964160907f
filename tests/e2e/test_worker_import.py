"""Imports of real frames through a real Celery worker process, including a worker killed mid-job."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from jobs.models import Job
from records import media
from records.importing.options import ImportOptions
from records.models import Frame, Project, Video
from records.previews import PREVIEWS_JOB_KIND
from records.services import import_job_create
from tests.e2e.conftest import CeleryWorker, wait_for
from tests.factories import ProjectFactory

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
]

VIDEO = Path("amphybio_endomicroscopy-analysis/data-sample/comparative-sample/main/S01/1/S01V01.mpeg")
VIDEO_FRAMES = 260
PATIENTS = ("S01", "S02", "S03", "S04", "S05", "S06")


def _job(job_id: int) -> Job:
    return Job.objects.get(pk=job_id)


def _finished(job_id: int) -> bool:
    return _job(job_id).is_finished


def test_an_import_of_real_frames_runs_on_the_worker(
    celery_worker_process: CeleryWorker, realdata: Path
) -> None:
    source = realdata / "imesluh_vocalfolds" / "img" / "patient1"
    images = sorted(path for path in source.rglob("*.png"))
    project: Project = ProjectFactory.create()

    job = import_job_create(
        project=project, sources=[source], metadata=None, options=ImportOptions(), created_by_id=None
    )

    wait_for(lambda: _finished(job.pk), timeout=180, describe=f"import job {job.pk} to finish")
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.attempts == 1
    assert job.worker.endswith(f":{celery_worker_process.pid}")
    # The final progress write is never throttled away: the row shows 100 %, not the last sample.
    assert job.progress_total
    assert job.progress_done == job.progress_total
    assert job.progress == 1.0
    frames = Frame.objects.filter(examination__patient__project=project)
    assert frames.count() == len(images) == job.result["frames_created"]
    assert {frame.source_name.rsplit("/", 1)[-1] for frame in frames} == {path.name for path in images}

    # The import queued its previews job, which the worker ran next: every frame has its preview.
    previews = _job(job.result["previews_job_id"])
    wait_for(lambda: _finished(previews.pk), timeout=120, describe=f"previews job {previews.pk} to finish")
    previews.refresh_from_db()
    assert previews.status == Job.Status.SUCCEEDED, previews.error
    assert previews.kind == PREVIEWS_JOB_KIND and previews.project == project
    assert previews.result["previews_rendered"] == len(images)
    assert all(media.exists(frame.preview_file) for frame in frames)


def test_a_job_whose_worker_is_killed_is_finished_by_the_next_worker_without_duplicates(
    celery_worker_process: CeleryWorker, realdata: Path, tmp_path: Path
) -> None:
    # One video imports in about half a second on a quiet machine, too short to be sure of killing
    # the worker mid-job; the same video for several patients (a folder per patient) takes a few
    # seconds, and the kill may fall in any of them, or between two.
    source = tmp_path / "patients"
    for patient in PATIENTS:
        (source / patient).mkdir(parents=True)
        shutil.copyfile(realdata / VIDEO, source / patient / VIDEO.name)
    project: Project = ProjectFactory.create()
    job = import_job_create(
        project=project, sources=[source], metadata=None, options=ImportOptions(), created_by_id=None
    )

    def in_progress() -> bool:
        current = _job(job.pk)
        assert not current.is_finished, "the import finished before the worker could be killed"
        return current.status == Job.Status.RUNNING and current.progress_done > 0

    wait_for(in_progress, timeout=120, interval=0.05, describe="the import to report progress")
    celery_worker_process.kill()
    killed = _job(job.pk)
    # The worker died before it finished the job; the kill may come inside a video's work, after a
    # video's transaction committed, or after the last one; each moment must end the same way below.
    assert killed.status == Job.Status.RUNNING

    # The message was never acknowledged: Redis hands it to the next worker once the (test-short)
    # visibility timeout has passed, flagged redelivered, and that worker takes the job over.
    celery_worker_process.start()
    wait_for(lambda: _finished(job.pk), timeout=300, describe=f"import job {job.pk} to finish")
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.attempts == 2
    assert job.worker.endswith(f":{celery_worker_process.pid}")
    # Taken over because the message came back flagged redelivered, not because a heartbeat went
    # stale (CLEAR_JOB_STALE_SECONDS is minutes).
    assert "left running by a lost worker" in celery_worker_process.log.read_text()

    videos = Video.objects.filter(examination__patient__project=project)
    assert videos.count() == len(PATIENTS)
    for video in videos:
        frames = Frame.objects.filter(video=video)
        assert sorted(
            index for index in frames.values_list("index_in_video", flat=True) if index is not None
        ) == list(range(VIDEO_FRAMES))
        assert frames.values("sha256").distinct().count() == VIDEO_FRAMES
    assert Frame.objects.filter(examination__patient__project=project).count() == VIDEO_FRAMES * len(PATIENTS)
