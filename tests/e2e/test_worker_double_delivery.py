"""The same message delivered twice to a real worker (a broker's at-least-once delivery, or the
sweeper's resend of a message that was not lost after all): the job runs once and nothing is
stored twice. Both copies carry the same task id and keyword arguments."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from celery import Task

from inference.models import Prediction
from inference.services import RESCORE_JOB_KIND, model_version_activate, model_version_register
from inference.tasks import rescore_job
from jobs.models import Job
from jobs.services import job_create
from records.importing.options import ImportOptions
from records.models import Frame, Project
from records.services import IMPORT_JOB_KIND
from records.tasks import import_job
from tests.e2e.conftest import CeleryWorker, wait_for
from tests.factories import (
    ExaminationFactory,
    ImageFrameFactory,
    LabelChoiceFactory,
    LabelTaskFactory,
    ProjectFactory,
)
from tests.inference_app.model_support import write_tiny_model_file

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _create_delivered_twice(task: Task, *, kind: str, params: dict[str, Any], project: Project) -> Job:
    task_id = str(uuid.uuid4())

    def enqueue_twice(job_id: int) -> None:
        for _ in range(2):
            task.apply_async(kwargs={"job_id": job_id}, task_id=task_id)

    return job_create(kind=kind, params=params, project_id=project.pk, enqueue=enqueue_twice)


def _both_deliveries_seen(worker: CeleryWorker, task_name: str, times: int = 2) -> bool:
    return worker.log.read_text().count(f"Task {task_name}[") >= 2 * times  # received + succeeded


def test_an_import_message_delivered_twice_imports_once(
    celery_worker_process: CeleryWorker, realdata: Path
) -> None:
    source = realdata / "imesluh_vocalfolds" / "img" / "patient1"
    images = sorted(source.rglob("*.png"))
    project: Project = ProjectFactory.create()
    params = {
        "sources": [str(source)],
        "metadata": None,
        "options": ImportOptions().to_json(),
        "cleanup": [],
    }

    job = _create_delivered_twice(import_job, kind=IMPORT_JOB_KIND, params=params, project=project)

    wait_for(lambda: Job.objects.get(pk=job.pk).is_finished, timeout=180, describe=f"import job {job.pk}")
    wait_for(
        lambda: _both_deliveries_seen(celery_worker_process, "records.import_job"),
        timeout=60,
        describe="the second delivery",
    )
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.attempts == 1
    assert f"job {job.pk} is succeeded; nothing to do" in celery_worker_process.log.read_text()
    frames = Frame.objects.filter(examination__patient__project=project)
    assert frames.count() == len(images) == job.result["frames_created"]
    assert frames.values("sha256").distinct().count() == len(images)
    # One previews job, queued by the one run of the import.
    assert Job.objects.filter(project=project).exclude(pk=job.pk).count() == 1


FRAMES = 6


def test_a_rescore_message_delivered_twice_scores_each_frame_once(
    celery_worker_process: CeleryWorker, tmp_path: Path
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

    job = _create_delivered_twice(
        rescore_job, kind=RESCORE_JOB_KIND, params={"model_version_id": version.pk}, project=project
    )

    wait_for(lambda: Job.objects.get(pk=job.pk).is_finished, timeout=180, describe=f"re-score job {job.pk}")
    wait_for(
        lambda: _both_deliveries_seen(celery_worker_process, "inference.rescore_job"),
        timeout=60,
        describe="the second delivery",
    )
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.attempts == 1
    assert job.result["frames_scored"] == FRAMES
    assert f"job {job.pk} is succeeded; nothing to do" in celery_worker_process.log.read_text()
    predictions = Prediction.objects.filter(model_version=version, task=task)
    assert sorted(predictions.values_list("frame_id", flat=True)) == sorted(frame.pk for frame in frames)
