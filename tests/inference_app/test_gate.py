"""Two-stage pipeline: a quality gate decides which frames are given a diagnosis at all."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from annotations.models import LabelTask
from inference.models import ModelVersion, Prediction, TaskGate
from inference.scoring import GateUnavailable
from inference.services import (
    TaskGateRejected,
    model_version_retire,
    model_version_score_frames,
    rescore_job_create,
    task_gate_delete,
    task_gate_set,
)
from inference.tasks import _run_rescore
from jobs.models import Job
from jobs.services import job_run
from records.models import Frame, Project
from tests.factories import (
    ExaminationFactory,
    ImageFrameFactory,
    LabelChoiceFactory,
    LabelTaskFactory,
    ProjectFactory,
    UserFactory,
)
from tests.inference_app.conftest import ModelRuns, Register, set_gate
from tests.records.api_support import Role, client_for, member_of, results

pytestmark = pytest.mark.django_db

FRAMES = 6
QUALITY_CLASSES, DIAGNOSIS_CLASSES = 2, 3


@pytest.fixture
def frames(project: Project) -> list[Frame]:
    examination = ExaminationFactory.create(patient__project=project)
    return [ImageFrameFactory.create(examination=examination) for _ in range(FRAMES)]


def _rows(version: ModelVersion) -> list[Prediction]:
    return list(Prediction.objects.filter(model_version=version).order_by("frame_id"))


# --- validation -----------------------------------------------------------------------------------


def test_a_gate_is_set_then_changed_in_place(
    project: Project, quality_task: LabelTask, diagnosis_task: LabelTask
) -> None:
    user = UserFactory.create()
    gate, created = task_gate_set(
        project=project,
        task=diagnosis_task,
        gate_task=quality_task,
        diagnostic_values=["good", "good"],
        created_by=user,
    )
    assert created and gate.diagnostic_values == ["good"] and gate.created_by == user

    changed, created_again = task_gate_set(
        project=project,
        task=diagnosis_task,
        gate_task=quality_task,
        diagnostic_values=["good", "bad"],
        created_by=None,
    )
    assert not created_again and changed.pk == gate.pk
    assert TaskGate.objects.get().diagnostic_values == ["good", "bad"]
    assert TaskGate.objects.get().created_by == user  # who set it first is kept


@pytest.fixture
def site_task(project: Project) -> LabelTask:
    task = LabelTaskFactory.create(project=project, key="site", order=2)
    LabelChoiceFactory.create(task=task, value="ear")
    return task


@pytest.mark.parametrize(
    ("case", "field", "words"),
    [
        ("itself", "gate_task", "cannot gate itself"),
        ("gate_task_is_gated", "gate_task", "is itself gated by 'site'"),
        ("task_is_a_gate", "task", "gates 'site'"),
        ("no_values", "diagnostic_values", "at least one value"),
        ("unknown_value", "diagnostic_values", "['blurry'] are not choices of task 'quality'"),
        ("other_project", "gate_task", "another project"),
    ],
)
def test_a_gate_that_makes_no_sense_is_refused(
    case: str,
    field: str,
    words: str,
    project: Project,
    quality_task: LabelTask,
    diagnosis_task: LabelTask,
    site_task: LabelTask,
) -> None:
    task, gate_task, values = diagnosis_task, quality_task, ["good"]
    if case == "itself":
        gate_task = diagnosis_task
    elif case == "gate_task_is_gated":
        set_gate(quality_task, site_task, ["ear"])
    elif case == "task_is_a_gate":
        set_gate(site_task, diagnosis_task, ["healthy"])
    elif case == "no_values":
        values = []
    elif case == "unknown_value":
        values = ["good", "blurry"]
    elif case == "other_project":
        gate_task = LabelTaskFactory.create(project=ProjectFactory.create(), key="quality")
    before = set(TaskGate.objects.values_list("pk", flat=True))

    with pytest.raises(TaskGateRejected) as refused:
        set_gate(task, gate_task, values)

    assert refused.value.field == field and words in refused.value.message
    assert set(TaskGate.objects.values_list("pk", flat=True)) == before


# --- API ------------------------------------------------------------------------------------------


def _post(client: Any, project: Project, task: LabelTask, gate_task: LabelTask, values: list[str]) -> Any:
    body = {"project": project.pk, "task": task.pk, "gate_task": gate_task.pk, "diagnostic_values": values}
    return client.post("/api/task-gates/", body, format="json")


def test_coordinators_set_change_and_remove_gates_and_members_see_them(
    project: Project, quality_task: LabelTask, diagnosis_task: LabelTask
) -> None:
    coordinator = client_for(member_of(project, Role.COORDINATOR))

    created = _post(coordinator, project, diagnosis_task, quality_task, ["good"])
    changed = _post(coordinator, project, diagnosis_task, quality_task, ["good", "bad"])

    assert created.status_code == 201, created.content
    assert changed.status_code == 200
    body = changed.json()
    assert body["task"] == diagnosis_task.pk and body["task_key"] == "diagnosis"
    assert body["gate_task"] == quality_task.pk and body["gate_task_key"] == "quality"
    assert body["diagnostic_values"] == ["good", "bad"] and body["project"] == project.pk
    reader = client_for(member_of(project, Role.READER))
    assert [row["id"] for row in results(reader.get("/api/task-gates/", {"project": project.pk}))] == [
        body["id"]
    ]
    assert results(client_for(UserFactory.create()).get("/api/task-gates/")) == []

    assert reader.delete(f"/api/task-gates/{body['id']}/").status_code == 403
    assert coordinator.delete(f"/api/task-gates/{body['id']}/").status_code == 204
    assert not TaskGate.objects.exists()


def test_the_api_refuses_bad_gates_with_the_field_at_fault(
    project: Project, quality_task: LabelTask, diagnosis_task: LabelTask
) -> None:
    coordinator = client_for(member_of(project, Role.COORDINATOR))
    reader = client_for(member_of(project, Role.READER))
    other_task = LabelTaskFactory.create(project=ProjectFactory.create())

    unknown_value = _post(coordinator, project, diagnosis_task, quality_task, ["blurry"])
    foreign_task = _post(coordinator, project, diagnosis_task, other_task, ["good"])
    by_reader = _post(reader, project, diagnosis_task, quality_task, ["good"])
    by_outsider = _post(client_for(UserFactory.create()), project, diagnosis_task, quality_task, ["good"])

    assert unknown_value.status_code == 400
    assert "not choices" in unknown_value.json()["diagnostic_values"][0]
    assert foreign_task.status_code == 400 and "gate_task" in foreign_task.json()
    assert by_reader.status_code == 403 and by_outsider.status_code == 404
    assert not TaskGate.objects.exists()


# --- gated re-score -------------------------------------------------------------------------------


Pipeline = Callable[..., tuple[ModelVersion, ModelVersion]]


@pytest.fixture
def pipeline(quality_task: LabelTask, diagnosis_task: LabelTask, register: Register) -> Pipeline:
    """`pipeline(gate_says=None, seed=0)`: an active quality version (predicting `gate_says` for
    every frame when given), a candidate diagnosis version, and diagnosis gated by quality "good";
    returns (quality, diagnosis)."""

    def make(gate_says: str | None = None, seed: int = 0) -> tuple[ModelVersion, ModelVersion]:
        quality = register(quality_task, always=gate_says, seed=seed)
        diagnosis = register(diagnosis_task, activate=False)
        set_gate(diagnosis_task, quality_task, ["good"])
        return quality, diagnosis

    return make


def test_frames_the_gate_rejects_get_no_diagnosis_and_the_diagnosis_model_never_runs(
    pipeline: Pipeline, frames: list[Frame], model_runs: ModelRuns, media_root: Path
) -> None:
    quality, diagnosis = pipeline(gate_says="bad")

    result = model_version_score_frames(model_version=diagnosis, batch_size=4)

    assert result["frames_scored"] == FRAMES
    # The gate model ran on every frame (batches of 4 and 2), the diagnosis model on none.
    assert model_runs == [(QUALITY_CLASSES, 4), (QUALITY_CLASSES, 2)]
    gate_rows = {row.frame_id: row for row in _rows(quality)}
    assert sorted(gate_rows) == [frame.pk for frame in frames]
    assert all(row.predicted_value == "bad" and row.gate_passed is None for row in gate_rows.values())
    assert all((media_root / row.cam_file).is_file() for row in gate_rows.values())
    for row in _rows(diagnosis):
        assert row.gate_passed is False and row.gate_prediction_id == gate_rows[row.frame_id].pk
        assert row.probabilities == [] and row.predicted_value == "" and row.confidence is None
        assert row.cam_file == ""
    cams = {path.name for path in (media_root / "cams").rglob("*.png")}
    assert cams == {Path(row.cam_file).name for row in gate_rows.values()}  # no diagnosis CAM at all


def test_frames_the_gate_passes_are_diagnosed_with_the_gate_decision_linked(
    pipeline: Pipeline, frames: list[Frame], model_runs: ModelRuns, media_root: Path
) -> None:
    quality, diagnosis = pipeline(gate_says="good")

    model_version_score_frames(model_version=diagnosis)

    assert model_runs == [(QUALITY_CLASSES, FRAMES), (DIAGNOSIS_CLASSES, FRAMES)]
    gate_rows = {row.frame_id: row.pk for row in _rows(quality)}
    for row in _rows(diagnosis):
        assert row.gate_passed is True and row.gate_prediction_id == gate_rows[row.frame_id]
        assert len(row.probabilities) == DIAGNOSIS_CLASSES and row.confidence == max(row.probabilities)
        assert row.predicted_value in ("healthy", "inflamed", "neoplastic")
        assert (media_root / row.cam_file).is_file()


def test_with_a_mixed_gate_only_the_diagnostic_frames_reach_the_diagnosis_model(
    quality_task: LabelTask,
    diagnosis_task: LabelTask,
    register: Register,
    frames: list[Frame],
    model_runs: ModelRuns,
) -> None:
    # The gate's own predictions are already stored (a re-score of the quality model ran before);
    # they are reused, not recomputed. Half the frames are then made "bad" by hand.
    quality = register(quality_task, always="good")
    model_version_score_frames(model_version=quality)
    bad = [frame.pk for frame in frames[::2]]
    Prediction.objects.filter(model_version=quality, frame_id__in=bad).update(predicted_value="bad")
    diagnosis = register(diagnosis_task, activate=False)
    set_gate(diagnosis_task, quality_task, ["good"])
    model_runs.clear()

    model_version_score_frames(model_version=diagnosis)

    assert model_runs == [(DIAGNOSIS_CLASSES, FRAMES - len(bad))]
    decided = {row.frame_id: row.gate_passed for row in _rows(diagnosis)}
    assert decided == {frame.pk: frame.pk not in bad for frame in frames}


def test_a_gated_task_without_an_active_gate_version_fails_the_job_clearly(
    quality_task: LabelTask, diagnosis_task: LabelTask, register: Register, frames: list[Frame]
) -> None:
    quality = register(quality_task)
    model_version_retire(model_version=quality)
    diagnosis = register(diagnosis_task, activate=False)
    set_gate(diagnosis_task, quality_task, ["good"])
    job = rescore_job_create(model_version=diagnosis, created_by=None)

    with pytest.raises(GateUnavailable):
        model_version_score_frames(model_version=diagnosis)
    job_run(job_id=job.pk, work=_run_rescore)

    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "Task 'diagnosis' is gated by 'quality', which has no active model version" in job.error
    assert not Prediction.objects.exists()


def test_a_second_gated_rescore_scores_nothing_and_duplicates_nothing(
    pipeline: Pipeline, frames: list[Frame], model_runs: ModelRuns
) -> None:
    _, diagnosis = pipeline(seed=3)
    model_version_score_frames(model_version=diagnosis, batch_size=4)
    before = list(Prediction.objects.order_by("id").values_list("id", "frame_id", "model_version_id"))
    model_runs.clear()

    again = model_version_score_frames(model_version=diagnosis, batch_size=4)

    assert again == {
        "frames_scored": 0,
        "frames_skipped": FRAMES,
        "summary": f"0 frames scored with {diagnosis.name}, {FRAMES} already scored",
    }
    assert model_runs == []
    assert list(Prediction.objects.order_by("id").values_list("id", "frame_id", "model_version_id")) == before
    assert len(before) == 2 * FRAMES


def test_rows_made_under_another_gating_are_replaced_by_the_next_rescore(
    quality_task: LabelTask, diagnosis_task: LabelTask, register: Register, frames: list[Frame]
) -> None:
    register(quality_task, always="bad")
    diagnosis = register(diagnosis_task, activate=False)
    model_version_score_frames(model_version=diagnosis)  # not gated yet: every frame diagnosed
    assert {row.gate_passed for row in _rows(diagnosis)} == {None}

    gate = set_gate(diagnosis_task, quality_task, ["good"])
    gated = model_version_score_frames(model_version=diagnosis, batch_size=4)
    assert gated["frames_scored"] == FRAMES and gated["frames_skipped"] == 0
    assert {row.gate_passed for row in _rows(diagnosis)} == {False}

    set_gate(diagnosis_task, quality_task, ["good", "bad"])  # now "bad" frames are diagnostic too
    model_version_score_frames(model_version=diagnosis)
    assert {row.gate_passed for row in _rows(diagnosis)} == {True}

    task_gate_delete(gate=TaskGate.objects.get(pk=gate.pk))
    model_version_score_frames(model_version=diagnosis)
    rows = _rows(diagnosis)
    assert {row.gate_passed for row in rows} == {None} and len(rows) == FRAMES
    assert all(row.gate_prediction_id is None and len(row.probabilities) == 3 for row in rows)


def test_a_new_gate_version_regates_and_deleting_frames_or_versions_still_works(
    quality_task: LabelTask, pipeline: Pipeline, register: Register, frames: list[Frame]
) -> None:
    first_gate, diagnosis = pipeline(gate_says="bad")
    model_version_score_frames(model_version=diagnosis)

    second_gate = register(quality_task, always="good")  # activated: the first one is retired
    result = model_version_score_frames(model_version=diagnosis)

    assert result["frames_scored"] == FRAMES
    rows = _rows(diagnosis)
    assert {row.gate_passed for row in rows} == {True} and len(rows) == FRAMES
    assert {row.gate_prediction.model_version_id for row in rows if row.gate_prediction} == {second_gate.pk}

    # A frame goes with its gate prediction and its gated rows in one delete; deleting the gate's
    # version leaves the gated rows (their decision kept) without their gate prediction.
    frames[0].delete()
    second_gate.delete()
    first_gate.delete()
    rows = _rows(diagnosis)
    assert len(rows) == FRAMES - 1 and all(row.gate_prediction_id is None for row in rows)


def test_the_frame_predictions_show_the_gate_decision(
    project: Project,
    quality_task: LabelTask,
    diagnosis_task: LabelTask,
    register: Register,
    frames: list[Frame],
) -> None:
    quality = register(quality_task, always="bad")
    diagnosis = register(diagnosis_task)
    set_gate(diagnosis_task, quality_task, ["good"])
    model_version_score_frames(model_version=diagnosis)
    Project.objects.filter(pk=project.pk).update(ai_assistance=Project.AiAssistance.PREDICTION)
    reader = client_for(member_of(project, Role.READER))

    response = reader.get(f"/api/frames/{frames[0].pk}/predictions/")

    assert response.status_code == 200
    by_task = {row["task_key"]: row for row in response.json()}
    gate_row = Prediction.objects.get(model_version=quality, frame=frames[0])
    assert by_task["quality"]["gate_passed"] is None and by_task["quality"]["gate"] is None
    assert by_task["quality"]["predicted_value"] == "bad"
    diagnosed = by_task["diagnosis"]
    assert diagnosed["gate_passed"] is False and diagnosed["model_version"] == diagnosis.pk
    assert diagnosed["probabilities"] == [] and diagnosed["confidence"] is None
    assert diagnosed["predicted_value"] == "" and diagnosed["cam_url"] is None
    assert diagnosed["gate"] == {
        "task_key": "quality",
        "predicted_value": "bad",
        "confidence": gate_row.confidence,
        "model_version": quality.pk,
        "model_version_name": quality.name,
        "diagnostic_values": ["good"],
    }
