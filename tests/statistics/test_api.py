"""The statistics API: CSV upload, and agreement over a project's stored annotations and AI predictions."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotations.models import LabelTask
from inference.models import ModelVersion, Prediction
from records.models import Frame, Project
from tests.annotations.support import annotate
from tests.factories import ExaminationFactory, FrameFactory, ProjectFactory, UserFactory
from tests.records.api_support import Role, client_for, member_of
from tests.statistics.test_command import CSV

pytestmark = pytest.mark.django_db


def _upload(user: Any, text: str, **fields: Any) -> Any:
    upload = SimpleUploadedFile("ratings.csv", text.encode(), content_type="text/csv")
    return client_for(user).post("/api/statistics/ratings/", {"file": upload, **fields}, format="multipart")


def test_upload_returns_the_report() -> None:
    response = _upload(UserFactory.create(), CSV, positive="neo", ai_rater="ai", bootstrap=50, seed=1)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["agreement"]["n_raters"] == 3
    assert len(body["accuracy"]["readers"]) == 3
    assert body["bootstrap"]["intervals"]["fleiss_kappa"]["n_resamples"] == 50


def test_upload_bad_input_is_a_400_with_the_reason() -> None:
    response = _upload(UserFactory.create(), CSV, categories="healthy,tumour")
    assert response.status_code == 400
    assert "outside the declared categories" in response.json()["detail"]
    assert _upload(UserFactory.create(), "item,rater\n1,a\n").status_code == 400


def test_upload_needs_a_login() -> None:
    from rest_framework.test import APIClient

    upload = SimpleUploadedFile("ratings.csv", CSV.encode(), content_type="text/csv")
    assert APIClient().post("/api/statistics/ratings/", {"file": upload}, format="multipart").status_code in (
        401,
        403,
    )


def _ordinal_task(project: Project) -> LabelTask:
    from tests.factories import LabelChoiceFactory, LabelTaskFactory

    task = LabelTaskFactory.create(project=project, key="grade", kind=LabelTask.Kind.ORDINAL)
    for order, value in enumerate(["low", "mid", "high"]):
        LabelChoiceFactory.create(task=task, value=value, order=order)
    return task


@pytest.fixture
def scene() -> dict[str, Any]:
    """3 readers annotate 12 frames of 4 patients; the active model predicts 10 of them (one blank)."""
    project = ProjectFactory.create()
    task = _ordinal_task(project)
    readers = [UserFactory.create(username=f"reader{i}") for i in range(3)]
    frames: list[Frame] = []
    for _ in range(4):
        examination = ExaminationFactory.create(patient__project=project)
        frames.extend(FrameFactory.create(examination=examination) for _ in range(3))
    scale = ["low", "mid", "high"]
    for index, frame in enumerate(frames):
        for number, reader in enumerate(readers):
            shift = 1 if (index + number) % 5 == 0 else 0
            annotate(frame, task, reader, value=scale[(index + shift) % 3])
    version = ModelVersion.objects.create(
        project=project,
        task=task,
        name="v1",
        architecture="cnn",
        file="m.safetensors",
        sha256="0" * 64,
        file_bytes=1,
        status=ModelVersion.Status.ACTIVE,
    )
    for index, frame in enumerate(frames[:10]):
        Prediction.objects.create(
            frame=frame,
            model_version=version,
            task=task,
            probabilities=[0.2, 0.3, 0.5],
            predicted_value="" if index == 9 else scale[index % 3],
            confidence=0.5,
        )
    return {"project": project, "task": task, "readers": readers, "frames": frames, "version": version}


def _agreement(user: Any, project: Project, **params: Any) -> Any:
    return client_for(user).get(f"/api/projects/{project.pk}/agreement/", {"task": "grade", **params})


def test_project_agreement_over_stored_annotations_with_the_ai(scene: dict[str, Any]) -> None:
    coordinator = member_of(scene["project"], Role.COORDINATOR)
    response = _agreement(coordinator, scene["project"], bootstrap=100, weights="quadratic")
    assert response.status_code == 200, response.content
    body = response.json()
    agreement = body["agreement"]
    assert agreement["categories"] == ["low", "mid", "high"]
    assert agreement["level_of_measurement"] == "ordinal"
    assert agreement["n_items"] == 12 and agreement["n_raters"] == 4
    ai_rows = agreement["kappa_vs_ai"]
    assert [row["rater_a"] for row in ai_rows] == ["reader0", "reader1", "reader2"]
    assert all(row["rater_b"] == "AI: v1" and row["n_items"] == 9 for row in ai_rows)
    assert body["model_version"] == scene["version"].pk
    intervals = body["bootstrap"]["intervals"]
    assert intervals["fleiss_kappa"]["n_clusters"] == 4
    assert "kappa_vs_ai:reader0" in intervals
    assert body["bootstrap"]["resampled"] == "patients"


def test_reviewers_and_admins_may_see_it_readers_may_not(scene: dict[str, Any]) -> None:
    project = scene["project"]
    assert _agreement(member_of(project, Role.REVIEWER), project, bootstrap=0).status_code == 200
    assert _agreement(member_of(project, Role.ADMIN), project, bootstrap=0).status_code == 200
    assert _agreement(member_of(project, Role.READER), project, bootstrap=0).status_code == 403


def test_another_projects_agreement_is_404(scene: dict[str, Any]) -> None:
    outsider = member_of(ProjectFactory.create(), Role.COORDINATOR)
    assert _agreement(outsider, scene["project"]).status_code == 404


def test_unknown_task_and_too_few_annotations_are_400(scene: dict[str, Any]) -> None:
    coordinator = member_of(scene["project"], Role.COORDINATOR)
    response = client_for(coordinator).get(
        f"/api/projects/{scene['project'].pk}/agreement/", {"task": "nope"}
    )
    assert response.status_code == 400 and "task" in response.json()
    empty_project = ProjectFactory.create()
    _ordinal_task(empty_project)
    response = _agreement(member_of(empty_project, Role.COORDINATOR), empty_project)
    assert response.status_code == 400 and "No ratings" in response.json()["detail"]
