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
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, transaction
from django.db.models import Q
from django.utils import timezone

from jobs.models import Job

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int | None, str], None]

# A lost or restarting database: the work is retried (config.celery.clear_task), never failed for it.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)

# Set by config.celery.clear_task around one delivery of a task. `resume_attempt` is the attempt
# number a retried delivery claimed before the database went away: the job row still says running
# (the failed attempt could not write anything else), and this delivery may take it over exactly
# when nobody claimed it since (the row's `attempts` is still that number). `claimed_attempt` is
# what job_run claimed in this delivery, handed to the retry.
resume_attempt: ContextVar[int | None] = ContextVar("resume_attempt", default=None)
claimed_attempt: ContextVar[int | None] = ContextVar("claimed_attempt", default=None)


class JobCancelled(Exception):
    """Raised inside a job's work when a user asked it to stop (see job_cancel, cancel_requested)."""


class JobNotCancellable(Exception):
    """The job has finished already."""


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


def job_claim(*, job_id: int, redelivered: bool = False, resume: int | None = None) -> Job | None:
    """Mark the job running for this worker; None when it must not run (finished, or held elsewhere).

    `resume`: the attempt a retry after a database outage continues (see `resume_attempt`)."""
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.CLEAR_JOB_STALE_SECONDS)
    with transaction.atomic():
        try:
            job = Job.objects.select_for_update(nowait=True).get(pk=job_id)
        except Job.DoesNotExist:
            logger.warning("job %s does not exist; message dropped", job_id)
            return None
        except DatabaseError as exc:
            if not _lock_not_available(exc):
                raise  # the database itself is unavailable: the task is retried (clear_task)
            logger.info("job %s is being claimed by another worker", job_id)
            return None
        if job.status == Job.Status.QUEUED:
            pass
        elif job.status == Job.Status.RUNNING and resume is not None and job.attempts == resume:
            logger.warning("job %s: resuming attempt %s after the database came back", job_id, resume)
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


def _lock_not_available(exc: DatabaseError) -> bool:
    """Whether NOWAIT found the row locked (SQLSTATE 55P03), as opposed to a lost connection."""
    return getattr(exc.__cause__, "sqlstate", None) == "55P03"


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


@transaction.atomic
def job_cancel(*, job_id: int) -> Job:
    """Stop a job: a queued one is cancelled at once (a worker that picks its message up later
    finds it finished and drops it); a running one is asked to stop, which its work notices at its
    next check (cancel_requested) and ends cancelled. JobNotCancellable for a finished job."""
    job = Job.objects.select_for_update().get(pk=job_id)
    if job.is_finished:
        raise JobNotCancellable(f"The job is {job.status} already.")
    now = timezone.now()
    job.cancel_requested_at = job.cancel_requested_at or now
    fields = ["cancel_requested_at"]
    if job.status == Job.Status.QUEUED:
        job.status = Job.Status.CANCELLED
        job.finished_at = now
        job.message = "Cancelled before it started."
        fields += ["status", "finished_at", "message"]
    job.save(update_fields=fields)
    return job


def cancel_requested(job_id: int) -> bool:
    return Job.objects.filter(pk=job_id, cancel_requested_at__isnull=False).exists()


class CancelCheck:
    """For long work: `check()` raises JobCancelled once a stop was asked for, looking at the job
    row at most every `interval` seconds. Each look also beats the job's heartbeat, so that a long
    stretch without progress (an epoch of a large model) is not mistaken for a lost worker."""

    def __init__(self, job_id: int, *, interval: float = 2.0) -> None:
        self.job_id = job_id
        self.interval = interval
        self._last = time.monotonic()

    def requested(self) -> bool:
        now = time.monotonic()
        if now - self._last < self.interval:
            return False
        self._last = now
        Job.objects.filter(pk=self.job_id, status=Job.Status.RUNNING).update(heartbeat_at=timezone.now())
        return cancel_requested(self.job_id)

    def check(self) -> None:
        if self.requested():
            raise JobCancelled("Cancelled by a user.")


