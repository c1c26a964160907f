"""A re-score job through a real Celery worker process on the gpu queue (CPU here: tiny model)."""

from __future__ import annotations

from pathlib import Path

import pytest
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
