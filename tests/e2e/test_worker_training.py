"""Training runs through a real Celery worker process on the gpu queue (CPU here, tiny model): a run
with per-epoch progress; a run stopped through the API; and a run whose worker is killed mid-way,
finished by the next worker from its last saved fold with exactly one model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from inference.models import ModelVersion, TrainingRun
from inference.training import training_run_create
from jobs.models import Job
from records.models import Project
from tests.e2e.conftest import CeleryWorker, wait_for
from tests.factories import ProjectFactory
from tests.inference_app.training_support import diagnosis_task, texture_dataset
from tests.records.api_support import Role, client_for, member_of

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

TINY = {"architecture": "cnn_lstm", "input_size": 32, "batch_size": 8, "learning_rate": 3e-3, "seed": 1}


def make_run(project: Project, *, epochs: int, evaluation: dict[str, Any], name: str = "run") -> TrainingRun:
    return training_run_create(
        project=project,
        task=project.label_tasks.get(key="diagnosis"),
        name=name,
        label_source="reference",
        config={**TINY, "epochs": epochs},
        evaluation=evaluation,
        created_by=None,
    )


@pytest.fixture
def project(media_root: Path) -> Project:
    made: Project = ProjectFactory.create()
    diagnosis_task(made)
    texture_dataset(made, patients=4, per_class=3)
    return made


def test_a_training_run_goes_through_the_gpu_worker(
    project: Project, celery_worker_process: CeleryWorker
) -> None:
    run = make_run(project, epochs=2, evaluation={"scheme": "kfold", "k": 2})

    wait_for(lambda: Job.objects.get(pk=run.job_id).is_finished, timeout=240, describe="the training job")
    job = Job.objects.get(pk=run.job_id)
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.worker.endswith(f":{celery_worker_process.pid}")
    assert job.progress_done == job.progress_total == 2 * 3
    assert "inference.training_job" in celery_worker_process.log.read_text()
    run.refresh_from_db()
    assert len(run.folds) == 2 and run.model_version is not None
    assert run.model_version.status == ModelVersion.Status.CANDIDATE


def test_a_running_training_run_is_stopped_through_the_api(
    project: Project, celery_worker_process: CeleryWorker
) -> None:
    run = make_run(project, epochs=400, evaluation={"scheme": "kfold", "k": 2})
    wait_for(
        lambda: Job.objects.get(pk=run.job_id).progress_done >= 1, timeout=240, describe="the first epoch"
    )
    coordinator = client_for(member_of(project, Role.COORDINATOR))
    response = coordinator.post(f"/api/training-runs/{run.pk}/cancel/")
    assert response.status_code == 200, response.content
    wait_for(lambda: Job.objects.get(pk=run.job_id).is_finished, timeout=60, describe="the stop")
    job = Job.objects.get(pk=run.job_id)
    assert job.status == Job.Status.CANCELLED and job.progress_done < job.progress_total  # type: ignore[operator]
    assert ModelVersion.objects.count() == 0


def test_a_run_whose_worker_is_killed_is_finished_by_the_next_worker_from_its_last_fold(
    project: Project, celery_worker_process: CeleryWorker, media_root: Path
) -> None:
    run = make_run(project, epochs=30, evaluation={"scheme": "kfold", "k": 4})

    def one_fold_saved() -> bool:
        assert not Job.objects.get(pk=run.job_id).is_finished, "the run finished before the kill"
        return len(TrainingRun.objects.get(pk=run.pk).folds) >= 1

    wait_for(one_fold_saved, timeout=240, interval=0.05, describe="the first saved fold")
    celery_worker_process.kill()
    left = TrainingRun.objects.get(pk=run.pk)
    saved = json.dumps(left.folds, sort_keys=True)
    assert 1 <= len(left.folds) < 4 and left.model_version is None
    assert ModelVersion.objects.count() == 0  # nothing registered, whole or half

    celery_worker_process.start()
    wait_for(lambda: Job.objects.get(pk=run.job_id).is_finished, timeout=300, describe="the taken-over run")
    job = Job.objects.get(pk=run.job_id)
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.attempts == 2 and "left running by a lost worker" in celery_worker_process.log.read_text()
    run.refresh_from_db()
    assert [fold["name"] for fold in run.folds] == ["fold_0", "fold_1", "fold_2", "fold_3"]
    # The folds the killed worker saved were kept as they were, not trained again.
    assert json.dumps(run.folds[: len(left.folds)], sort_keys=True) == saved
    assert ModelVersion.objects.count() == 1 and run.model_version is not None
    assert (media_root / run.model_version.file).is_file()