def job_cancelled(*, job_id: int, result: dict[str, Any] | None = None) -> None:
    fields: dict[str, Any] = {
        "status": Job.Status.CANCELLED,
        "message": "Cancelled by a user.",
        "finished_at": timezone.now(),
    }
    if result is not None:
        fields["result"] = result
    Job.objects.filter(pk=job_id).update(**fields)


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
    job = job_claim(job_id=job_id, redelivered=redelivered, resume=resume_attempt.get())
    if job is None:
        return False
    claimed_attempt.set(job.attempts)
    progress = ProgressReporter(job_id)
    try:
        result = work(job, progress)
    except DATABASE_UNAVAILABLE:
        # Not the job's fault, and the row cannot be written now anyway: the task is retried once
        # the database answers again, and resumes this attempt (work is idempotent).
        raise
    except JobCancelled:
        logger.info("job %s was cancelled", job_id)
        job_cancelled(job_id=job_id)
        return True
    except Exception as exc:
        logger.exception("job %s failed", job_id)
        job_fail(job_id=job_id, error=f"{type(exc).__name__}: {exc}")
        return True
    job_succeed(job_id=job_id, result=result, message=str(result.get("summary", ""))[:500])
    return True


# --- the sweeper: messages lost by the broker --------------------------------------------------


@dataclass(frozen=True)
class JobTask:
    """The Celery task that runs jobs of one kind, and its queue."""

    name: str
    queue: str


# Every job kind with the task that runs it (`job_id` keyword only). A test checks this against the
# registered tasks, so a new kind without an entry here is noticed.
JOB_TASKS: dict[str, JobTask] = {
    "records.import": JobTask("records.import_job", "cpu"),
    "records.previews": JobTask("records.previews_job", "cpu"),
    "exports.export": JobTask("exports.export_job", "cpu"),
    "inference.rescore": JobTask("inference.rescore_job", "gpu"),
    "inference.train": JobTask("inference.training_job", "gpu"),
}


def jobs_needing_redelivery(*, now: datetime) -> list[Job]:
    """Jobs whose message the broker has probably lost (a Redis restart keeps nothing in memory).

    - queued for longer than CLEAR_JOB_QUEUED_TIMEOUT_SECONDS: no worker has taken it;
    - running with no heartbeat for CLEAR_JOB_STALE_SECONDS: its worker is gone, and so, with the
      broker restarted, is the unacknowledged message that would have brought it back;

    and not sent again by the sweeper within the queued timeout (so that a job merely waiting behind
    a long queue gets at most one extra message per period, not one per sweep).
    """
    queued_before = now - timedelta(seconds=settings.CLEAR_JOB_QUEUED_TIMEOUT_SECONDS)
    stale_before = now - timedelta(seconds=settings.CLEAR_JOB_STALE_SECONDS)
    never_beat = Q(heartbeat_at__isnull=True) & (Q(started_at__isnull=True) | Q(started_at__lt=stale_before))
    lost = Q(status=Job.Status.QUEUED, created_at__lt=queued_before) | (
        Q(status=Job.Status.RUNNING) & (Q(heartbeat_at__lt=stale_before) | never_beat)
    )
    not_sent_lately = Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=queued_before)
    return list(
        Job.objects.filter(lost & not_sent_lately, kind__in=JOB_TASKS, cancel_requested_at__isnull=True)
        .order_by("created_at", "id")
        .only("id", "kind", "status", "enqueued_at")
    )


def jobs_sweep(
    *, now: datetime | None = None, send: Callable[[JobTask, int], None] | None = None
) -> list[int]:
    """Send the message of every job `jobs_needing_redelivery` finds again; returns their ids.

    A job is marked (`enqueued_at`) with a conditional UPDATE before its message goes out after
    commit, so two sweepers racing send it once. A message that turns out not to have been lost is
    harmless: the claim runs a job once however many messages arrive (job_claim).
    """
    now = now or timezone.now()
    deliver = send or _send
    sent: list[int] = []
    for job in jobs_needing_redelivery(now=now):
        with transaction.atomic():
            marked = Job.objects.filter(pk=job.pk, status=job.status, enqueued_at=job.enqueued_at).update(
                enqueued_at=now
            )
            if not marked:
                continue
            task, job_id = JOB_TASKS[job.kind], job.pk
            transaction.on_commit(lambda task=task, job_id=job_id: deliver(task, job_id))  # type: ignore[misc]
        logger.warning("job %s (%s, %s) had no live message; sent it again", job.pk, job.kind, job.status)
        sent.append(job.pk)
    return sent


def _send(task: JobTask, job_id: int) -> None:
    from config.celery import app

    app.send_task(task.name, kwargs={"job_id": job_id}, queue=task.queue)
