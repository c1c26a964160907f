"""Active learning (issue 7 item 6): the work queue ordered by the active model's uncertainty or by
annotators disagreeing with it, for those who may see the model's output; and the periodic check
that starts a retraining run once enough new labels came in."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from annotations.models import Annotation
from inference.models import ModelVersion, Prediction, RetrainPolicy, TrainingRun
from inference.services import model_version_activate, model_version_register
from inference.training import new_label_count, retrain_check, training_run_create
from jobs.models import Job
from records.models import Project
from tests.factories import (
    AnnotationFactory,
    ExaminationFactory,
    ImageFrameFactory,
    ProjectFactory,
    UserFactory,
)
from tests.inference_app.model_support import write_tiny_model_file
from tests.inference_app.training_support import diagnosis_task, texture_dataset
from tests.records.api_support import Role, client_for, member_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def scored(tmp_path: Path) -> dict[str, Any]:
    """Five frames scored by the active model with known confidences and calls."""
    project: Project = ProjectFactory.create(ai_assistance="hidden")
    task = diagnosis_task(project)
    examination = ExaminationFactory.create(patient__project=project)
    frames = [ImageFrameFactory.create(examination=examination) for _ in range(5)]
    version = model_version_register(
        project=project,
        task=task,
        uploaded_path=write_tiny_model_file(
            tmp_path / "m.safetensors", tasks={"diagnosis": ["healthy", "neoplastic"]}
        ),
        name="v1",
        created_by=None,
    )
    model_version_activate(model_version=version)
    calls = [
        ("healthy", 0.95),
        ("neoplastic", 0.55),
        ("healthy", 0.70),
        ("neoplastic", 0.99),
    ]  # frame 4: unscored
    for frame, (value, confidence) in zip(frames, calls, strict=False):
        probabilities = [confidence, 1 - confidence] if value == "healthy" else [1 - confidence, confidence]
        Prediction.objects.create(
            frame=frame, model_version=version, task=task, probabilities=probabilities,
            predicted_value=value, confidence=confidence,
        )  # fmt: skip
    return {"project": project, "task": task, "frames": frames, "version": version}


def queue(client: Any, scored: dict[str, Any], order: str) -> Any:
    return client.get(
        f"/api/projects/{scored['project'].pk}/queue/",
        {"task": scored["task"].pk, "order": order, "limit": 10},
    )


def test_the_queue_can_put_the_model_s_least_confident_frames_first(scored: dict[str, Any]) -> None:
    coordinator = member_of(scored["project"], Role.COORDINATOR)
    frames = scored["frames"]
    response = queue(client_for(coordinator), scored, "uncertainty")
    assert response.status_code == 200, response.content
    assert [row["id"] for row in response.json()["frames"]] == [frames[i].pk for i in (1, 2, 0, 3, 4)]
    assert response.json()["next_cursor"] is None
    # Labelled frames drop out: the next request gives the next ones.
    AnnotationFactory.create(task=scored["task"], frame=frames[1], annotator=coordinator, value="neoplastic")
    again = queue(client_for(coordinator), scored, "uncertainty").json()
    assert [row["id"] for row in again["frames"]][:2] == [frames[2].pk, frames[0].pk]
    assert again["remaining"] == 4


def test_the_queue_can_put_frames_where_annotators_disagree_with_the_model_first(
    scored: dict[str, Any],
) -> None:
    coordinator = member_of(scored["project"], Role.COORDINATOR)
    frames, task = scored["frames"], scored["task"]
    for annotator in UserFactory.create_batch(2):
        AnnotationFactory.create(
            task=task, frame=frames[3], annotator=annotator, value="healthy"
        )  # model: neoplastic
    AnnotationFactory.create(task=task, frame=frames[0], annotator=UserFactory.create(), value="neoplastic")
    AnnotationFactory.create(
        task=task, frame=frames[2], annotator=UserFactory.create(), value="healthy"
    )  # agrees
    response = queue(client_for(coordinator), scored, "disagreement")
    assert [row["id"] for row in response.json()["frames"]] == [frames[i].pk for i in (3, 0, 1, 2, 4)]


def test_ordering_by_the_model_needs_its_output_visible_and_an_active_model(scored: dict[str, Any]) -> None:
    reader = client_for(member_of(scored["project"], Role.READER))  # the project hides AI from readers
    assert queue(reader, scored, "uncertainty").status_code == 403
    assert queue(reader, scored, "queue").status_code == 200
    coordinator = client_for(member_of(scored["project"], Role.COORDINATOR))
    with_cursor = coordinator.get(
        f"/api/projects/{scored['project'].pk}/queue/",
        {"task": scored["task"].pk, "order": "uncertainty", "after": "abc"},
    )
    assert with_cursor.status_code == 400
    ModelVersion.objects.update(status=ModelVersion.Status.RETIRED)
    refused = queue(coordinator, scored, "disagreement")
    assert refused.status_code == 400 and "no active model" in refused.json()["order"][0]


def test_a_retrain_policy_starts_one_run_after_enough_new_labels() -> None:
    project: Project = ProjectFactory.create()
    task = diagnosis_task(project)
    frames = texture_dataset(project, patients=3, per_class=1)
    template = training_run_create(
        project=project,
        task=task,
        name="nightly",
        label_source="reference",
        config={"architecture": "cnn_lstm", "input_size": 32, "epochs": 1},
        evaluation={"scheme": "lopo"},
        created_by=None,
    )
    Job.objects.filter(pk=template.job_id).update(status=Job.Status.SUCCEEDED)
    coordinator = member_of(project, Role.COORDINATOR)
    made = client_for(coordinator).post(
        "/api/retrain-policies/", {"template": template.pk, "min_new_labels": 3}, format="json"
    )
    assert made.status_code == 201, made.content
    policy = RetrainPolicy.objects.get()
    assert (policy.task_id, policy.project_id) == (task.pk, project.pk)
    RetrainPolicy.objects.filter(pk=policy.pk).update(created_at=timezone.now() - timedelta(seconds=1))

    for frame in frames[:2]:
        Annotation.objects.create(
            frame=frame, task=task, annotator=coordinator, value="healthy", confidence=3
        )
    assert retrain_check() == []
    Annotation.objects.create(
        frame=frames[2], task=task, annotator=coordinator, value="healthy", confidence=3
    )
    policy.refresh_from_db()
    assert new_label_count(policy) == 3
    (started,) = retrain_check()
    run = TrainingRun.objects.get(pk=started)
    assert run.config == template.config and run.evaluation == template.evaluation
    assert run.name == "nightly (after 3 new labels)"
    # While that run waits, nothing more starts; after it, the count starts again from zero.
    Annotation.objects.create(
        frame=frames[3], task=task, annotator=coordinator, value="healthy", confidence=3
    )
    assert retrain_check() == []
    Job.objects.filter(pk=run.job_id).update(status=Job.Status.SUCCEEDED)
    policy.refresh_from_db()
    assert policy.last_run_id == run.pk and new_label_count(policy) == 1
    assert retrain_check() == []
    assert client_for(coordinator).get("/api/retrain-policies/").json()["results"][0]["new_labels"] == 1
    # One policy per task; a reader cannot see them.
    again = client_for(coordinator).post(
        "/api/retrain-policies/", {"template": template.pk, "min_new_labels": 5}, format="json"
    )
    assert again.status_code == 400
    reader = client_for(member_of(project, Role.READER))
    assert reader.get("/api/retrain-policies/").json()["results"] == []
