"""Celery tasks of the records app: thin wrappers that claim a Job and call a service."""

from __future__ import annotations

import datetime
import shutil
from pathlib import Path
from typing import Any

from celery import Task

from config.celery import clear_task, was_redelivered
from jobs.models import Job
from jobs.services import ProgressCallback, job_run
from records.importing.options import ImportOptions

# Frames of an import are found by their creation time for its previews job; the margin covers
# clocks of the web and worker hosts that disagree (checking a few frames too many costs a stat).
PREVIEWS_CLOCK_MARGIN = datetime.timedelta(minutes=5)


def _run_import(job: Job, progress: ProgressCallback) -> dict[str, Any]:
    from records.importing.service import import_sources
    from records.services import previews_job_create

    params = job.params
    assert job.project_id is not None, "an import job always belongs to a project"
    report = import_sources(
        project_id=job.project_id,
        sources=[Path(path) for path in params["sources"]],
        metadata=Path(params["metadata"]) if params.get("metadata") else None,
        options=ImportOptions.from_json(params.get("options", {})),
        progress=progress,
    )
    if report.frames_created:
        previews = previews_job_create(
            project_id=job.project_id,
            created_since=job.created_at - PREVIEWS_CLOCK_MARGIN,
            created_by_id=job.created_by_id,
        )
        report.previews_job_id = previews.pk
    return report.to_json()


def _run_previews(job: Job, progress: ProgressCallback) -> dict[str, Any]:
    from records.previews import frame_previews_make

    assert job.project_id is not None, "a previews job always belongs to a project"
    since = job.params.get("created_since")
    return frame_previews_make(
        project_id=job.project_id,
        created_since=datetime.datetime.fromisoformat(since) if since else None,
        progress=progress,
    )


def _cleanup(job_id: int) -> None:
    job = Job.objects.filter(pk=job_id).only("status", "params").first()
    if job is None or not job.is_finished:
        return
    for path in job.params.get("cleanup", []):
        target = Path(path)
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)


@clear_task(queue="cpu", name="records.import_job")
def import_job(self: Task, *, job_id: int) -> bool:
    """Run import job `job_id`. Idempotent: a finished job is left alone, and a job taken over after
    a lost worker skips the frames already stored (frames are unique by content per examination)."""
    ran = job_run(job_id=job_id, work=_run_import, redelivered=was_redelivered(self))
    _cleanup(job_id)
    return ran


@clear_task(queue="cpu", name="records.previews_job")
def previews_job(self: Task, *, job_id: int) -> bool:
    """Render the missing previews of previews job `job_id`. Idempotent: existing files are skipped."""
    return job_run(job_id=job_id, work=_run_previews, redelivered=was_redelivered(self))
