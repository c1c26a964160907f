"""Re-score jobs through a real Celery worker process on the gpu queue (CPU here: tiny model),
including a worker killed in the middle of one."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from django.db import connection
from PIL import Image

from inference.models import Prediction
from inference.services import model_version_activate, model_version_register, rescore_job_create
from jobs.models import Job
from records.models import Project
from tests.e2e.conftest import CeleryWorker, wait_for
from tests.factories import (
    ExaminationFactory,
    ImageFrameFactory,
    LabelChoiceFactory,
    LabelTaskFactory,
    ProjectFactory,
)
from tests.inference_app.model_support import write_tiny_model_file

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
]

FRAMES = 9


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker scores 4 frames per batch, so the job goes through several batches."""
    monkeypatch.setenv("CLEAR_RESCORE_BATCH_SIZE", "4")


def test_a_rescore_job_runs_on_the_gpu_queue_worker(
    small_batches: None, celery_worker_process: CeleryWorker, tmp_path: Path, media_root: Path
) -> None:
    project: Project = ProjectFactory.create()
    task = LabelTaskFactory.create(project=project, key="quality")
    LabelChoiceFactory.create(task=task, value="good")
    LabelChoiceFactory.create(task=task, value="bad")
    examination = ExaminationFactory.create(patient__project=project)
    frames = [ImageFrameFactory.create(examination=examination) for _ in range(FRAMES)]
    version = model_version_register(
        project=project,
        task=task,
        uploaded_path=write_tiny_model_file(tmp_path / "model.safetensors"),
        name="v1",
        created_by=None,
    )
    model_version_activate(model_version=version)

    job = rescore_job_create(model_version=version, created_by=None)

    wait_for(lambda: Job.objects.get(pk=job.pk).is_finished, timeout=180, describe=f"re-score job {job.pk}")
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.worker.endswith(f":{celery_worker_process.pid}")
    assert job.result["frames_scored"] == FRAMES and job.result["frames_skipped"] == 0
    assert job.progress_done == job.progress_total == FRAMES
    assert "inference.rescore_job" in celery_worker_process.log.read_text()
    predictions = Prediction.objects.filter(model_version=version, task=task)
    assert sorted(predictions.values_list("frame_id", flat=True)) == sorted(frame.pk for frame in frames)
    for prediction in predictions:
        assert prediction.predicted_value in {"good", "bad"}
        with Image.open(media_root / prediction.cam_file) as cam:
            assert cam.format == "PNG" and cam.size == (48, 40)

    # A second job for the same version finds everything scored and adds nothing.
    again = rescore_job_create(model_version=version, created_by=None)
    wait_for(lambda: Job.objects.get(pk=again.pk).is_finished, timeout=120, describe="the second job")
    again.refresh_from_db()
    assert again.status == Job.Status.SUCCEEDED, again.error
    assert again.result["frames_scored"] == 0 and again.result["frames_skipped"] == FRAMES
    assert predictions.count() == FRAMES


# --- A worker killed in the middle of a re-score -------------------------------------------------

KILL_FRAMES = 240
KILL_BATCH_SIZE = 2


@pytest.fixture
def tiny_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker scores 2 frames per batch: 120 batches, each its own transaction, so the job runs
    for a few seconds and a kill lands between (or inside) batches with most of the job still ahead."""
    monkeypatch.setenv("CLEAR_RESCORE_BATCH_SIZE", str(KILL_BATCH_SIZE))


def _worker_backends_gone() -> bool:
    """Whether every other connection to the test database has ended (the killed worker's backend:
    PostgreSQL rolls back its open transaction, or finishes a COMMIT already sent, before it exits)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        (others,) = cursor.fetchone()
    return int(others) == 0


def _assert_complete_png(path: Path) -> None:
    """A CAM file is whole: it decodes, and its bytes hash to its content-addressed name."""
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == path.stem, f"{path} does not hold the bytes it is named by"
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        image.load()


