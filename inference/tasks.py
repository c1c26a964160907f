"""Celery tasks of the inference app: thin wrappers that claim a Job and call a service."""

from __future__ import annotations

from typing import Any

from celery import Task

from config.celery import clear_task, was_redelivered
from jobs.models import Job
from jobs.services import CancelCheck, ProgressCallback, job_run


def _run_rescore(job: Job, progress: ProgressCallback) -> dict[str, Any]:
    from inference.models import ModelVersion
    from inference.services import model_version_score_frames

    model_version = ModelVersion.objects.get(pk=job.params["model_version_id"])
    return model_version_score_frames(
        model_version=model_version,
        examination_ids=job.params.get("examination_ids") or None,
        progress=progress,
    )


@clear_task(queue="gpu", name="inference.rescore_job")
def rescore_job(self: Task, *, job_id: int) -> bool:
    """Run re-score job `job_id`. Idempotent: frames already scored by the version are skipped, so
    a second delivery, or a take-over after a lost worker, scores only what is missing."""
    return job_run(job_id=job_id, work=_run_rescore, redelivered=was_redelivered(self))


def _run_training(job: Job, progress: ProgressCallback) -> dict[str, Any]:
    from inference.training import run_of_job, training_run_execute

    return training_run_execute(run=run_of_job(job), progress=progress, cancel=CancelCheck(job.pk))


@clear_task(queue="gpu", name="inference.training_job")
def training_job(self: Task, *, job_id: int) -> bool:
    """Run training job `job_id`. A second delivery of a finished job does nothing; a take-over
    after a lost worker goes on after the last fold the run saved (see inference.training)."""
    return job_run(job_id=job_id, work=_run_training, redelivered=was_redelivered(self))


@clear_task(queue="cpu", name="inference.retrain_check")
def retrain_check(self: Task) -> list[int]:
    """Periodic (config.celery's beat_schedule): start the training runs that retrain policies call
    for. Idempotent: a policy's task with a run queued or running is skipped."""
    from inference.training import retrain_check as check

    return check()
