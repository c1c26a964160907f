"""jobs.services: create-and-enqueue after commit, claim (idempotency, takeover), progress, run."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone

from jobs.models import Job
from jobs.services import ProgressCallback, ProgressReporter, job_claim, job_create, job_run
from records.importing import service as import_service
from records.importing.options import ImportOptions, ImportReport
from records.models import Project
from records.services import IMPORT_JOB_KIND
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db


def _job(**fields: Any) -> Job:
    return Job.objects.create(kind="tests.noop", params={}, **fields)


# --- job_create ----------------------------------------------------------------------------------


def test_job_create_enqueues_only_after_commit(django_capture_on_commit_callbacks: Any) -> None:
    enqueued: list[int] = []
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        job = job_create(kind="tests.noop", params={"a": 1}, enqueue=enqueued.append)
        # Still inside the transaction: a worker must not hear of a row it cannot see yet.
        assert enqueued == []
    assert len(callbacks) == 1
    assert enqueued == [job.pk]
    assert Job.objects.get(pk=job.pk).status == Job.Status.QUEUED


def test_job_create_never_enqueues_a_rolled_back_job(django_capture_on_commit_callbacks: Any) -> None:
    enqueued: list[int] = []
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        try:
            with transaction.atomic():
                job_create(kind="tests.noop", params={}, enqueue=enqueued.append)
                raise RuntimeError("the request failed after creating the job")
        except RuntimeError:
            pass
    assert callbacks == []
    assert enqueued == []
    assert not Job.objects.exists()


# --- job_claim -----------------------------------------------------------------------------------


def test_claiming_a_job_twice_runs_it_once() -> None:
    job = _job()
    first = job_claim(job_id=job.pk)
    assert first is not None
    assert first.status == Job.Status.RUNNING
    assert first.attempts == 1
    assert job_claim(job_id=job.pk) is None
    assert Job.objects.get(pk=job.pk).attempts == 1


@pytest.mark.parametrize("status", Job.FINISHED)
def test_a_finished_job_is_never_claimed_again(status: str) -> None:
    job = _job(status=status)
    assert job_claim(job_id=job.pk) is None
    assert job_claim(job_id=job.pk, redelivered=True) is None
    assert Job.objects.get(pk=job.pk).status == status


def test_a_missing_job_is_not_claimed() -> None:
    assert job_claim(job_id=987_654) is None


@override_settings(CLEAR_JOB_STALE_SECONDS=60)
def test_a_running_job_with_a_stale_heartbeat_is_taken_over() -> None:
    job = _job(
        status=Job.Status.RUNNING,
        attempts=1,
        worker="lost-host:1",
        heartbeat_at=timezone.now() - timedelta(seconds=61),
    )
    claimed = job_claim(job_id=job.pk)
    assert claimed is not None
    assert claimed.attempts == 2
    assert claimed.worker != "lost-host:1"


@override_settings(CLEAR_JOB_STALE_SECONDS=60)
def test_a_running_job_with_a_fresh_heartbeat_is_left_to_its_worker() -> None:
    job = _job(status=Job.Status.RUNNING, attempts=1, worker="busy-host:1", heartbeat_at=timezone.now())
    assert job_claim(job_id=job.pk) is None
    job.refresh_from_db()
    assert (job.attempts, job.worker) == (1, "busy-host:1")


@override_settings(CLEAR_JOB_STALE_SECONDS=3600)
def test_a_redelivered_message_takes_over_a_running_job_at_once() -> None:
    # The broker only redelivers an unacknowledged message when its worker is gone, so the heartbeat
    # need not be stale for the new worker to take over.
    job = _job(status=Job.Status.RUNNING, attempts=1, worker="killed-host:1", heartbeat_at=timezone.now())
    claimed = job_claim(job_id=job.pk, redelivered=True)
    assert claimed is not None
    assert claimed.attempts == 2


@pytest.mark.django_db(transaction=True)
def test_a_claim_while_another_worker_holds_the_row_lock_returns_none() -> None:
    job = _job()
    locked = threading.Event()
    release = threading.Event()
    errors: list[BaseException] = []

    def hold_lock() -> None:
        # Another thread has its own database connection: a second worker in the middle of its claim.
        try:
            with transaction.atomic():
                Job.objects.select_for_update().get(pk=job.pk)
                locked.set()
                release.wait(timeout=30)
        except BaseException as exc:  # reported to the main thread below
            errors.append(exc)
            locked.set()
        finally:
            connection.close()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert locked.wait(timeout=30)
        assert job_claim(job_id=job.pk) is None
    finally:
        release.set()
        holder.join(timeout=30)
    assert errors == []
    assert Job.objects.get(pk=job.pk).status == Job.Status.QUEUED
    # Once the lock is gone the job can be claimed as usual.
    assert job_claim(job_id=job.pk) is not None


# --- ProgressReporter ----------------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_progress_is_throttled_but_the_final_value_is_always_written(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock()
    monkeypatch.setattr("jobs.services.time.monotonic", clock)
    job = _job(status=Job.Status.RUNNING)
    report = ProgressReporter(job.pk, interval=5.0)

    report(1, 10, "first")
    job.refresh_from_db()
    assert (job.progress_done, job.progress_total, job.message) == (1, 10, "first")

    clock.now += 1.0
    report(2, 10, "too soon")
    job.refresh_from_db()
    assert job.progress_done == 1

    clock.now += 0.5
    report(10, 10, "done")  # the final value is written however soon it comes
    job.refresh_from_db()
    assert (job.progress_done, job.message) == (10, "done")
    assert job.progress == 1.0

    clock.now += 5.0
    report(11, None, "unknown total")  # an unknown total cannot be final: throttled by time only
    job.refresh_from_db()
    assert (job.progress_done, job.progress_total) == (11, None)


def test_progress_of_a_job_that_is_no_longer_running_is_not_written() -> None:
    job = _job(status=Job.Status.CANCELLED)
    ProgressReporter(job.pk)(5, 5, "late")
    job.refresh_from_db()
    assert job.progress_done == 0


# --- job_run -------------------------------------------------------------------------------------


def test_job_run_records_success_with_the_result() -> None:
    job = _job()
    seen: list[int] = []

    def work(running: Job, progress: ProgressCallback) -> dict[str, Any]:
        seen.append(running.attempts)
        progress(3, 3, "all done")
        return {"frames": 3, "summary": "3 frames"}

    assert job_run(job_id=job.pk, work=work) is True
    job.refresh_from_db()
    assert seen == [1]
    assert job.status == Job.Status.SUCCEEDED
    assert job.result == {"frames": 3, "summary": "3 frames"}
    assert job.message == "3 frames"
    assert job.finished_at is not None
    assert job.progress_done == 3


def test_job_run_records_a_failure_with_its_message_without_raising() -> None:
    job = _job()

    def work(running: Job, progress: ProgressCallback) -> dict[str, Any]:
        raise ValueError("the metadata sheet has no patient column")

    assert job_run(job_id=job.pk, work=work) is True
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.error == "ValueError: the metadata sheet has no patient column"
    assert job.finished_at is not None


def test_job_run_does_not_run_a_finished_job() -> None:
    job = _job(status=Job.Status.SUCCEEDED, result={"kept": True})
    calls: list[int] = []

    def work(running: Job, progress: ProgressCallback) -> dict[str, Any]:
        calls.append(running.pk)
        return {}

    assert job_run(job_id=job.pk, work=work) is False
    assert calls == []
    job.refresh_from_db()
    assert job.result == {"kept": True}


# --- the import task, run twice ------------------------------------------------------------------


def _import_job(project_id: int, sources: list[Path]) -> Job:
    # Created directly rather than through import_job_create: these tests run the task eagerly and
    # must not leave a message in the shared test broker.
    return Job.objects.create(
        kind=IMPORT_JOB_KIND,
        project_id=project_id,
        params={
            "sources": [str(path) for path in sources],
            "metadata": None,
            "options": ImportOptions().to_json(),
            "cleanup": [],
        },
    )


def test_import_task_run_twice_imports_once_with_a_stand_in_service(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from records.tasks import import_job

    calls: list[dict[str, Any]] = []

    def fake_import_sources(**kwargs: Any) -> ImportReport:
        calls.append(kwargs)
        kwargs["progress"](4, 4, "imported")
        return ImportReport(frames_created=4)

    monkeypatch.setattr(import_service, "import_sources", fake_import_sources)

    project: Project = ProjectFactory.create()
    job = _import_job(project.pk, [tmp_path])

    assert import_job.apply(kwargs={"job_id": job.pk}).get() is True
    assert import_job.apply(kwargs={"job_id": job.pk}).get() is False

    assert len(calls) == 1
    assert calls[0]["project_id"] == project.pk
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED
    assert job.attempts == 1
    assert job.result["frames_created"] == 4


def test_import_task_run_twice_imports_real_frames_once(realdata: Path) -> None:
    from records.models import Frame
    from records.tasks import import_job

    source = realdata / "imesluh_vocalfolds" / "img" / "patient1"
    project: Project = ProjectFactory.create()
    job = _import_job(project.pk, [source])

    assert import_job.apply(kwargs={"job_id": job.pk}).get() is True
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    frames = Frame.objects.filter(examination__patient__project=project).count()
    assert frames == len(list(source.rglob("*.png"))), job.result

    assert import_job.apply(kwargs={"job_id": job.pk}).get() is False
    job.refresh_from_db()
    assert job.attempts == 1
    assert Frame.objects.filter(examination__patient__project=project).count() == frames
