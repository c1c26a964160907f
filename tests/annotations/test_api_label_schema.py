"""Label schema API: who may edit (coordinators, project admins), presets, 409 on used rows."""

from __future__ import annotations

import pytest

from annotations.models import LabelTask
from records.models import ProjectMembership
from tests.annotations.support import quality_task
from tests.factories import AnnotationFactory, ProjectFactory, UserFactory
from tests.records.api_support import client_for, member_of

pytestmark = pytest.mark.django_db
Role = ProjectMembership.Role


@pytest.mark.parametrize(
    ("role", "expected"),
    [(Role.READER, 403), (Role.DATA_MANAGER, 403), (Role.COORDINATOR, 201), (Role.ADMIN, 201), (None, 404)],
)
def test_only_coordinators_and_admins_create_tasks_and_apply_presets(role, expected):
    project = ProjectFactory.create()
    user = member_of(project, role) if role else UserFactory.create()
    client = client_for(user)

    task = client.post(
        "/api/label-tasks/", {"project": project.pk, "key": "site", "name": "Site"}, format="json"
    )
    preset = client.post(
        "/api/label-presets/apply/", {"project": project.pk, "preset": "quality"}, format="json"
    )

    assert (task.status_code, preset.status_code) == (expected, expected)


@pytest.mark.parametrize(
    ("role", "expected"),
    [(Role.READER, 403), (Role.DATA_MANAGER, 403), (Role.COORDINATOR, 200), (Role.ADMIN, 200), (None, 404)],
)
def test_only_coordinators_and_admins_edit_choices(role, expected):
    project = ProjectFactory.create()
    choice = quality_task(project).choices.get(value="bad")
    user = member_of(project, role) if role else UserFactory.create()

    response = client_for(user).patch(f"/api/label-choices/{choice.pk}/", {"label": "Poor"}, format="json")

    assert response.status_code == expected


def test_members_read_tasks_with_choices_and_outsiders_see_none():
    project = ProjectFactory.create()
    task = quality_task(project)
    reader = member_of(project, Role.READER)

    listed = client_for(reader).get("/api/label-tasks/", {"project": project.pk}).json()["results"]
    outsider = client_for(UserFactory.create()).get(f"/api/label-tasks/{task.pk}/")

    assert [row["key"] for row in listed] == ["quality"]
    assert [(c["value"], c["hotkey"]) for c in listed[0]["choices"]] == [("good", "g"), ("bad", "b")]
    assert outsider.status_code == 404


def test_preset_apply_reports_reassigned_hotkeys_or_refuses_clearly():
    project = ProjectFactory.create()
    quality_task(project)  # holds g and b
    client = client_for(member_of(project, Role.COORDINATOR))
    LabelTask.objects.filter(project=project).update(key="my_quality")

    refused = client.post(
        "/api/label-presets/apply/",
        {"project": project.pk, "preset": "quality", "reassign_hotkeys": False},
        format="json",
    )
    applied = client.post(
        "/api/label-presets/apply/", {"project": project.pk, "preset": "quality"}, format="json"
    )

    assert refused.status_code == 400 and "'g' (good)" in refused.json()["hotkey"][0]
    assert applied.status_code == 201
    assert {row["value"]: row["hotkey"] for row in applied.json()["reassigned"]} == {"good": "1", "bad": "2"}


def test_duplicate_hotkey_is_a_400_naming_the_clash():
    project = ProjectFactory.create()
    task = quality_task(project)
    client = client_for(member_of(project, Role.ADMIN))

    response = client.post(
        "/api/label-choices/",
        {"task": task.pk, "value": "great", "label": "Great", "hotkey": "g"},
        format="json",
    )

    assert response.status_code == 400
    assert "'g' is used by quality.good, quality.great" in response.json()["hotkey"][0]


def test_deleting_a_used_choice_or_task_is_a_409_that_explains_and_an_unused_one_goes():
    project = ProjectFactory.create()
    task = quality_task(project)
    AnnotationFactory.create(task=task, value="good")
    client = client_for(member_of(project, Role.COORDINATOR))

    used_choice = client.delete(f"/api/label-choices/{task.choices.get(value='good').pk}/")
    used_task = client.delete(f"/api/label-tasks/{task.pk}/")
    unused = client.delete(f"/api/label-choices/{task.choices.get(value='bad').pk}/")
    deactivated = client.patch(
        f"/api/label-choices/{task.choices.get(value='good').pk}/", {"is_active": False}, format="json"
    )

    assert used_choice.status_code == 409 and "deactivate it instead" in used_choice.json()["detail"]
    assert used_task.status_code == 409 and "deactivate it instead" in used_task.json()["detail"]
    assert unused.status_code == 204
    assert deactivated.status_code == 200 and deactivated.json()["is_active"] is False


def test_preset_list_offers_every_seed_preset():
    response = client_for(UserFactory.create()).get("/api/label-presets/")

    assert response.status_code == 200
    assert {row["key"] for row in response.json()} == {
        "head_neck_site", "ent_organ", "colon_segment", "quality", "quality_4",
        "diagnosis_neoplasia", "diagnosis_inflammation",
    }  # fmt: skip
