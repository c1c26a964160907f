"""annotation_submit: create, versioned update, conflicts, idempotency, refusals, history, races."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection

from annotations.models import Annotation, IdempotencyRecord
from annotations.selectors import annotation_history
from annotations.services import (
    AnnotationConflict,
    AnnotationRefused,
    IdempotencyKeyReused,
    annotation_submit,
    label_choice_update,
    label_task_update,
)
from tests.annotations.support import frame_in, quality_task
from tests.factories import MembershipFactory, ProjectFactory, UserFactory


@pytest.fixture
def setup(db: Any) -> dict[str, Any]:
    project = ProjectFactory.create()
    return {"task": quality_task(project), "frame": frame_in(project), "user": UserFactory.create()}


def submit(setup: dict[str, Any], **fields: Any) -> Any:
    fields.setdefault("value", "good")
    fields.setdefault("confidence", 4)
    return annotation_submit(frame=setup["frame"], task=setup["task"], annotator=setup["user"], **fields)


def test_first_submit_creates_version_one(setup):
    # The exposure needs a member who may see model output (see test_ai_exposure.py).
    project = setup["task"].project
    project.ai_assistance = "prediction"
    project.save(update_fields=["ai_assistance"])
    MembershipFactory.create(project=project, user=setup["user"], role="reader")

    outcome = submit(setup, time_on_frame_ms=1200, ai_shown=True)

    assert outcome.created and not outcome.replayed
    annotation = Annotation.objects.get()
    assert (annotation.value, annotation.confidence, annotation.version) == ("good", 4, 1)
    assert (annotation.time_on_frame_ms, annotation.ai_shown, annotation.context) == (1200, True, "free")


def test_submit_with_the_current_version_updates_and_bumps_it(setup):
    submit(setup)

    outcome = submit(setup, value="bad", confidence=2, version=1)

    assert not outcome.created and outcome.annotation["version"] == 2
    assert Annotation.objects.get().value == "bad"


def test_stale_version_is_a_conflict_carrying_the_current_state_and_overwrites_nothing(setup):
    submit(setup)
    submit(setup, value="bad", version=1)

    with pytest.raises(AnnotationConflict) as caught:
        submit(setup, value="good", confidence=5, version=1)

    assert caught.value.current is not None
    assert (caught.value.current.value, caught.value.current.version) == ("bad", 2)
    assert Annotation.objects.get().value == "bad"


def test_submit_without_version_over_an_existing_annotation_is_a_conflict(setup):
    submit(setup)

    with pytest.raises(AnnotationConflict):
        submit(setup, value="bad")


def test_unchanged_resubmit_keeps_the_version(setup):
    submit(setup)

    outcome = submit(setup, version=1)

    assert outcome.annotation["version"] == 1


def test_idempotent_retry_returns_the_first_outcome_without_writing_again(setup):
    first = submit(setup, idempotency_key="k-1")
    second = submit(setup, idempotency_key="k-1")

    assert second.replayed and second.created and second.annotation == first.annotation
    assert Annotation.objects.get().version == 1
    assert len(annotation_history(Annotation.objects.get())) == 1


def test_reused_key_with_another_payload_is_refused(setup):
    submit(setup, idempotency_key="k-1")

    with pytest.raises(IdempotencyKeyReused):
        submit(setup, value="bad", version=1, idempotency_key="k-1")

    assert Annotation.objects.get().value == "good"


def test_a_failed_submit_does_not_burn_its_idempotency_key(setup):
    with pytest.raises(AnnotationRefused):
        submit(setup, value="maybe", idempotency_key="k-1")

    assert not IdempotencyRecord.objects.exists()


@pytest.mark.parametrize(
    ("fields", "culprit"),
    [({"value": "maybe"}, "value"), ({"confidence": 0}, "confidence"), ({"confidence": 6}, "confidence")],
)
def test_value_outside_the_task_or_confidence_outside_1_to_5_is_refused(setup, fields, culprit):
    with pytest.raises(AnnotationRefused) as caught:
        submit(setup, **fields)

    assert caught.value.field == culprit
    assert not Annotation.objects.exists()


def test_deactivated_choice_keeps_old_annotations_but_takes_no_new_ones(setup):
    submit(setup, value="bad")
    label_choice_update(choice=setup["task"].choices.get(value="bad"), is_active=False, changed_by=None)
    other = UserFactory.create()

    with pytest.raises(AnnotationRefused, match="inactive"):
        annotation_submit(
            frame=setup["frame"], task=setup["task"], annotator=other, value="bad", confidence=3
        )
    kept = submit(setup, value="bad", confidence=5, version=1)  # keeping the old value stays allowed
    moved = submit(setup, value="good", version=2)

    assert kept.annotation["confidence"] == 5 and moved.annotation["value"] == "good"
    with pytest.raises(AnnotationRefused, match="inactive"):
        submit(setup, value="bad", version=3)


def test_deactivated_task_refuses_every_write_and_keeps_its_annotations(setup):
    submit(setup)
    label_task_update(task=setup["task"], is_active=False, changed_by=None)
    setup["task"].refresh_from_db()

    with pytest.raises(AnnotationRefused, match="inactive"):
        submit(setup, value="bad", version=1)

    assert Annotation.objects.get().value == "good"


def test_history_records_every_change_with_its_author_and_the_fields_it_touched(setup):
    submit(setup, confidence=3)
    submit(setup, value="bad", confidence=3, version=1)
    submit(setup, value="bad", confidence=5, version=2)

    history = annotation_history(Annotation.objects.get())

    assert [entry.change_type for entry in history] == ["+", "~", "~"]
    assert [entry.version for entry in history] == [1, 2, 3]
    assert {entry.changed_by for entry in history} == {setup["user"].username}
    assert {change["field"]: (change["old"], change["new"]) for change in history[1].changes} == {
        "value": ("good", "bad"),
        "version": (1, 2),
    }
    assert history[2].state["confidence"] == 5
    assert history[0].changed_at <= history[1].changed_at <= history[2].changed_at


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_updates_of_the_same_version_one_wins_one_conflicts():
    project = ProjectFactory.create()
    setup = {"task": quality_task(project), "frame": frame_in(project), "user": UserFactory.create()}
    submit(setup)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def update(value: str) -> None:
        try:
            barrier.wait()
            submit(setup, value=value, confidence=2, version=1)
            outcomes.append("won")
        except AnnotationConflict as exc:
            assert exc.current is not None and exc.current.version == 2
            outcomes.append("conflict")
        finally:
            connection.close()

    threads = [threading.Thread(target=update, args=(value,)) for value in ("bad", "good")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes) == ["conflict", "won"]
    annotation = Annotation.objects.get()
    assert annotation.version == 2
    assert len(annotation_history(annotation)) == 2


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_first_submits_create_one_annotation_and_one_conflict():
    project = ProjectFactory.create()
    setup = {"task": quality_task(project), "frame": frame_in(project), "user": UserFactory.create()}
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def create(value: str) -> None:
        try:
            barrier.wait()
            submit(setup, value=value)
            outcomes.append("created")
        except AnnotationConflict:
            outcomes.append("conflict")
        finally:
            connection.close()

    threads = [threading.Thread(target=create, args=(value,)) for value in ("bad", "good")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes) == ["conflict", "created"]
    assert Annotation.objects.get().version == 1
