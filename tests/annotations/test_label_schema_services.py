"""Label schema services: presets, hotkey uniqueness, and deleting or deactivating used tasks/choices."""

from __future__ import annotations

import pytest

from annotations.models import LabelChoice, LabelTask
from annotations.presets import PRESETS
from annotations.services import (
    InUseError,
    SchemaError,
    label_choice_create,
    label_choice_delete,
    label_choice_update,
    label_preset_apply,
    label_task_delete,
    label_task_update,
)
from tests.annotations.support import quality_task
from tests.factories import (
    AnnotationFactory,
    LabelChoiceFactory,
    LabelTaskFactory,
    ProjectFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


def test_every_preset_applies_to_one_project_without_a_hotkey_clash():
    project = ProjectFactory.create()
    user = UserFactory.create()

    for key in PRESETS:
        applied = label_preset_apply(project=project, preset_key=key, changed_by=user)
        assert applied.reassigned == {}

    tasks = {task.key: task for task in LabelTask.objects.filter(project=project)}
    assert set(tasks) == set(PRESETS)
    assert tasks["quality_4"].kind == LabelTask.Kind.ORDINAL
    assert list(tasks["quality_4"].choices.values_list("value", flat=True)) == [
        "very_good",
        "good",
        "bad",
        "very_bad",
    ]
    assert set(tasks["colon_segment"].choices.values_list("value", flat=True)) == {
        "caecum", "ascending", "transverse", "descending", "sigmoid", "rectum", "terminal_ileum",
    }  # fmt: skip
    assert set(tasks["ent_organ"].choices.values_list("value", flat=True)) == {"ear", "nose", "vocal_folds"}
    hotkeys = list(LabelChoice.objects.filter(task__project=project).values_list("hotkey", flat=True))
    assert len(hotkeys) == len(set(hotkeys)) and "" not in hotkeys


def test_preset_hotkey_taken_by_a_project_task_is_moved_to_a_free_key():
    project = ProjectFactory.create()
    custom = LabelTaskFactory.create(project=project, key="custom")
    LabelChoiceFactory.create(task=custom, value="great", hotkey="g")

    applied = label_preset_apply(project=project, preset_key="quality", changed_by=None)

    assert applied.reassigned == {"good": ("g", "1")}
    assert applied.task.choices.get(value="good").hotkey == "1"
    assert applied.task.choices.get(value="bad").hotkey == "b"


def test_preset_hotkey_clash_is_refused_when_reassigning_is_off():
    project = ProjectFactory.create()
    custom = LabelTaskFactory.create(project=project, key="custom")
    LabelChoiceFactory.create(task=custom, value="great", hotkey="g")

    with pytest.raises(SchemaError, match="'g' \\(good\\)"):
        label_preset_apply(project=project, preset_key="quality", reassign_hotkeys=False, changed_by=None)

    assert not LabelTask.objects.filter(project=project, key="quality").exists()


def test_preset_already_in_the_project_is_refused():
    project = ProjectFactory.create()
    label_preset_apply(project=project, preset_key="quality", changed_by=None)

    with pytest.raises(SchemaError, match="already has a task 'quality'"):
        label_preset_apply(project=project, preset_key="quality", changed_by=None)


def test_hotkey_used_by_another_active_task_of_the_project_is_refused():
    project = ProjectFactory.create()
    quality_task(project)
    other = LabelTaskFactory.create(project=project, key="site")

    with pytest.raises(SchemaError, match="'g' is used by"):
        label_choice_create(task=other, value="gastric", label="Gastric", hotkey="G", changed_by=None)

    assert not other.choices.exists()


def test_hotkeys_may_repeat_across_projects_and_beside_inactive_tasks():
    quality_task(ProjectFactory.create())
    project = ProjectFactory.create()
    inactive = quality_task(project, is_active=False)
    site = LabelTaskFactory.create(project=project, key="site")

    label_choice_create(task=site, value="gastric", label="Gastric", hotkey="g", changed_by=None)

    with pytest.raises(SchemaError, match="'g' is used by"):
        label_task_update(task=inactive, is_active=True, changed_by=None)


def test_reactivating_a_choice_whose_hotkey_was_taken_meanwhile_is_refused():
    project = ProjectFactory.create()
    task = quality_task(project)
    good = task.choices.get(value="good")
    label_choice_update(choice=good, is_active=False, changed_by=None)
    LabelChoiceFactory.create(task=task, value="great", hotkey="g")

    with pytest.raises(SchemaError):
        label_choice_update(choice=good, is_active=True, changed_by=None)


def test_choice_with_annotations_cannot_be_deleted_but_can_be_deactivated():
    task = quality_task(ProjectFactory.create())
    AnnotationFactory.create(task=task, value="good")
    good = task.choices.get(value="good")

    with pytest.raises(InUseError, match="deactivate it instead"):
        label_choice_delete(choice=good, changed_by=None)
    label_choice_update(choice=good, is_active=False, changed_by=None)

    assert LabelChoice.objects.get(pk=good.pk).is_active is False


def test_unused_choice_is_deleted():
    task = quality_task(ProjectFactory.create())
    AnnotationFactory.create(task=task, value="good")

    label_choice_delete(choice=task.choices.get(value="bad"), changed_by=None)

    assert list(task.choices.values_list("value", flat=True)) == ["good"]


def test_task_with_annotations_cannot_be_deleted_and_an_unused_one_can():
    project = ProjectFactory.create()
    used = quality_task(project)
    AnnotationFactory.create(task=used, value="bad")
    unused = LabelTaskFactory.create(project=project, key="unused")
    LabelChoiceFactory.create(task=unused, value="x")

    with pytest.raises(InUseError, match="1 annotation"):
        label_task_delete(task=used, changed_by=None)
    label_task_delete(task=unused, changed_by=None)

    assert list(LabelTask.objects.filter(project=project).values_list("key", flat=True)) == ["quality"]


def test_schema_changes_are_recorded_with_their_author():
    user = UserFactory.create()
    task = quality_task(ProjectFactory.create())

    label_choice_update(choice=task.choices.get(value="bad"), label="Unreadable", changed_by=user)

    latest = LabelChoice.history.filter(value="bad").latest("history_date")
    assert (latest.label, latest.history_user, latest.history_type) == ("Unreadable", user, "~")
