"""Writes of the exports app: a snapshot and the job that builds it."""

from __future__ import annotations

from django.db import transaction

from annotations.splits import scheme_to_json
from exports.models import ExportSnapshot
from exports.params import ExportParams
from jobs.services import job_create

EXPORT_JOB_KIND = "exports.export"


@transaction.atomic
def export_snapshot_create(*, params: ExportParams, created_by_id: int | None) -> ExportSnapshot:
    """Store the snapshot's parameters and queue the job that builds it (on the `cpu` queue, after
    commit). The job belongs to the first of the snapshot's projects."""
    snapshot = ExportSnapshot.objects.create(
        task_key=params.task_key,
        label_source=str(params.label_source),
        filters=params.filters.to_json(),
        split=scheme_to_json(params.split),
        remove_near_duplicates=params.remove_near_duplicates,
        near_duplicate_distance=params.near_duplicate_distance,
        format=params.format,
        options={"include_images": params.include_images, "shard_size": params.shard_size},
        created_by_id=created_by_id,
    )
    snapshot.projects.set(params.project_ids)
    job = job_create(
        kind=EXPORT_JOB_KIND,
        params={"snapshot_id": snapshot.pk},
        project_id=min(params.project_ids),
        created_by_id=created_by_id,
        enqueue=_enqueue_export,
    )
    snapshot.job = job
    snapshot.save(update_fields=["job"])
    return snapshot


def _enqueue_export(job_id: int) -> None:
    from exports.tasks import export_job

    export_job.delay(job_id=job_id)
