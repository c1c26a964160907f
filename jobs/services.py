"""Writes to Job rows: create-and-enqueue, claim, progress, finish.

Idempotency: a worker claims a job with `select_for_update(nowait=True)` plus a status check, so a
message delivered twice runs the job once; a job left running by a killed worker can be taken over
when the message comes back (redelivered) or the job's heartbeat is stale.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from jobs.models import Job

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int | None, str], None]


@transaction.atomic
def job_create(
    *,
    kind: str,
    params: dict[str, Any],
    enqueue: Callable[[int], None],
    project_id: int | None = None,
    created_by_id: int | None = None,
) -> Job:
    """Create a queued job and enqueue it once the surrounding transaction has committed.

    `enqueue` receives the job's primary key; it runs only after commit so that a worker never looks
    for a row that does not exist yet.
    """
    job = Job.objects.create(kind=kind, params=params, project_id=project_id, created_by_id=created_by_id)
    job_id = job.pk
    transaction.on_commit(lambda: enqueue(job_id))
    return job


def job_claim(*, job_id: int, redelivered: bool = False) -> Job | None:
    """Mark the job running for this worker; None when it must not run (finished, or held elsewhere)."""
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.CLEAR_JOB_STALE_SECONDS)
    with transaction.atomic():
        try:
            job = Job.objects.select_for_update(nowait=True).get(pk=job_id)
        except Job.DoesNotExist:
            logger.warning("job %s does not exist; message dropped", job_id)
            return None
        except DatabaseError:
            logger.info("job %s is being claimed by another worker", job_id)
            return None
        if job.status == Job.Status.QUEUED:
            pass
        elif job.status == Job.Status.RUNNING and (
            redelivered or job.heartbeat_at is None or job.heartbeat_at < stale_before
        ):
            logger.warning(
                "job %s was left running by a lost worker (%s); taking it over", job_id, job.worker
            )
        else:
            logger.info("job %s is %s; nothing to do", job_id, job.status)
            return None
        job.status = Job.Status.RUNNING
        job.attempts += 1
        job.worker = f"{socket.gethostname()}:{_pid()}"
        job.started_at = job.started_at or now
        job.heartbeat_at = now
        job.error = ""
        job.save(update_fields=["status", "attempts", "worker", "started_at", "heartbeat_at", "error"])
        return job


def _pid() -> int:
    import os

    return os.getpid()


class ProgressReporter:
    """Writes progress to the job row, at most every `interval` seconds (and always at the end)."""

    def __init__(self, job_id: int, *, interval: float = 0.5) -> None:
        self.job_id = job_id
        self.interval = interval
        self._last = 0.0

    def __call__(self, done: int, total: int | None, message: str = "") -> None:
        now = time.monotonic()
        if total is not None and done < total and now - self._last < self.interval:
            return
        self._last = now
        Job.objects.filter(pk=self.job_id, status=Job.Status.RUNNING).update(
            progress_done=done,
            progress_total=total,
            message=message[:500],
            heartbeat_at=timezone.now(),
        )


def job_succeed(*, job_id: int, result: dict[str, Any], message: str = "") -> None:
    Job.objects.filter(pk=job_id).update(
        status=Job.Status.SUCCEEDED,
        result=result,
        message=message[:500],
        finished_at=timezone.now(),
        heartbeat_at=timezone.now(),
    )


def job_fail(*, job_id: int, error: str, result: dict[str, Any] | None = None) -> None:
    fields: dict[str, Any] = {
        "status": Job.Status.FAILED,
        "error": error,
        "finished_at": timezone.now(),
    }
    if result is not None:
        fields["result"] = result
    Job.objects.filter(pk=job_id).update(**fields)


def job_run(
    *,
    job_id: int,
    work: Callable[[Job, ProgressCallback], dict[str, Any]],
    redelivered: bool = False,
) -> bool:
    """Claim the job, run `work(job, progress)`, and record success or failure.

    Returns whether the work ran. An exception inside `work` fails the job with its message and is
    not re-raised: the job row is the place where failures are reported.
    """
    job = job_claim(job_id=job_id, redelivered=redelivered)
    if job is None:
        return False
    progress = ProgressReporter(job_id)
    try:
        result = work(job, progress)
    except Exception as exc:
        logger.exception("job %s failed", job_id)
        job_fail(job_id=job_id, error=f"{type(exc).__name__}: {exc}")
        return True
    job_succeed(job_id=job_id, result=result, message=str(result.get("summary", ""))[:500])
    return True
