"""model_version_activate / _retire: one active version per project and task, switched atomically."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction

from annotations.models import LabelTask
from inference.models import ModelVersion
from inference.services import model_version_activate, model_version_register, model_version_retire
from records.models import Project
from tests.inference_app.conftest import MakeModelFile

pytestmark = pytest.mark.django_db


def _versions(
    project: Project, task: LabelTask, make_model_file: MakeModelFile, count: int
) -> list[ModelVersion]:
    return [
        model_version_register(
            project=project,
            task=task,
            uploaded_path=make_model_file(seed=seed),
            name=f"v{seed}",
            created_by=None,
        )
        for seed in range(count)
    ]


def _active(task: LabelTask) -> list[int]:
    return list(ModelVersion.objects.filter(task=task, status="active").values_list("pk", flat=True))


def test_activating_a_version_retires_the_active_one(
    project: Project, quality_task: LabelTask, make_model_file: MakeModelFile
) -> None:
    first, second = _versions(project, quality_task, make_model_file, 2)

    model_version_activate(model_version=first)
    model_version_activate(model_version=second)

    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == "retired" and first.retired_at is not None
    assert second.status == "active" and second.activated_at is not None
    assert _active(quality_task) == [second.pk]


def test_activating_the_active_version_again_changes_nothing(
    project: Project, quality_task: LabelTask, make_model_file: MakeModelFile
) -> None:
    (version,) = _versions(project, quality_task, make_model_file, 1)
    activated = model_version_activate(model_version=version)

    again = model_version_activate(model_version=version)

    assert again.activated_at == activated.activated_at and _active(quality_task) == [version.pk]


def test_at_no_point_are_two_versions_active(
    project: Project, quality_task: LabelTask, make_model_file: MakeModelFile
) -> None:
    first, second, third = _versions(project, quality_task, make_model_file, 3)
    model_version_activate(model_version=first)
    seen: list[int] = []
    checking = False

    def count_active_after_each_statement(
        execute: Any, sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        nonlocal checking
        result = execute(sql, params, many, context)
        if not checking:
            checking = True
            try:
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT COUNT(*) FROM inference_modelversion"
                        " WHERE task_id = %s AND status = 'active'",
                        [quality_task.pk],
                    )
                    seen.append(cursor.fetchone()[0])
            finally:
                checking = False
        return result

    with connection.execute_wrapper(count_active_after_each_statement):
        model_version_activate(model_version=second)
        model_version_activate(model_version=third)

    assert seen and max(seen) == 1
    assert _active(quality_task) == [third.pk]


def test_the_database_refuses_a_second_active_version(
    project: Project, quality_task: LabelTask, make_model_file: MakeModelFile
) -> None:
    first, second = _versions(project, quality_task, make_model_file, 2)
    model_version_activate(model_version=first)

    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.filter(pk=second.pk).update(status="active")


def test_a_failed_activation_leaves_the_old_version_active(
    project: Project, quality_task: LabelTask, make_model_file: MakeModelFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = _versions(project, quality_task, make_model_file, 2)
    model_version_activate(model_version=first)

    def fail(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(ModelVersion, "save", fail)
    with pytest.raises(RuntimeError):
        model_version_activate(model_version=second)
    monkeypatch.undo()

    assert _active(quality_task) == [first.pk]
    second.refresh_from_db()
    assert second.status == "candidate"


def test_retiring_keeps_no_version_active_and_is_idempotent(
    project: Project, quality_task: LabelTask, make_model_file: MakeModelFile
) -> None:
    (version,) = _versions(project, quality_task, make_model_file, 1)
    model_version_activate(model_version=version)

    retired = model_version_retire(model_version=version)
    again = model_version_retire(model_version=version)

    assert retired.status == "retired" and again.retired_at == retired.retired_at
    assert _active(quality_task) == []


def test_versions_of_different_tasks_are_active_side_by_side(
    project: Project, quality_task: LabelTask, make_model_file: MakeModelFile
) -> None:
    from tests.factories import LabelChoiceFactory, LabelTaskFactory

    diagnosis = LabelTaskFactory.create(project=project, key="diagnosis")
    LabelChoiceFactory.create(task=diagnosis, value="good")
    LabelChoiceFactory.create(task=diagnosis, value="bad")
    quality = _versions(project, quality_task, make_model_file, 1)[0]
    other = model_version_register(
        project=project,
        task=diagnosis,
        uploaded_path=make_model_file(tasks={"diagnosis": ["good", "bad"]}),
        name="d1",
        created_by=None,
    )

    model_version_activate(model_version=quality)
    model_version_activate(model_version=other)

    assert ModelVersion.objects.filter(status="active").count() == 2
