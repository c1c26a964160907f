"""Adjudications: adjudication_submit (create, versioned update, conflicts, idempotency, refusals,
based_on, history, races) and the API (per frame and task, the read-only list, who may see what)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection
from django.urls import reverse

from annotations.models import Adjudication, Annotation, IdempotencyRecord
from annotations.selectors import adjudication_history
from annotations.services import (
    AdjudicationConflict,
    AdjudicationRefused,
    IdempotencyKeyReused,
    InUseError,
    adjudication_submit,
    annotation_submit,
    label_choice_delete,
    label_choice_update,
    label_task_delete,
    label_task_update,
)
from records.models import ProjectMembership
from tests.annotations.support import annotate, frame_in, quality_task
from tests.factories import AdjudicationFactory, ProjectFactory, UserFactory
from tests.records.api_support import client_for, ids, member_of, results

Role = ProjectMembership.Role


@pytest.fixture
def scene(db: Any) -> dict[str, Any]:
    """A frame two readers disagree on, and a reviewer."""
    project = ProjectFactory.create()
    task = quality_task(project)
    frame = frame_in(project)
    r1, r2 = member_of(project, Role.READER), member_of(project, Role.READER)
    first = annotate(frame, task, r1, "good", confidence=4)
    second = annotate(frame, task, r2, "bad", confidence=2)
    reviewer = member_of(project, Role.REVIEWER)
    return {
        "project": project,
        "task": task,
        "frame": frame,
        "readers": (r1, r2),
        "annotations": (first, second),
        "reviewer": reviewer,
        "client": client_for(reviewer),
        "url": f"/api/frames/{frame.pk}/adjudications/{task.pk}/",
    }


def submit(scene: dict[str, Any], **fields: Any) -> Any:
    fields.setdefault("value", "bad")
    fields.setdefault("adjudicator", scene["reviewer"])
    return adjudication_submit(frame=scene["frame"], task=scene["task"], **fields)


def put(scene: dict[str, Any], body: dict[str, Any], client: Any = None, **headers: str) -> Any:
    payload = {"value": "bad", **body}
    return (client or scene["client"]).put(scene["url"], payload, format="json", headers=headers)


# --- The service ----------------------------------------------------------------------------------


def test_first_submit_creates_version_one_based_on_the_current_annotations(scene):
    outcome = submit(scene, rationale="Glandular pattern lost.")

    assert outcome.created and not outcome.replayed
    adjudication = Adjudication.objects.get()
    assert (adjudication.value, adjudication.rationale, adjudication.version) == (
        "bad",
        "Glandular pattern lost.",
        1,
    )
    assert adjudication.adjudicated_by == scene["reviewer"]
    first, second = scene["annotations"]
    assert adjudication.based_on == [
        {
            "annotation_id": first.pk,
            "annotator_id": first.annotator_id,
            "value": "good",
            "confidence": 4,
            "version": 1,
        },
        {
            "annotation_id": second.pk,
            "annotator_id": second.annotator_id,
            "value": "bad",
            "confidence": 2,
            "version": 1,
        },
    ]
    assert outcome.adjudication["based_on"] == adjudication.based_on
    # The individual annotations stay as their annotators gave them.
    assert sorted(Annotation.objects.values_list("value", flat=True)) == ["bad", "good"]


def test_based_on_ignores_study_readings_and_follows_the_annotations_at_each_decision(scene):
    first, _ = scene["annotations"]
    annotate(scene["frame"], scene["task"], value="good", context=Annotation.Context.STUDY)
    submit(scene)
    annotation_submit(
        frame=scene["frame"],
        task=scene["task"],
        annotator=scene["readers"][0],
        value="bad",
        confidence=5,
        version=1,
    )

    outcome = submit(scene, version=1)

    based_on = outcome.adjudication["based_on"]
    assert len(based_on) == 2
    assert based_on[0] == {
        "annotation_id": first.pk,
        "annotator_id": first.annotator_id,
        "value": "bad",
        "confidence": 5,
        "version": 2,
    }
    assert outcome.adjudication["version"] == 2
    # The history keeps what the first decision was based on.
    history = adjudication_history(Adjudication.objects.get())
    assert history[0].state["based_on"][0]["value"] == "good"


def test_submit_with_the_current_version_updates_and_records_who_decided(scene):
    submit(scene)
    coordinator = member_of(scene["project"], Role.COORDINATOR)

    outcome = submit(scene, value="good", rationale="Second look.", version=1, adjudicator=coordinator)

    assert not outcome.created and outcome.adjudication["version"] == 2
    adjudication = Adjudication.objects.get()
    assert (adjudication.value, adjudication.adjudicated_by) == ("good", coordinator)
    assert outcome.adjudication["adjudicated_by_username"] == coordinator.username


def test_unchanged_resubmit_keeps_the_version(scene):
    submit(scene, rationale="why")

    assert submit(scene, rationale="why", version=1).adjudication["version"] == 1


def test_stale_version_is_a_conflict_carrying_the_current_state_and_overwrites_nothing(scene):
    submit(scene)
    submit(scene, value="good", version=1)

    with pytest.raises(AdjudicationConflict) as caught:
        submit(scene, value="bad", rationale="late", version=1)

    assert caught.value.current is not None
    assert (caught.value.current.value, caught.value.current.version) == ("good", 2)
    assert (Adjudication.objects.get().value, Adjudication.objects.get().rationale) == ("good", "")


def test_submit_without_version_over_an_existing_adjudication_is_a_conflict(scene):
    submit(scene)

    with pytest.raises(AdjudicationConflict):
        submit(scene, value="good")

    assert Adjudication.objects.get().value == "bad"


def test_a_version_for_an_adjudication_that_does_not_exist_is_a_conflict_without_state(scene):
    with pytest.raises(AdjudicationConflict) as caught:
        submit(scene, version=3)

    assert caught.value.current is None and not Adjudication.objects.exists()


def test_idempotent_retry_returns_the_first_outcome_without_writing_again(scene):
    first = submit(scene, idempotency_key="adj-1")
    second = submit(scene, idempotency_key="adj-1")

    assert second.replayed and second.created and second.adjudication == first.adjudication
    assert Adjudication.objects.get().version == 1
    assert len(adjudication_history(Adjudication.objects.get())) == 1


def test_reused_key_with_another_payload_is_refused(scene):
    submit(scene, idempotency_key="adj-1")

    with pytest.raises(IdempotencyKeyReused):
        submit(scene, value="good", version=1, idempotency_key="adj-1")

    assert Adjudication.objects.get().value == "bad"


def test_a_key_used_for_an_annotation_cannot_be_reused_for_an_adjudication(scene):
    reviewer = scene["reviewer"]
    annotation_submit(
        frame=scene["frame"],
        task=scene["task"],
        annotator=reviewer,
        value="bad",
        confidence=3,
        idempotency_key="k",
    )

    with pytest.raises(IdempotencyKeyReused):
        submit(scene, idempotency_key="k")


def test_a_failed_submit_does_not_burn_its_idempotency_key(scene):
    with pytest.raises(AdjudicationRefused):
        submit(scene, value="maybe", idempotency_key="adj-1")

    assert not IdempotencyRecord.objects.exists()


def test_a_value_outside_the_task_is_refused(scene):
    with pytest.raises(AdjudicationRefused) as caught:
        submit(scene, value="maybe")

    assert caught.value.field == "value" and "good, bad" in caught.value.message


def test_an_inactive_choice_cannot_be_chosen_but_a_decision_holding_it_may_keep_it(scene):
    submit(scene, value="bad")
    label_choice_update(choice=scene["task"].choices.get(value="bad"), is_active=False, changed_by=None)

    kept = submit(scene, value="bad", rationale="still bad", version=1)
    moved = submit(scene, value="good", version=2)

    assert (kept.adjudication["rationale"], moved.adjudication["value"]) == ("still bad", "good")
    with pytest.raises(AdjudicationRefused, match="inactive"):
        submit(scene, value="bad", version=3)


def test_an_inactive_choice_is_refused_for_a_new_adjudication(scene):
    label_choice_update(choice=scene["task"].choices.get(value="bad"), is_active=False, changed_by=None)

    with pytest.raises(AdjudicationRefused, match="inactive") as caught:
        submit(scene, value="bad")

    assert caught.value.field == "value" and not Adjudication.objects.exists()


def test_an_inactive_task_refuses_adjudication(scene):
    label_task_update(task=scene["task"], is_active=False, changed_by=None)
    scene["task"].refresh_from_db()

    with pytest.raises(AdjudicationRefused, match="inactive") as caught:
        submit(scene)

    assert caught.value.field == "task"


def test_a_frame_without_disagreement_may_be_adjudicated_to_confirm_its_label(db):
    project = ProjectFactory.create()
    task = quality_task(project)
    frame = frame_in(project)
    annotate(frame, task, value="good")

    outcome = adjudication_submit(frame=frame, task=task, adjudicator=UserFactory.create(), value="good")

    assert outcome.created and len(outcome.adjudication["based_on"]) == 1


@pytest.mark.parametrize("study_only", [False, True])
def test_a_frame_with_no_annotation_for_the_task_is_refused(db, study_only):
    project = ProjectFactory.create()
    task = quality_task(project)
    frame = frame_in(project)
    other_task = quality_task(project, key="quality_again")
    annotate(frame, other_task, value="good")  # annotations of another task do not count
    if study_only:
        annotate(frame, task, value="good", context=Annotation.Context.STUDY)

    with pytest.raises(AdjudicationRefused, match="no annotation") as caught:
        adjudication_submit(frame=frame, task=task, adjudicator=UserFactory.create(), value="good")

    assert caught.value.field == "frame" and not Adjudication.objects.exists()


def test_history_records_every_decision_with_its_author(scene):
    coordinator = member_of(scene["project"], Role.COORDINATOR)
    submit(scene, rationale="first")
    submit(scene, value="good", rationale="second", version=1, adjudicator=coordinator)

    history = adjudication_history(Adjudication.objects.get())

    assert [entry.change_type for entry in history] == ["+", "~"]
    assert [entry.changed_by for entry in history] == [scene["reviewer"].username, coordinator.username]
    assert {change["field"] for change in history[1].changes} == {
        "value",
        "rationale",
        "adjudicated_by_id",
        "version",
    }
    assert history[1].state["value"] == "good"


def test_a_task_or_choice_with_adjudications_cannot_be_deleted(scene):
    submit(scene, value="bad")
    Annotation.objects.all().delete()

    with pytest.raises(InUseError, match="adjudication"):
        label_choice_delete(choice=scene["task"].choices.get(value="bad"), changed_by=None)
    with pytest.raises(InUseError, match="adjudication"):
        label_task_delete(task=scene["task"], changed_by=None)

    label_choice_delete(choice=scene["task"].choices.get(value="good"), changed_by=None)


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_first_adjudications_create_one_and_one_conflict():
    project = ProjectFactory.create()
    task = quality_task(project)
    frame = frame_in(project)
    annotate(frame, task, value="good")
    annotate(frame, task, value="bad")
    reviewers = [UserFactory.create(), UserFactory.create()]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def create(adjudicator: Any, value: str) -> None:
        try:
            barrier.wait()
            adjudication_submit(frame=frame, task=task, adjudicator=adjudicator, value=value)
            outcomes.append("created")
        except AdjudicationConflict as exc:
            assert exc.current is not None and exc.current.version == 1
            outcomes.append("conflict")
        finally:
            connection.close()

    threads = [
        threading.Thread(target=create, args=args) for args in zip(reviewers, ("good", "bad"), strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes) == ["conflict", "created"]
    assert Adjudication.objects.get().version == 1


# --- PUT/GET /api/frames/{frame}/adjudications/{task}/ --------------------------------------------


@pytest.mark.django_db
def test_put_creates_then_updates_with_the_version_in_the_body_or_if_match(scene):
    created = put(scene, {"rationale": "Loss of crypts."})
    updated = put(scene, {"value": "good", "version": 1})
    via_header = put(scene, {"value": "bad"}, **{"If-Match": '"2"'})
    fetched = scene["client"].get(scene["url"])

    assert created.status_code == 201 and created["ETag"] == '"1"'
    body = created.json()
    assert (body["frame"], body["task"], body["value"], body["rationale"], body["version"]) == (
        scene["frame"].pk,
        scene["task"].pk,
        "bad",
        "Loss of crypts.",
        1,
    )
    assert (body["adjudicated_by"], body["adjudicated_by_username"]) == (
        scene["reviewer"].pk,
        scene["reviewer"].username,
    )
    assert [row["value"] for row in body["based_on"]] == ["good", "bad"]
    assert updated.status_code == 200 and updated.json()["version"] == 2
    assert updated.json()["rationale"] == ""  # the body is the whole decision: no rationale, none kept
    assert via_header.status_code == 200 and via_header.json()["version"] == 3
    assert fetched.status_code == 200 and fetched.json()["value"] == "bad" and fetched["ETag"] == '"3"'


@pytest.mark.django_db
def test_get_before_any_adjudication_is_404(scene):
    response = scene["client"].get(scene["url"])

    assert response.status_code == 404 and "not been adjudicated" in response.json()["detail"]


@pytest.mark.django_db
def test_stale_put_is_a_409_with_the_current_server_state(scene):
    put(scene, {})
    put(scene, {"value": "good", "rationale": "agreed at the meeting", "version": 1})

    stale = put(scene, {"value": "bad", "version": 1})
    unversioned = put(scene, {"value": "bad"})

    assert stale.status_code == 409 and stale["ETag"] == '"2"'
    body = stale.json()
    assert "version 2" in body["detail"]
    assert (body["current"]["value"], body["current"]["rationale"], body["current"]["version"]) == (
        "good",
        "agreed at the meeting",
        2,
    )
    assert unversioned.status_code == 409
    assert Adjudication.objects.get().value == "good"


@pytest.mark.django_db
def test_body_version_and_if_match_must_agree(scene):
    put(scene, {})

    response = put(scene, {"value": "good", "version": 1}, **{"If-Match": '"2"'})

    assert response.status_code == 400 and Adjudication.objects.get().version == 1


@pytest.mark.django_db
def test_retry_with_the_same_idempotency_key_replays_and_another_payload_is_422(scene):
    first = put(scene, {}, **{"Idempotency-Key": "adj"})
    retry = put(scene, {}, **{"Idempotency-Key": "adj"})
    reused = put(scene, {"value": "good", "version": 1}, **{"Idempotency-Key": "adj"})

    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.json() == first.json() and retry["Idempotent-Replayed"] == "true"
    assert reused.status_code == 422
    assert Adjudication.objects.get().version == 1


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["maybe", "bad"])
def test_a_value_that_is_not_an_active_choice_is_400(scene, value):
    scene["task"].choices.filter(value="bad").update(is_active=False)

    response = put(scene, {"value": value})

    assert response.status_code == 400 and "value" in response.json()
    assert not Adjudication.objects.exists()


@pytest.mark.django_db
def test_a_frame_with_no_annotation_for_the_task_is_400(scene):
    empty = frame_in(scene["project"])

    response = scene["client"].put(
        f"/api/frames/{empty.pk}/adjudications/{scene['task'].pk}/", {"value": "good"}, format="json"
    )

    assert response.status_code == 400 and "nothing to adjudicate" in response.json()["frame"][0]


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.REVIEWER, Role.COORDINATOR, Role.ADMIN, "superuser"])
def test_adjudicators_may_adjudicate(scene, role):
    user = UserFactory.create(is_superuser=True) if role == "superuser" else member_of(scene["project"], role)
    client = client_for(user)

    created = put(scene, {}, client=client)

    assert created.status_code == 201 and created.json()["adjudicated_by"] == user.pk
    assert client.get(scene["url"]).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.READER, Role.DATA_MANAGER])
def test_other_members_get_403_on_get_and_put(scene, role):
    put(scene, {})
    client = client_for(member_of(scene["project"], role))

    read = client.get(scene["url"])
    write = put(scene, {"value": "good", "version": 1}, client=client)

    assert read.status_code == 403 and "adjudicate" in read.json()["detail"]
    assert write.status_code == 403
    assert Adjudication.objects.get().value == "bad"


@pytest.mark.django_db
def test_outsiders_and_foreign_tasks_get_404(scene):
    put(scene, {})
    other = ProjectFactory.create()
    outsider = client_for(member_of(other, Role.REVIEWER))
    foreign_task = quality_task(other)

    assert outsider.get(scene["url"]).status_code == 404
    assert put(scene, {"value": "good", "version": 1}, client=outsider).status_code == 404
    foreign = scene["client"].put(
        f"/api/frames/{scene['frame'].pk}/adjudications/{foreign_task.pk}/", {"value": "good"}, format="json"
    )
    assert foreign.status_code == 404
    assert Adjudication.objects.get().version == 1


# --- GET /api/adjudications/ ----------------------------------------------------------------------


@pytest.fixture
def listed(scene: dict[str, Any]) -> dict[str, Any]:
    """The scene's frame adjudicated, plus an adjudication of another task and one of another project."""
    put(scene, {"rationale": "r"})
    put(scene, {"value": "good", "version": 1})
    other_task = quality_task(scene["project"], key="quality_again")
    second = AdjudicationFactory.create(task=other_task, frame=scene["frame"])
    foreign = AdjudicationFactory.create(task=quality_task(ProjectFactory.create()))
    return {
        **scene,
        "mine": Adjudication.objects.get(task=scene["task"]),
        "second": second,
        "foreign": foreign,
    }


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.REVIEWER, Role.COORDINATOR, Role.ADMIN])
def test_adjudicators_list_their_projects_adjudications(listed, role):
    client = client_for(member_of(listed["project"], role))

    everything = ids(client.get("/api/adjudications/"))
    by_task = ids(client.get("/api/adjudications/", {"task": listed["task"].pk}))
    by_frame = ids(client.get("/api/adjudications/", {"frame": listed["frame"].pk}))
    by_project = ids(client.get("/api/adjudications/", {"project": listed["project"].pk}))

    assert everything == by_frame == by_project == {listed["mine"].pk, listed["second"].pk}
    assert by_task == {listed["mine"].pk}


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.READER, Role.DATA_MANAGER])
def test_readers_never_see_adjudications(listed, role):
    client = client_for(member_of(listed["project"], role))
    pk = listed["mine"].pk

    assert results(client.get("/api/adjudications/")) == []
    assert results(client.get("/api/adjudications/", {"project": listed["project"].pk})) == []
    assert client.get(f"/api/adjudications/{pk}/").status_code == 404
    assert client.get(f"/api/adjudications/{pk}/history/").status_code == 404


