"""The sweeper (jobs.sweep, beat): which jobs get their message sent again after a broker lost it."""

from __future__ import annotations

import inspect
from datetime import timedelta
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone

from config.celery import app
from jobs.models import Job
from jobs.services import JOB_TASKS, JobTask, jobs_needing_redelivery, jobs_sweep

pytestmark = pytest.mark.django_db

QUEUED_TIMEOUT = 600
STALE = 300


def _job(*, age_s: float, status: str = Job.Status.QUEUED, **fields: Any) -> Job:
    job = Job.objects.create(kind="records.import", params={}, status=status, **fields)
    Job.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(seconds=age_s))
    return job


@pytest.fixture(autouse=True)
def _timeouts() -> Any:
    with override_settings(CLEAR_JOB_QUEUED_TIMEOUT_SECONDS=QUEUED_TIMEOUT, CLEAR_JOB_STALE_SECONDS=STALE):
        yield


def _ago(seconds: float) -> Any:
    return timezone.now() - timedelta(seconds=seconds)


def _selected() -> set[int]:
    return {job.pk for job in jobs_needing_redelivery(now=timezone.now())}


def test_a_job_queued_too_long_is_selected_and_a_fresh_one_is_not() -> None:
    old = _job(age_s=QUEUED_TIMEOUT + 5)
    _job(age_s=QUEUED_TIMEOUT - 60)
    assert _selected() == {old.pk}


def test_a_running_job_with_a_stale_heartbeat_is_selected_and_a_beating_one_is_not() -> None:
    stale = _job(age_s=3600, status=Job.Status.RUNNING, started_at=_ago(3600), heartbeat_at=_ago(STALE + 5))
    _job(age_s=3600, status=Job.Status.RUNNING, started_at=_ago(3600), heartbeat_at=_ago(STALE - 60))
    never_beat = _job(age_s=3600, status=Job.Status.RUNNING, started_at=_ago(STALE + 5))
    assert _selected() == {stale.pk, never_beat.pk}


@pytest.mark.parametrize("status", [Job.Status.SUCCEEDED, Job.Status.FAILED, Job.Status.CANCELLED])
def test_a_finished_job_is_never_selected(status: str) -> None:
    _job(age_s=QUEUED_TIMEOUT * 10, status=status, heartbeat_at=_ago(STALE * 10))
    assert _selected() == set()


def test_a_job_asked_to_stop_or_of_an_unknown_kind_is_not_selected() -> None:
    _job(age_s=QUEUED_TIMEOUT + 5, cancel_requested_at=timezone.now())
    unknown = _job(age_s=QUEUED_TIMEOUT + 5)
    Job.objects.filter(pk=unknown.pk).update(kind="tests.nothing-runs-this")
    assert _selected() == set()


def test_a_job_sent_again_lately_is_not_sent_again_until_the_timeout_passes() -> None:
    job = _job(age_s=QUEUED_TIMEOUT * 3, enqueued_at=_ago(QUEUED_TIMEOUT - 60))
    assert _selected() == set()
    Job.objects.filter(pk=job.pk).update(enqueued_at=_ago(QUEUED_TIMEOUT + 5))
    assert _selected() == {job.pk}


def test_the_sweep_sends_each_lost_job_once_after_commit_with_its_task_and_queue(
    django_capture_on_commit_callbacks: Any,
) -> None:
    queued = _job(age_s=QUEUED_TIMEOUT + 5)
    running = _job(age_s=3600, status=Job.Status.RUNNING, started_at=_ago(3600), heartbeat_at=_ago(STALE + 5))
    Job.objects.filter(pk=running.pk).update(kind="inference.rescore")
    sent: list[tuple[JobTask, int]] = []

    with django_capture_on_commit_callbacks(execute=True):
        ids = jobs_sweep(send=lambda task, job_id: sent.append((task, job_id)))

    # Oldest first: the running job was created an hour ago.
    assert ids == [running.pk, queued.pk]
    assert sent == [
        (JobTask("inference.rescore_job", "gpu"), running.pk),
        (JobTask("records.import_job", "cpu"), queued.pk),
    ]
    assert all(job.enqueued_at is not None for job in Job.objects.filter(pk__in=ids))
    # A second sweep right after finds nothing to send: at most one extra message per period.
    with django_capture_on_commit_callbacks(execute=True):
        assert jobs_sweep(send=lambda task, job_id: sent.append((task, job_id))) == []
    assert len(sent) == 2


def test_every_job_kind_the_code_creates_has_its_task_on_its_queue() -> None:
    import exports.services
    import inference.services
    import inference.training
    import records.previews
    import records.services

    kinds = {
        records.services.IMPORT_JOB_KIND,
        records.previews.PREVIEWS_JOB_KIND,
        exports.services.EXPORT_JOB_KIND,
        inference.services.RESCORE_JOB_KIND,
        inference.training.TRAIN_JOB_KIND,
    }
    assert set(JOB_TASKS) == kinds
    app.loader.import_default_modules()
    for kind, job_task in JOB_TASKS.items():
        task = app.tasks[job_task.name]
        assert getattr(task, "queue") == job_task.queue, kind  # noqa: B009 (not in the Task stubs)
        parameters = inspect.signature(getattr(task.run, "__wrapped__")).parameters  # noqa: B009
        assert parameters["job_id"].kind is inspect.Parameter.KEYWORD_ONLY, kind


def test_the_beat_runs_the_sweeper_on_the_configured_period() -> None:
    from django.conf import settings

    entry = app.conf.beat_schedule["sweep-jobs"]
    assert entry["task"] == "jobs.sweep"
    assert entry["schedule"] == float(settings.CLEAR_JOB_SWEEP_SECONDS)
    app.loader.import_default_modules()
    assert getattr(app.tasks["jobs.sweep"], "queue") == "cpu"  # noqa: B009
