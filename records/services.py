"""Writes to records that are not part of the import pipeline itself."""

from __future__ import annotations

from pathlib import Path

from django.db import transaction

from jobs.models import Job
from jobs.services import job_create
from records.importing.options import ImportOptions
from records.models import Project

IMPORT_JOB_KIND = "records.import"


@transaction.atomic
def import_job_create(
    *,
    project: Project,
    sources: list[Path],
    metadata: Path | None,
    options: ImportOptions,
    created_by_id: int | None,
    cleanup: list[Path] | None = None,
) -> Job:
    """Create an import job for files already on the server and enqueue it on the `cpu` queue.

    `cleanup` lists paths (uploaded files, their staging folder) the job deletes when it is done.
    """
    from records.tasks import import_job

    params = {
        "sources": [str(path) for path in sources],
        "metadata": str(metadata) if metadata else None,
        "options": options.to_json(),
        "cleanup": [str(path) for path in cleanup or []],
    }
    return job_create(
        kind=IMPORT_JOB_KIND,
        params=params,
        project_id=project.pk,
        created_by_id=created_by_id,
        enqueue=lambda job_id: import_job.delay(job_id=job_id),
    )
