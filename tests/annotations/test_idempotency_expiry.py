"""Idempotency-Keys are forgotten after CLEAR_IDEMPOTENCY_KEY_TTL_HOURS, by an hourly beat task,
and a retry that comes after that still cannot duplicate or overwrite a label."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.utils import timezone

from annotations.models import Annotation, IdempotencyRecord
from annotations.services import AnnotationConflict, annotation_submit, idempotency_records_purge
from annotations.tasks import purge_idempotency_records
from config.celery import app
from tests.annotations.support import frame_in, quality_task
from tests.factories import ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup() -> dict[str, Any]:
    project = ProjectFactory.create()
    return {"task": quality_task(project), "frame": frame_in(project), "user": UserFactory.create()}


def submit(setup: dict[str, Any], **fields: Any) -> Any:
    fields.setdefault("value", "good")
    fields.setdefault("confidence", 4)
    return annotation_submit(frame=setup["frame"], task=setup["task"], annotator=setup["user"], **fields)


def _age(key: str, hours: float) -> None:
    IdempotencyRecord.objects.filter(key=key).update(
        created_at=timezone.now() - datetime.timedelta(hours=hours)
    )


def test_keys_older_than_the_ttl_are_forgotten_and_younger_ones_kept(setup, settings) -> None:
    settings.CLEAR_IDEMPOTENCY_KEY_TTL_HOURS = 24
    submit(setup, idempotency_key="old")
    submit(setup, value="bad", version=1, idempotency_key="recent")
    _age("old", 25)
    _age("recent", 23)

    assert idempotency_records_purge() == 1

    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["recent"]


def test_a_retry_after_its_key_expired_is_a_conflict_not_a_duplicate(setup, settings) -> None:
    settings.CLEAR_IDEMPOTENCY_KEY_TTL_HOURS = 1
    submit(setup, idempotency_key="create")
    submit(setup, value="bad", version=1, idempotency_key="update")
    _age("create", 2)
    _age("update", 2)
    purge_idempotency_records.apply()  # the beat task, run in this process

    with pytest.raises(AnnotationConflict):
        submit(setup, idempotency_key="create")
    with pytest.raises(AnnotationConflict):
        submit(setup, value="bad", version=1, idempotency_key="update")
    annotation = Annotation.objects.get()
    assert (annotation.value, annotation.version) == ("bad", 2)


def test_the_purge_is_scheduled_hourly_without_a_pickled_schedule_file() -> None:
    entry = app.conf.beat_schedule["purge-idempotency-records"]
    assert entry["task"] == purge_idempotency_records.name
    assert entry["schedule"] == 3600.0
    # The default PersistentScheduler keeps its state in a shelve (pickle) file.
    assert app.conf.beat_scheduler == "celery.beat:Scheduler"
