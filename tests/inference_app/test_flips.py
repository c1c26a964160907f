"""Comparing two model versions of a task: the frames whose predicted class flipped."""

from __future__ import annotations

from typing import Any

import pytest

from annotations.models import LabelTask
from inference.models import ModelVersion, Prediction
from inference.services import model_version_register
from records.models import Frame, Project
from tests.factories import ExaminationFactory, FrameFactory, LabelTaskFactory, ProjectFactory
from tests.inference_app.conftest import MakeModelFile
from tests.records.api_support import Role, client_for, member_of

pytestmark = pytest.mark.django_db


def _version(project: Project, task: LabelTask, make_model_file: MakeModelFile, seed: int) -> ModelVersion:
    return model_version_register(
        project=project, task=task, uploaded_path=make_model_file(seed=seed), name=f"v{seed}", created_by=None
    )


def _predict(version: ModelVersion, frame: Frame, value: str, confidence: float) -> None:
    probabilities = [confidence, 1 - confidence] if value == "good" else [1 - confidence, confidence]
    Prediction.objects.create(
        frame=frame,
        model_version=version,
        task=version.task,
        probabilities=probabilities,
        predicted_value=value,
        confidence=confidence,
    )


@pytest.fixture
def scene(project: Project, quality_task: LabelTask, make_model_file: MakeModelFile) -> dict[str, Any]:
    examination = ExaminationFactory.create(patient__project=project)
    frames = [FrameFactory.create(examination=examination) for _ in range(5)]
    old = _version(project, quality_task, make_model_file, seed=1)
    new = _version(project, quality_task, make_model_file, seed=2)
    for frame, value in zip(frames[:4], ["good", "good", "bad", "good"], strict=True):
        _predict(old, frame, value, 0.8)
    scored_by_new = [frames[0], frames[1], frames[2], frames[4]]
    for frame, value in zip(scored_by_new, ["good", "bad", "good", "bad"], strict=True):
        _predict(new, frame, value, 0.7)
    return {"project": project, "frames": frames, "old": old, "new": new}


def _flips(user: Any, version: ModelVersion, **params: Any) -> Any:
    return client_for(user).get(f"/api/model-versions/{version.pk}/flips/", params)


def test_flips_list_the_frames_whose_class_changed_with_both_predictions(scene) -> None:
    reviewer = member_of(scene["project"], Role.REVIEWER)

    response = _flips(reviewer, scene["new"], against=scene["old"].pk)

    assert response.status_code == 200, response.content
    body = response.json()
    # frames 0-2 were scored by both (3 and 4 by one only); 1 and 2 flipped.
    assert (body["compared"], body["flipped"]) == (3, 2)
    frames = scene["frames"]
    assert [(row["frame"], row["previous_value"], row["predicted_value"]) for row in body["frames"]] == [
        (frames[1].pk, "good", "bad"),
        (frames[2].pk, "bad", "good"),
    ]
    assert body["frames"][0]["previous_confidence"] == 0.8 and body["frames"][0]["confidence"] == 0.7


def test_the_comparison_works_both_ways_and_limit_keeps_the_counts(scene) -> None:
    coordinator = member_of(scene["project"], Role.COORDINATOR)

    body = _flips(coordinator, scene["old"], against=scene["new"].pk, limit=1).json()

    assert (body["compared"], body["flipped"]) == (3, 2)
    assert [(row["previous_value"], row["predicted_value"]) for row in body["frames"]] == [("bad", "good")]


def test_against_must_be_another_version_of_the_same_task(scene, make_model_file: MakeModelFile) -> None:
    coordinator = member_of(scene["project"], Role.COORDINATOR)
    other_task = LabelTaskFactory.create(project=scene["project"], key="other")
    for value in ("good", "bad"):
        other_task.choices.create(value=value, label=value)
    other_task_version = ModelVersion.objects.create(
        project=scene["project"],
        task=other_task,
        name="x",
        architecture="cnn_lstm",
        file="models/x.safetensors",
        sha256="0" * 64,
        file_bytes=1,
        metadata={},
        labels=["good", "bad"],
    )
    for params in ({}, {"against": scene["new"].pk}, {"against": other_task_version.pk}, {"against": 10**9}):
        response = _flips(coordinator, scene["new"], **params)
        assert response.status_code == 400, (params, response.content)


def test_readers_may_not_compare_and_outsiders_see_nothing(scene) -> None:
    reader = member_of(scene["project"], Role.READER)
    outsider = member_of(ProjectFactory.create(), Role.COORDINATOR)

    assert _flips(reader, scene["new"], against=scene["old"].pk).status_code == 403
    assert _flips(outsider, scene["new"], against=scene["old"].pk).status_code == 404