def test_a_rescore_whose_worker_is_killed_is_finished_by_the_next_worker_without_duplicates(
    tiny_batches: None, celery_worker_process: CeleryWorker, tmp_path: Path, media_root: Path
) -> None:
    project: Project = ProjectFactory.create()
    task = LabelTaskFactory.create(project=project, key="quality")
    LabelChoiceFactory.create(task=task, value="good")
    LabelChoiceFactory.create(task=task, value="bad")
    examination = ExaminationFactory.create(patient__project=project)
    frame_ids = sorted(ImageFrameFactory.create(examination=examination).pk for _ in range(KILL_FRAMES))
    version = model_version_register(
        project=project,
        task=task,
        uploaded_path=write_tiny_model_file(tmp_path / "model.safetensors"),
        name="v1",
        created_by=None,
    )
    predictions = Prediction.objects.filter(model_version=version, task=task)

    job = rescore_job_create(model_version=version, created_by=None)

    def partly_scored() -> bool:
        current = Job.objects.get(pk=job.pk)
        assert not current.is_finished, "the re-score finished before the worker could be killed"
        return current.status == Job.Status.RUNNING and predictions.exists()

    wait_for(partly_scored, timeout=120, interval=0.02, describe="the first batch of predictions")
    celery_worker_process.kill()
    wait_for(_worker_backends_gone, timeout=30, describe="the killed worker's database session to end")

    # What the killed worker left: the job still running, whole batches of rows and no more.
    killed = Job.objects.get(pk=job.pk)
    assert killed.status == Job.Status.RUNNING and killed.attempts == 1
    left = dict(predictions.values_list("frame_id", "pk"))
    assert 0 < len(left) < KILL_FRAMES, f"the kill did not land mid-job ({len(left)} of {KILL_FRAMES})"
    assert len(left) % KILL_BATCH_SIZE == 0, f"{len(left)} rows: a batch was committed in part"
    # Frames go in id order, so what was scored is a prefix of the frames.
    assert sorted(left) == frame_ids[: len(left)]
    for prediction in predictions:
        _assert_complete_png(media_root / prediction.cam_file)

    # The message was never acknowledged: Redis hands it to the next worker once the (test-short)
    # visibility timeout has passed, flagged redelivered, and that worker takes the job over.
    celery_worker_process.start()
    wait_for(lambda: Job.objects.get(pk=job.pk).is_finished, timeout=120, describe=f"re-score job {job.pk}")
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.attempts == 2
    assert job.worker.endswith(f":{celery_worker_process.pid}")
    assert "left running by a lost worker" in celery_worker_process.log.read_text()
    # The second run skipped exactly what the first one had committed and scored the rest.
    assert job.result["frames_skipped"] == len(left)
    assert job.result["frames_scored"] == KILL_FRAMES - len(left)
    assert job.result["frames_scored"] + job.result["frames_skipped"] == KILL_FRAMES
    assert job.progress_done == job.progress_total == KILL_FRAMES

    # Exactly one prediction per frame, and the database itself refuses a second one.
    assert sorted(predictions.values_list("frame_id", flat=True)) == frame_ids
    assert Prediction.objects.filter(frame__examination=examination).count() == KILL_FRAMES
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, Prediction._meta.db_table)
    assert any(
        c["unique"] and set(c["columns"]) == {"frame_id", "model_version_id", "task_id"}
        for c in constraints.values()
    ), constraints
    # The rows the killed worker had committed were kept as they were, not written again.
    assert dict(predictions.filter(frame_id__in=left).values_list("frame_id", "pk")) == left

    # Nothing half-written: every prediction's CAM is a whole PNG of the frame's size, and so is
    # every CAM file under its final name (a kill during a write can leave only a `.tmp-` file).
    for prediction in predictions:
        assert prediction.predicted_value in {"good", "bad"}
        path = media_root / prediction.cam_file
        _assert_complete_png(path)
        with Image.open(path) as cam:
            assert cam.size == (48, 40)
    finals = [path for path in (media_root / "cams").rglob("*.png") if not path.name.startswith(".tmp-")]
    assert finals
    for path in finals:
        _assert_complete_png(path)
