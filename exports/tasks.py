"""Celery task of the exports app: a thin wrapper that claims the Job and builds the snapshot."""

from __future__ import annotations

from typing import Any

from celery import Task

from config.celery import clear_task, was_redelivered
from jobs.models import Job
from jobs.services import ProgressCallback, job_run


def _run_export(job: Job, progress: ProgressCallback) -> dict[str, Any]:
    from exports.build import export_snapshot_build

    return export_snapshot_build(snapshot_id=int(job.params["snapshot_id"]), progress=progress)


@clear_task(queue="cpu", name="exports.export_job")
def export_job(self: Task, *, job_id: int) -> bool:
    """Build export job `job_id`'s snapshot. Idempotent: a finished job is left alone, and a job taken
    over from a lost worker deletes that worker's partial files and builds the archive afresh."""
    return job_run(job_id=job_id, work=_run_export, redelivered=was_redelivered(self))