@pytest.mark.django_db
def test_an_adjudicator_of_one_project_sees_nothing_of_another(listed):
    client = client_for(member_of(ProjectFactory.create(), Role.REVIEWER))

    assert results(client.get("/api/adjudications/")) == []
    assert client.get(f"/api/adjudications/{listed['mine'].pk}/").status_code == 404


@pytest.mark.django_db
def test_detail_and_history(listed):
    pk = listed["mine"].pk
    client = listed["client"]

    detail = client.get(f"/api/adjudications/{pk}/")
    history = client.get(f"/api/adjudications/{pk}/history/")

    assert detail.status_code == 200 and detail.json()["value"] == "good" and detail.json()["version"] == 2
    rows = history.json()
    assert [row["change_type"] for row in rows] == ["+", "~"]
    assert {row["changed_by"] for row in rows} == {listed["reviewer"].username}
    assert {(c["field"], c["old"], c["new"]) for c in rows[1]["changes"]} == {
        ("value", "bad", "good"),
        ("rationale", "r", ""),
        ("version", 1, 2),
    }
    assert rows[0]["state"]["based_on"][0]["annotation_id"] == listed["annotations"][0].pk


# --- The reviewer role ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_reviewer_sees_every_annotation_of_the_project_but_cannot_edit_the_schema(scene):
    client = scene["client"]
    first, second = scene["annotations"]

    listed = ids(client.get("/api/annotations/", {"project": scene["project"].pk}))
    history = client.get(f"/api/annotations/{first.pk}/history/")
    new_task = client.post("/api/label-tasks/", {"project": scene["project"].pk, "key": "x", "name": "X"})
    edit_choice = client.patch(
        f"/api/label-choices/{scene['task'].choices.get(value='good').pk}/", {"label": "Fine"}, format="json"
    )

    assert listed == {first.pk, second.pk}
    assert history.status_code == 200
    assert new_task.status_code == 403 and edit_choice.status_code == 403


# --- Admin ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_admin_lists_adjudications_read_only_with_their_history(scene):
    put(scene, {})
    put(scene, {"value": "good", "version": 1})
    pk = Adjudication.objects.get().pk
    client = client_for(UserFactory.create(is_staff=True, is_superuser=True))

    changelist = client.get(reverse("admin:annotations_adjudication_changelist"))
    change = client.get(reverse("admin:annotations_adjudication_change", args=[pk]))
    history = client.get(reverse("admin:annotations_adjudication_history", args=[pk]))
    add = client.get(reverse("admin:annotations_adjudication_add"))

    assert (changelist.status_code, change.status_code, history.status_code) == (200, 200, 200)
    assert add.status_code == 403
