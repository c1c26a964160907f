"""Redis restarted with a job's message in it: the message is gone, the Job row in Postgres is not,
and the beat's sweeper (jobs.sweep) sends the message again, so the job runs, exactly once.

A private redis-server (no persistence) plays the broker, so it can be restarted; a real worker
started with --beat runs the sweeper every second."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings

from config.celery import app
from jobs.models import Job
from records.importing.options import ImportOptions
from records.models import Frame, Project
from records.services import import_job_create
from tests.e2e.conftest import CeleryWorker, _database_url, _use_transport_options, wait_for
from tests.factories import ProjectFactory
from tests.faults.servers import PrivateRedis

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@contextmanager
def producer_on(broker_url: str, prefix: str) -> Iterator[None]:
    """This process publishes to `broker_url` under `prefix` inside the block."""
    saved_url = app.conf.broker_url
    saved_env = os.environ.get("CELERY_BROKER_URL")
    saved_options: dict[str, Any] = dict(app.conf.broker_transport_options or {})
    # Celery's broker_url prefers the CELERY_BROKER_URL environment variable to its configuration.
    os.environ["CELERY_BROKER_URL"] = broker_url
    app.conf["broker_url"] = broker_url
    _use_transport_options({**saved_options, "global_keyprefix": prefix})
    try:
        yield
    finally:
        if saved_env is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = saved_env
        app.conf["broker_url"] = saved_url
        _use_transport_options(saved_options)


def test_a_job_whose_message_a_redis_restart_lost_is_sent_again_by_the_sweeper_and_runs_once(
    private_redis: PrivateRedis, realdata: Path, tmp_path: Path
) -> None:
    source = realdata / "imesluh_vocalfolds" / "img" / "patient1"
    images = sorted(source.rglob("*.png"))
    prefix = f"clear-fault-{uuid.uuid4().hex[:8]}:"
    project: Project = ProjectFactory.create()
    client = redis.Redis.from_url(private_redis.url)

    with producer_on(private_redis.url, prefix):
        job = import_job_create(
            project=project, sources=[source], metadata=None, options=ImportOptions(), created_by_id=None
        )
    # The message waits in the private Redis (no worker yet) ...
    assert client.llen(f"{prefix}cpu") == 1
    assert redis.Redis.from_url(settings.CELERY_BROKER_URL).llen(f"{prefix}cpu") == 0
    private_redis.restart()
    client = redis.Redis.from_url(private_redis.url)
    # ... and the restart lost it; Postgres still says queued.
    assert client.llen(f"{prefix}cpu") == 0
    assert Job.objects.get(pk=job.pk).status == Job.Status.QUEUED

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": private_redis.url,
        "CLEAR_BROKER_KEY_PREFIX": prefix,
        "CLEAR_MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "CLEAR_UPLOAD_ROOT": str(settings.CLEAR_UPLOAD_ROOT),
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "CLEAR_JOB_SWEEP_SECONDS": "1",
        "CLEAR_JOB_QUEUED_TIMEOUT_SECONDS": "2",
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    worker = CeleryWorker(env=env, log_dir=tmp_path, extra_args=["--beat"])
    worker.start()
    try:
        wait_for(lambda: Job.objects.get(pk=job.pk).is_finished, timeout=180, describe=f"import job {job.pk}")
        job.refresh_from_db()
        assert job.status == Job.Status.SUCCEEDED, job.error
        assert job.enqueued_at is not None, "the job ran without the sweeper's message?"
        log = worker.log_text()
        assert f"job {job.pk} (records.import, queued) had no live message; sent it again" in log

        # The sweeper keeps running: let it sweep a few more times, then check that the job ran once.
        previews_id = job.result["previews_job_id"]
        wait_for(
            lambda: Job.objects.get(pk=previews_id).is_finished, timeout=120, describe="the previews job"
        )
        wait_for(lambda: worker.log_text().count("jobs.sweep") >= 8, timeout=60, describe="more sweeps")
    finally:
        worker.stop()
        print(worker.log_text())
    job.refresh_from_db()
    assert job.attempts == 1
    frames = Frame.objects.filter(examination__patient__project=project)
    assert frames.count() == len(images) == job.result["frames_created"]
    assert frames.values("sha256").distinct().count() == len(images)
    assert Job.objects.filter(project=project, kind="records.import").count() == 1
