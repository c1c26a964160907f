"""The worker harness itself: the subprocess reads the test database and consumes this test's queue."""

from __future__ import annotations

import pytest

from jobs.models import Job
from records.importing.options import ImportOptions
from records.models import Project
from records.services import import_job_create
from tests.e2e.conftest import CeleryWorker, wait_for
from tests.factories import ProjectFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_worker_claims_a_job_committed_by_the_test_and_records_its_outcome(
    celery_worker_process: CeleryWorker,
) -> None:
    project: Project = ProjectFactory.create()
    # An import of nothing: whatever the pipeline makes of it, the worker must claim the job in the
    # test database and finish it there.
    job = import_job_create(
        project=project, sources=[], metadata=None, options=ImportOptions(), created_by_id=None
    )

    wait_for(lambda: Job.objects.get(pk=job.pk).is_finished, timeout=60, describe="the job to finish")
    job.refresh_from_db()
    assert job.attempts == 1
    assert job.worker.endswith(f":{celery_worker_process.pid}")
    assert job.finished_at is not None
