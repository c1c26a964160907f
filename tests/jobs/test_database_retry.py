"""A task whose database goes away is retried and its job resumed, never failed (config.celery.clear_task)."""

from __future__ import annotations

from typing import Any

import pytest
from celery import Task
from django.db import OperationalError
from django.test import override_settings

from config.celery import clear_task
from jobs.models import Job
from jobs.services import ProgressCallback, job_run

pytestmark = pytest.mark.django_db

# How often the stand-in work below has to fail before it succeeds, and what each call saw.
FAILURES: dict[str, int] = {"left": 0}
CALLS: list[dict[str, Any]] = []


def _flaky_work(job: Job, progress: ProgressCallback) -> dict[str, Any]:
    CALLS.append({"attempts": job.attempts, "status": job.status})
    if FAILURES["left"] > 0:
        FAILURES["left"] -= 1
        raise OperationalError("server closed the connection unexpectedly")
    return {"summary": "done", "calls": len(CALLS)}


@clear_task(queue="cpu", name="tests.flaky_database_job")
def flaky_database_job(self: Task, *, job_id: int) -> bool:
    return job_run(job_id=job_id, work=_flaky_work)


@pytest.fixture(autouse=True)
def _reset() -> None:
    FAILURES["left"] = 0
    CALLS.clear()


def test_a_job_whose_database_fails_mid_work_is_retried_and_resumed_not_failed() -> None:
    job = Job.objects.create(kind="tests.flaky", params={})
    FAILURES["left"] = 2

    flaky_database_job.apply(kwargs={"job_id": job.pk})

    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.error == ""
    # Three deliveries ran the work; each retry resumed the attempt the first one claimed.
    assert len(CALLS) == 3
    assert job.attempts == 3
    assert job.result == {"summary": "done", "calls": 3}


def test_a_retry_does_not_take_over_a_job_claimed_again_by_someone_else() -> None:
    """The retry resumes only its own attempt: if another delivery claimed the job meanwhile (the
    row's attempts moved on), the retry leaves it to that worker."""
    job = Job.objects.create(kind="tests.flaky", params={}, status=Job.Status.RUNNING, attempts=2)
    from django.utils import timezone

    Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now())

    flaky_database_job.apply(kwargs={"job_id": job.pk, "resume_attempt": 1})

    job.refresh_from_db()
    assert CALLS == []
    assert job.status == Job.Status.RUNNING and job.attempts == 2


@override_settings(CLEAR_TASK_DATABASE_RETRIES=2)
def test_the_retries_are_bounded() -> None:
    job = Job.objects.create(kind="tests.flaky", params={})
    FAILURES["left"] = 10

    result = flaky_database_job.apply(kwargs={"job_id": job.pk})

    assert isinstance(result.result, OperationalError)
    assert len(CALLS) == 3  # the first delivery and two retries
    job.refresh_from_db()
    # Left running (the database was down: nothing else could be written); the sweeper or a stale
    # heartbeat brings it back once the database is.
    assert job.status == Job.Status.RUNNING


def test_an_ordinary_error_still_fails_the_job_without_retry() -> None:
    def broken(job: Job, progress: ProgressCallback) -> dict[str, Any]:
        CALLS.append({})
        raise ValueError("bad input")

    job = Job.objects.create(kind="tests.flaky", params={})
    assert job_run(job_id=job.pk, work=broken) is True
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and "bad input" in job.error
    assert len(CALLS) == 1
