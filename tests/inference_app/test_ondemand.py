"""Single-frame prediction on demand: POST /api/frames/{id}/predict/ and the model cache."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from annotations.models import LabelTask
from inference import ondemand
from inference.models import ModelVersion, Prediction
from inference.ondemand import model_cache, predict_frame_on_demand
from inference.services import model_version_retire, model_version_score_frames
from records.models import Frame, Project
from tests.factories import ExaminationFactory, ImageFrameFactory, ProjectFactory, UserFactory
from tests.inference_app.conftest import (
    PCLE_FRAME,
    ModelRuns,
    Register,
    post_classify,
    post_predict,
    set_gate,
)
from tests.records.api_support import Role, client_for, member_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def frame(project: Project) -> Frame:
    return ImageFrameFactory.create(examination=ExaminationFactory.create(patient__project=project))


def test_a_stored_prediction_is_returned_without_running_a_model(
    project: Project, quality_task: LabelTask, register: Register, frame: Frame, model_runs: ModelRuns
) -> None:
    version = register(quality_task)
    model_version_score_frames(model_version=version)
    stored = Prediction.objects.get()
    model_runs.clear()

    response = post_predict(client_for(member_of(project, Role.REVIEWER)), frame)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"] == stored.pk and body["predicted_value"] == stored.predicted_value
    assert body["cam_url"] == f"http://testserver/api/predictions/{stored.pk}/cam/"
    assert model_runs == [] and model_cache.loads == 0


def test_a_missing_prediction_is_computed_stored_and_then_returned_as_stored(
    project: Project, quality_task: LabelTask, register: Register, frame: Frame, media_root: Path
) -> None:
    version = register(quality_task)
    client = client_for(member_of(project, Role.COORDINATOR))

    first = post_predict(client, frame)
    second = post_predict(client, frame)

    assert first.status_code == 201, first.content
    assert second.status_code == 200 and second.json() == first.json()
    stored = Prediction.objects.get()
    body = first.json()
    assert body["id"] == stored.pk and body["model_version"] == version.pk and body["task_key"] == "quality"
    assert body["gate_passed"] is None and body["gate"] is None
    assert [p["value"] for p in body["probabilities"]] == ["good", "bad"]
    assert body["confidence"] == max(stored.probabilities) == stored.confidence
    assert (media_root / stored.cam_file).is_file()
    # Computed like the re-score job would: a job now finds nothing to do.
    assert model_version_score_frames(model_version=version)["frames_scored"] == 0
    assert model_cache.loads == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_load_the_model_once_and_store_one_row(
    project: Project,
    quality_task: LabelTask,
    register: Register,
    frame: Frame,
    monkeypatch: pytest.MonkeyPatch,
    model_runs: ModelRuns,
) -> None:
    register(quality_task)
    real_load = ondemand.load_model_file

    def slow_load(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.3)  # both requests reach the cache while the first one is still loading
        return real_load(*args, **kwargs)

    monkeypatch.setattr(ondemand, "load_model_file", slow_load)
    barrier = threading.Barrier(2)
    answers: list[int] = []
    errors: list[BaseException] = []

    def request() -> None:
        try:
            barrier.wait()
            answers.append(predict_frame_on_demand(frame=frame, task=quality_task).pk)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=request) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert len(answers) == 2 and answers[0] == answers[1]
    assert list(Prediction.objects.values_list("pk", flat=True)) == [answers[0]]
    # Both found nothing stored and computed it (the slow load made them overlap); the model was
    # loaded once, and the second insert was absorbed by the unique constraint.
    assert model_runs == [(2, 1), (2, 1)]
    assert model_cache.loads == 1


def test_no_active_version_is_a_409(
    project: Project, quality_task: LabelTask, register: Register, frame: Frame
) -> None:
    register(quality_task, activate=False)
    client = client_for(member_of(project, Role.ADMIN))

    response = post_predict(client, frame)

    assert response.status_code == 409
    assert response.json() == {"detail": "No active model version for task 'quality'."}
    assert not Prediction.objects.exists()


def test_unknown_task_is_a_400_and_another_projects_frame_a_404(
    project: Project, quality_task: LabelTask, register: Register, frame: Frame
) -> None:
    register(quality_task)
    client = client_for(member_of(project, Role.COORDINATOR))

    unknown = post_predict(client, frame, task="organ")
    missing = client.post(f"/api/frames/{frame.pk}/predict/", {}, format="json")
    foreign = post_predict(client_for(member_of(ProjectFactory.create(), Role.ADMIN)), frame)

    assert unknown.status_code == 400 and "'organ'" in unknown.json()["task"][0]
    assert missing.status_code == 400 and "task" in missing.json()
    assert foreign.status_code == 404
    assert post_predict(client_for(UserFactory.create()), frame).status_code == 404
    assert not Prediction.objects.exists()


HIDDEN = Project.AiAssistance.HIDDEN
PREDICTION_ONLY = Project.AiAssistance.PREDICTION
WITH_CAM = Project.AiAssistance.PREDICTION_AND_CAM


@pytest.mark.parametrize("endpoint", ["predict", "classify"])
@pytest.mark.parametrize(
    ("role", "setting", "allowed", "cam_shown"),
    [
        (Role.REVIEWER, HIDDEN, True, True),
        (Role.READER, HIDDEN, False, False),
        (Role.READER, PREDICTION_ONLY, True, False),
        (Role.READER, WITH_CAM, True, True),
        (Role.DATA_MANAGER, HIDDEN, False, False),
        (Role.DATA_MANAGER, PREDICTION_ONLY, True, False),
    ],
)
def test_who_may_ask_follows_the_projects_ai_visibility(
    endpoint: str,
    role: str,
    setting: str,
    allowed: bool,
    cam_shown: bool,
    project: Project,
    quality_task: LabelTask,
    register: Register,
    frame: Frame,
    realdata: Path,
) -> None:
    register(quality_task)
    Project.objects.filter(pk=project.pk).update(ai_assistance=setting)
    client = client_for(member_of(project, role))

    if endpoint == "predict":
        response, computed, cam_field = post_predict(client, frame), 201, "cam_url"
    else:
        data = (realdata / PCLE_FRAME).read_bytes()
        response, computed, cam_field = post_classify(client, project, data), 200, "cam_png_base64"

    assert response.status_code == (computed if allowed else 403)
    if allowed:
        assert (response.json()[cam_field] is not None) == cam_shown
    else:
        assert not Prediction.objects.exists()  # nothing computed for a caller who may not see it


def test_a_gated_frame_is_gated_on_demand_and_the_gate_is_applied_first(
    project: Project,
    quality_task: LabelTask,
    diagnosis_task: LabelTask,
    register: Register,
    frame: Frame,
    model_runs: ModelRuns,
) -> None:
    quality = register(quality_task, always="bad")
    diagnosis = register(diagnosis_task)
    set_gate(diagnosis_task, quality_task, ["good"])

    response = post_predict(client_for(member_of(project, Role.REVIEWER)), frame, task="diagnosis")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["model_version"] == diagnosis.pk and body["gate_passed"] is False
    assert body["probabilities"] == [] and body["confidence"] is None and body["cam_url"] is None
    assert body["gate"]["task_key"] == "quality" and body["gate"]["predicted_value"] == "bad"
    assert body["gate"]["model_version"] == quality.pk and body["gate"]["diagnostic_values"] == ["good"]
    assert model_runs == [(2, 1)]  # the gate only
    gate_row = Prediction.objects.get(model_version=quality)
    assert Prediction.objects.get(model_version=diagnosis).gate_prediction_id == gate_row.pk


def test_a_stale_row_is_replaced_on_demand_and_a_missing_gate_version_is_a_409(
    project: Project, quality_task: LabelTask, diagnosis_task: LabelTask, register: Register, frame: Frame
) -> None:
    quality = register(quality_task, always="good")
    diagnosis = register(diagnosis_task)
    client = client_for(member_of(project, Role.COORDINATOR))
    assert post_predict(client, frame, task="diagnosis").json()["gate_passed"] is None  # not gated yet
    set_gate(diagnosis_task, quality_task, ["good"])

    regated = post_predict(client, frame, task="diagnosis")

    assert regated.status_code == 201 and regated.json()["gate_passed"] is True
    assert Prediction.objects.filter(model_version=diagnosis).count() == 1
    model_version_retire(model_version=quality)
    Prediction.objects.all().delete()
    refused = post_predict(client, frame, task="diagnosis")
    assert refused.status_code == 409
    assert refused.json() == {
        "detail": "Task 'diagnosis' is gated by 'quality', which has no active model version."
    }


def test_the_cache_keeps_the_most_recently_used_models(
    settings: Any, quality_task: LabelTask, register: Register
) -> None:
    settings.CLEAR_ONDEMAND_MODEL_CACHE = 2
    versions: list[ModelVersion] = [register(quality_task, seed=seed, activate=False) for seed in range(3)]
    first, second, third = versions

    for version in (first, second, first, third, first):
        model_cache.get(version)

    # `second` was the least recently used when `third` came in; `first` was never evicted.
    assert model_cache.loads == 3
    assert model_cache.cached_keys() == [third.sha256, first.sha256]


def test_the_first_model_load_caps_torch_threads_for_the_web_process(
    settings: Any, quality_task: LabelTask, register: Register, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    capped: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", capped.append)
    monkeypatch.setattr(ondemand, "_threads_limited", False)
    settings.CLEAR_ONDEMAND_TORCH_THREADS = 1
    first, second = (register(quality_task, seed=seed, activate=False) for seed in range(2))

    model_cache.get(first)
    model_cache.get(second)

    assert capped == [1]  # once per process, before the first model loads
