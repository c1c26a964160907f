"""The model-version, predictions and CAM endpoints: contract and permissions."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
from django.http import FileResponse

from annotations.models import LabelTask
from inference.models import ModelVersion, Prediction
from inference.services import (
    RESCORE_JOB_KIND,
    model_version_activate,
    model_version_register,
    model_version_score_frames,
)
from jobs.models import Job
from records.models import Frame, Project
from tests.factories import ExaminationFactory, ImageFrameFactory, ProjectFactory, UserFactory
from tests.inference_app.conftest import MakeModelFile
from tests.records.api_support import Role, client_for, member_of, results

pytestmark = pytest.mark.django_db


@pytest.fixture
def version(project: Project, quality_task: LabelTask, make_model_file: MakeModelFile) -> ModelVersion:
    return model_version_register(
        project=project, task=quality_task, uploaded_path=make_model_file(), name="v1", created_by=None
    )


def _upload(client: Any, project: Project, task: LabelTask, path: Path, name: str = "v1") -> Any:
    with path.open("rb") as handle:
        return client.post(
            "/api/model-versions/",
            {"project": project.pk, "task": task.pk, "name": name, "file": handle},
            format="multipart",
        )


# --- model versions -------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.COORDINATOR, Role.ADMIN])
def test_a_coordinator_or_admin_registers_a_model_file(
    role: str, project: Project, quality_task: LabelTask, make_model_file: MakeModelFile
) -> None:
    user = member_of(project, role)

    response = _upload(client_for(user), project, quality_task, make_model_file())

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "candidate" and body["labels"] == ["good", "bad"]
    assert body["task"] == quality_task.pk and body["task_key"] == "quality"
    assert body["architecture"] == "cnn_lstm" and body["created_by"] == user.pk
    assert "file" not in body  # the storage path stays on the server


def test_a_refused_file_is_a_400_with_the_reason(
    project: Project, quality_task: LabelTask, make_model_file: MakeModelFile
) -> None:
    path = make_model_file(tasks={"quality": ["good", "blurry"]})

    response = _upload(client_for(member_of(project, Role.COORDINATOR)), project, quality_task, path)

    assert response.status_code == 400
    assert "'blurry'" in response.json()["file"][0]
    assert not ModelVersion.objects.exists()


def test_a_pickle_upload_is_a_400(project: Project, quality_task: LabelTask, tmp_path: Path) -> None:
    path = tmp_path / "model.pth"
    path.write_bytes(b"\x80\x04\x95" + b"\x00" * 64)

    response = _upload(client_for(member_of(project, Role.ADMIN)), project, quality_task, path)

    assert response.status_code == 400 and "pickle" in response.json()["file"][0]


def test_readers_may_not_register_and_outsiders_do_not_see_the_project(
    project: Project, quality_task: LabelTask, make_model_file: MakeModelFile
) -> None:
    reader = _upload(client_for(member_of(project, Role.READER)), project, quality_task, make_model_file())
    outsider = _upload(client_for(UserFactory.create()), project, quality_task, make_model_file())

    assert reader.status_code == 403 and outsider.status_code == 404
    assert not ModelVersion.objects.exists()


def test_versions_are_listed_and_filtered_within_the_callers_projects(
    project: Project, quality_task: LabelTask, version: ModelVersion, make_model_file: MakeModelFile
) -> None:
    second = model_version_register(
        project=project, task=quality_task, uploaded_path=make_model_file(seed=1), name="v2", created_by=None
    )
    model_version_activate(model_version=second)
    client = client_for(member_of(project, Role.READER))

    assert {row["id"] for row in results(client.get("/api/model-versions/"))} == {version.pk, second.pk}
    active = results(client.get("/api/model-versions/", {"project": str(project.pk), "status": "active"}))
    assert [row["id"] for row in active] == [second.pk]
    assert client.get(f"/api/model-versions/{version.pk}/").json()["name"] == "v1"
    outsider = client_for(UserFactory.create())
    assert results(outsider.get("/api/model-versions/")) == []
    assert outsider.get(f"/api/model-versions/{version.pk}/").status_code == 404


def test_activate_and_retire(project: Project, version: ModelVersion) -> None:
    client = client_for(member_of(project, Role.COORDINATOR))

    activated = client.post(f"/api/model-versions/{version.pk}/activate/")
    retired = client.post(f"/api/model-versions/{version.pk}/retire/")

    assert activated.status_code == 200 and activated.json()["status"] == "active"
    assert retired.status_code == 200 and retired.json()["status"] == "retired"


@pytest.mark.parametrize("action", ["activate", "retire", "rescore"])
def test_readers_get_403_and_outsiders_404_on_version_actions(
    action: str, project: Project, version: ModelVersion
) -> None:
    url = f"/api/model-versions/{version.pk}/{action}/"

    assert client_for(member_of(project, Role.READER)).post(url).status_code == 403
    assert client_for(member_of(project, Role.REVIEWER)).post(url).status_code == 403
    assert client_for(UserFactory.create()).post(url).status_code == 404
    version.refresh_from_db()
    assert version.status == "candidate" and not Job.objects.exists()


def test_rescore_answers_202_with_the_queued_job(
    project: Project, version: ModelVersion, django_capture_on_commit_callbacks
) -> None:
    examination = ExaminationFactory.create(patient__project=project)
    client = client_for(member_of(project, Role.COORDINATOR))

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(
            f"/api/model-versions/{version.pk}/rescore/", {"examinations": [examination.pk]}, format="json"
        )

    assert response.status_code == 202, response.content
    job = Job.objects.get()
    assert response.json()["id"] == job.pk and response["Location"] == f"/api/jobs/{job.pk}/"
    assert job.kind == RESCORE_JOB_KIND and job.status == "queued"
    assert job.params == {"model_version_id": version.pk, "examination_ids": [examination.pk]}
    assert len(callbacks) == 1


# --- predictions and CAMs -------------------------------------------------------------------------


@pytest.fixture
def scored_frame(project: Project, version: ModelVersion) -> Frame:
    frame = ImageFrameFactory.create(examination=ExaminationFactory.create(patient__project=project))
    model_version_score_frames(model_version=version)
    return frame


def test_the_frame_shows_the_active_versions_prediction(
    project: Project, version: ModelVersion, scored_frame: Frame
) -> None:
    client = client_for(member_of(project, Role.COORDINATOR))
    url = f"/api/frames/{scored_frame.pk}/predictions/"
    assert client.get(url).json() == []  # a candidate's predictions are not shown

    model_version_activate(model_version=version)
    body = client.get(url).json()

    prediction = Prediction.objects.get()
    assert len(body) == 1
    row = body[0]
    assert row["id"] == prediction.pk and row["frame"] == scored_frame.pk
    assert row["task"] == version.task_id and row["task_key"] == "quality"
    assert row["model_version"] == version.pk and row["model_version_name"] == "v1"
    assert row["probabilities"] == [
        {"value": "good", "probability": prediction.probabilities[0]},
        {"value": "bad", "probability": prediction.probabilities[1]},
    ]
    assert row["predicted_value"] == prediction.predicted_value
    assert row["confidence"] == prediction.confidence
    assert row["cam_url"] == f"http://testserver/api/predictions/{prediction.pk}/cam/"


HIDDEN = Project.AiAssistance.HIDDEN
PREDICTION_ONLY = Project.AiAssistance.PREDICTION
WITH_CAM = Project.AiAssistance.PREDICTION_AND_CAM


@pytest.mark.parametrize(
    ("role", "setting", "predictions_status", "cam_status"),
    [
        # Curators always see model output, whatever the project shows its readers.
        (Role.REVIEWER, HIDDEN, 200, 200),
        (Role.COORDINATOR, HIDDEN, 200, 200),
        (Role.ADMIN, HIDDEN, 200, 200),
        # Readers (and data managers) see what the project's ai_assistance allows.
        (Role.READER, HIDDEN, 403, 403),
        (Role.READER, PREDICTION_ONLY, 200, 403),
        (Role.READER, WITH_CAM, 200, 200),
        (Role.DATA_MANAGER, HIDDEN, 403, 403),
        (Role.DATA_MANAGER, WITH_CAM, 200, 200),
    ],
)
def test_predictions_and_cams_follow_the_projects_ai_visibility(
    role: str,
    setting: str,
    predictions_status: int,
    cam_status: int,
    project: Project,
    version: ModelVersion,
    scored_frame: Frame,
) -> None:
    Project.objects.filter(pk=project.pk).update(ai_assistance=setting)
    model_version_activate(model_version=version)
    prediction = Prediction.objects.get()
    client = client_for(member_of(project, role))

    listed = client.get(f"/api/frames/{scored_frame.pk}/predictions/")

    assert listed.status_code == predictions_status
    assert client.get(f"/api/predictions/{prediction.pk}/cam/").status_code == cam_status
    if predictions_status == 200:
        (row,) = listed.json()
        # Where the CAM is hidden, its URL is not even handed out.
        assert (row["cam_url"] is not None) == (cam_status == 200)


def test_a_coordinator_sets_what_readers_see_and_a_reader_may_not(project: Project) -> None:
    url = f"/api/projects/{project.pk}/"

    refused = client_for(member_of(project, Role.READER)).patch(url, {"ai_assistance": "prediction"})
    bad = client_for(member_of(project, Role.COORDINATOR)).patch(url, {"ai_assistance": "always"})
    changed = client_for(member_of(project, Role.COORDINATOR)).patch(url, {"ai_assistance": "prediction"})

    assert refused.status_code == 403 and bad.status_code == 400
    assert changed.status_code == 200 and changed.json()["ai_assistance"] == "prediction"
    project.refresh_from_db()
    assert project.ai_assistance == "prediction"


def test_another_projects_frame_and_cam_are_not_found(
    project: Project, version: ModelVersion, scored_frame: Frame
) -> None:
    prediction = Prediction.objects.get()
    outsider = client_for(member_of(ProjectFactory.create(), Role.ADMIN))

    assert outsider.get(f"/api/frames/{scored_frame.pk}/predictions/").status_code == 404
    assert outsider.get(f"/api/predictions/{prediction.pk}/cam/").status_code == 404


def test_the_cam_is_served_content_addressed(
    project: Project, version: ModelVersion, scored_frame: Frame, media_root: Path
) -> None:
    prediction = Prediction.objects.get()
    client = client_for(member_of(project, Role.COORDINATOR))

    response = client.get(f"/api/predictions/{prediction.pk}/cam/", HTTP_ACCEPT="image/avif,image/webp")

    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert cast(FileResponse, response).getvalue() == (media_root / prediction.cam_file).read_bytes()
    assert response["Cache-Control"] == "private, max-age=31536000, immutable"
    etag = response["ETag"]
    assert Path(prediction.cam_file).stem in etag
    again = client.get(f"/api/predictions/{prediction.pk}/cam/", HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
