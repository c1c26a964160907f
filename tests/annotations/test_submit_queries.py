"""The submit's database work: a new Idempotency-Key costs one statement (the insert that also locks
it), a key seen before the locking read, and the outcome is still stored and replayed."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotations.models import Annotation, IdempotencyRecord
from records.models import ProjectMembership
from tests.annotations.support import frame_in, quality_task
from tests.factories import ProjectFactory
from tests.records.api_support import client_for, member_of

pytestmark = pytest.mark.django_db
Role = ProjectMembership.Role


@pytest.fixture
def scene() -> dict[str, Any]:
    project = ProjectFactory.create()
    task = quality_task(project)
    frames = [frame_in(project), frame_in(project)]
    reader = member_of(project, Role.READER)
    client = client_for(reader)
    return {"task": task, "frames": frames, "reader": reader, "client": client}


def submit(scene: dict[str, Any], frame: Any, key: str) -> tuple[Any, list[str]]:
    url = f"/api/frames/{frame.pk}/annotations/{scene['task'].pk}/"
    with CaptureQueriesContext(connection) as captured:
        response = scene["client"].put(
            url, {"value": "good", "confidence": 4}, format="json", headers={"Idempotency-Key": key}
        )
    return response, [query["sql"] for query in captured.captured_queries]


def idempotency_statements(sqls: list[str]) -> list[str]:
    return [sql.split(" ", 1)[0] for sql in sqls if "annotations_idempotencyrecord" in sql]


def test_a_new_key_is_inserted_and_locked_in_one_statement(scene):
    submit(scene, scene["frames"][0], "warm-up")  # session, content types

    response, sqls = submit(scene, scene["frames"][1], "new-key")

    assert response.status_code == 201
    # The insert (which returns the new row, locked) and the stored outcome; no locking read.
    assert idempotency_statements(sqls) == ["INSERT", "UPDATE"]
    # Besides savepoints and the session: the user, the frame with the task and the choice (one
    # statement), the key, the annotation's insert (no locking read before it) and history row, and
    # the stored outcome (10, then 9, then 7 before; test_label_path_queries.py pins the
    # token-authenticated request's statements).
    statements = [
        sql
        for sql in sqls
        if not sql.startswith(("SAVEPOINT", "RELEASE SAVEPOINT")) and '"django_session"' not in sql
    ]
    assert len(statements) == 6, statements
    record = IdempotencyRecord.objects.get(user=scene["reader"], key="new-key")
    annotation = Annotation.objects.get(frame=scene["frames"][1], task=scene["task"])
    assert record.response is not None
    assert (record.status_code, record.response["id"], record.response["version"]) == (201, annotation.pk, 1)
    assert record.created_at is not None


def test_a_key_seen_before_is_read_locked_and_replayed(scene):
    first, _ = submit(scene, scene["frames"][0], "same-key")

    retry, sqls = submit(scene, scene["frames"][0], "same-key")

    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry["Idempotent-Replayed"] == "true" and retry.json() == first.json()
    assert idempotency_statements(sqls) == ["INSERT", "SELECT"]
    assert Annotation.objects.filter(frame=scene["frames"][0]).count() == 1
    assert IdempotencyRecord.objects.filter(key="same-key").count() == 1
