"""The workspace's examination context: what a reader may see beside a frame, never the reference."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from annotations.models import LabelTask
from inference.models import ModelVersion, Prediction
from records.models import Frame, Project, ProjectMembership
from tests.factories import (
    ExaminationFactory,
    FrameFactory,
    LabelTaskFactory,
    MembershipFactory,
    ProjectFactory,
    UserFactory,
    VideoFactory,
)

pytestmark = pytest.mark.django_db


def test_context_of_frames_without_any_reference_standard():
    membership = MembershipFactory.create(role=ProjectMembership.Role.READER)
    examination = ExaminationFactory.create(
        patient__project=membership.project,
        patient__pseudonym="P-0123456789abcdef",
        code="E7",
        anatomical_site="larynx",
        device="pCLE",
        reference_label="neoplastic",
        reference_source="histopathology",
    )
    video = VideoFactory.create(examination=examination, name="seq1")
    in_video = FrameFactory.create(video=video, index_in_video=4, time_s=0.16, reference_label="neoplastic")
    still = FrameFactory.create(examination=examination)
    client = APIClient()
    client.force_login(membership.user)

    response = client.get("/api/label-context/", {"frames": f"{still.pk},{in_video.pk}"})

    assert response.status_code == 200
    frames = response.json()["frames"]
    assert [frame["frame"] for frame in frames] == sorted([still.pk, in_video.pk])
    by_id = {frame["frame"]: frame for frame in frames}
    assert by_id[in_video.pk] == {
        "frame": in_video.pk,
        "patient_pseudonym": "P-0123456789abcdef",
        "examination": examination.pk,
        "examination_code": "E7",
        "anatomical_site": "larynx",
        "device": "pCLE",
        "video": video.pk,
        "video_name": "seq1",
        "index_in_video": 4,
        "time_s": 0.16,
        # The project's default: readers see no model output.
        "ai": {"prediction": False, "cam": False},
        "predictions": [],
        "active_model_tasks": [],
    }
    assert by_id[still.pk]["video_name"] is None
    assert "neoplastic" not in response.content.decode()
    assert "histopathology" not in response.content.decode()


def test_frames_of_another_project_are_left_out():
    membership = MembershipFactory.create()
    mine = FrameFactory.create(examination__patient__project=membership.project)
    other = FrameFactory.create()
    client = APIClient()
    client.force_login(membership.user)

    response = client.get("/api/label-context/", {"frames": f"{mine.pk},{other.pk}"})

    assert [frame["frame"] for frame in response.json()["frames"]] == [mine.pk]


@pytest.mark.parametrize("frames", ["", "a,b", ",".join(str(n) for n in range(1, 102))])
def test_bad_frame_lists_are_400(frames: str):
    client = APIClient()
    client.force_login(MembershipFactory.create().user)
    assert client.get("/api/label-context/", {"frames": frames}).status_code == 400


def test_context_needs_a_signed_in_user():
    assert APIClient().get("/api/label-context/", {"frames": "1"}).status_code == 403


# --- Model output in the context ------------------------------------------------------------------

Ai = Project.AiAssistance
Status = ModelVersion.Status


def _version(task: LabelTask, name: str, status: str, labels: list[str]) -> ModelVersion:
    return ModelVersion.objects.create(
        project=task.project,
        task=task,
        name=name,
        architecture="cnn_lstm",
        file=f"models/{name}.safetensors",
        sha256=name.ljust(64, "0"),
        file_bytes=1,
        labels=labels,
        status=status,
    )


def _predict(frame: Frame, version: ModelVersion, probabilities: list[float], cam: bool = True) -> Prediction:
    best = max(range(len(probabilities)), key=probabilities.__getitem__)
    return Prediction.objects.create(
        frame=frame,
        model_version=version,
        task=version.task,
        probabilities=probabilities,
        predicted_value=version.labels[best],
        confidence=probabilities[best],
        cam_file="cams/ab/cam.png" if cam else "",
    )


@pytest.fixture
def ai_scene() -> dict[str, Any]:
    """A project with a diagnosis task (active v2, retired v1) and a site task (active model, no
    prediction of the second frame), and two frames."""
    project = ProjectFactory.create()
    diagnosis = LabelTaskFactory.create(project=project, key="diagnosis", order=1)
    site = LabelTaskFactory.create(project=project, key="site", order=0)
    frames = [FrameFactory.create(examination__patient__project=project) for _ in range(2)]
    old = _version(diagnosis, "diag-v1", Status.RETIRED, ["healthy", "neoplastic"])
    active = _version(diagnosis, "diag-v2", Status.ACTIVE, ["healthy", "neoplastic"])
    site_model = _version(site, "site-v1", Status.ACTIVE, ["oral", "larynx"])
    _version(
        LabelTaskFactory.create(project=project, key="quality"), "q-cand", Status.CANDIDATE, ["good", "bad"]
    )
    for frame in frames:
        _predict(frame, old, [0.9, 0.1])
        _predict(frame, active, [0.2, 0.8])
    _predict(frames[0], site_model, [0.3, 0.7], cam=False)
    return {"project": project, "frames": frames, "active": active, "site_model": site_model}


def _context(user: Any, frames: list[Frame]) -> Any:
    client = APIClient()
    client.force_login(user)
    response = client.get("/api/label-context/", {"frames": ",".join(str(f.pk) for f in frames)})
    assert response.status_code == 200, response.content
    return response


def _set_ai(project: Project, setting: str) -> None:
    Project.objects.filter(pk=project.pk).update(ai_assistance=setting)


def test_a_reader_who_may_see_cams_gets_the_active_versions_predictions_with_cam_urls(ai_scene):
    _set_ai(ai_scene["project"], Ai.PREDICTION_AND_CAM)
    reader = MembershipFactory.create(project=ai_scene["project"], role=ProjectMembership.Role.READER).user
    first, second = ai_scene["frames"]

    frames = {row["frame"]: row for row in _context(reader, ai_scene["frames"]).json()["frames"]}

    row = frames[first.pk]
    assert row["ai"] == {"prediction": True, "cam": True}
    assert row["active_model_tasks"] == ["site", "diagnosis"]  # task order; candidates do not count
    assert [(p["task_key"], p["model_version_name"]) for p in row["predictions"]] == [
        ("site", "site-v1"),
        ("diagnosis", "diag-v2"),
    ]
    site, diagnosis = row["predictions"]
    assert diagnosis["predicted_value"] == "neoplastic" and diagnosis["confidence"] == 0.8
    assert diagnosis["probabilities"] == [
        {"value": "healthy", "probability": 0.2},
        {"value": "neoplastic", "probability": 0.8},
    ]
    assert diagnosis["cam_url"].endswith(f"/api/predictions/{diagnosis['id']}/cam/")
    assert site["cam_url"] is None  # no CAM stored
    # The second frame has no site prediction: the page can ask for one on demand.
    assert [p["task_key"] for p in frames[second.pk]["predictions"]] == ["diagnosis"]
    assert frames[second.pk]["active_model_tasks"] == ["site", "diagnosis"]


def test_where_only_predictions_are_shown_no_cam_url_is_handed_out(ai_scene):
    _set_ai(ai_scene["project"], Ai.PREDICTION)
    reader = MembershipFactory.create(project=ai_scene["project"], role=ProjectMembership.Role.READER).user

    response = _context(reader, ai_scene["frames"])

    for row in response.json()["frames"]:
        assert row["ai"] == {"prediction": True, "cam": False}
        assert row["predictions"] and all(p["cam_url"] is None for p in row["predictions"])
    assert "/cam/" not in response.content.decode()


@pytest.mark.parametrize("role", [ProjectMembership.Role.READER, ProjectMembership.Role.DATA_MANAGER])
def test_where_model_output_is_hidden_nothing_of_it_is_in_the_context(ai_scene, role):
    _set_ai(ai_scene["project"], Ai.HIDDEN)
    user = MembershipFactory.create(project=ai_scene["project"], role=role).user

    response = _context(user, ai_scene["frames"])

    for row in response.json()["frames"]:
        assert row["ai"] == {"prediction": False, "cam": False}
        assert row["predictions"] == [] and row["active_model_tasks"] == []
    body = response.content.decode()
    assert "diag-v2" not in body and "neoplastic" not in body and "site-v1" not in body


@pytest.mark.parametrize("role", [ProjectMembership.Role.COORDINATOR, ProjectMembership.Role.REVIEWER])
def test_curators_see_model_output_in_a_hidden_project(ai_scene, role):
    _set_ai(ai_scene["project"], Ai.HIDDEN)
    user = MembershipFactory.create(project=ai_scene["project"], role=role).user

    row = _context(user, ai_scene["frames"][:1]).json()["frames"][0]

    assert row["ai"] == {"prediction": True, "cam": True}
    assert len(row["predictions"]) == 2 and row["predictions"][1]["cam_url"] is not None


def test_visibility_is_decided_per_project_of_the_frames():
    user = UserFactory.create()
    shown = ProjectFactory.create(ai_assistance=Ai.PREDICTION_AND_CAM)
    hidden = ProjectFactory.create(ai_assistance=Ai.HIDDEN)
    frames = []
    for project in (shown, hidden):
        MembershipFactory.create(project=project, user=user, role=ProjectMembership.Role.READER)
        task = LabelTaskFactory.create(project=project, key="diagnosis")
        version = _version(task, f"v-{project.pk}", Status.ACTIVE, ["healthy", "neoplastic"])
        frame = FrameFactory.create(examination__patient__project=project)
        _predict(frame, version, [0.6, 0.4])
        frames.append(frame)

    rows = {row["frame"]: row for row in _context(user, frames).json()["frames"]}

    assert len(rows[frames[0].pk]["predictions"]) == 1
    assert rows[frames[0].pk]["ai"] == {"prediction": True, "cam": True}
    assert rows[frames[1].pk]["predictions"] == []
    assert rows[frames[1].pk]["ai"] == {"prediction": False, "cam": False}


def test_a_page_of_frames_costs_the_same_few_queries_whatever_its_length(
    ai_scene, django_assert_max_num_queries
):
    project = ai_scene["project"]
    _set_ai(project, Ai.PREDICTION_AND_CAM)
    reader = MembershipFactory.create(project=project, role=ProjectMembership.Role.READER).user
    many = list(ai_scene["frames"])
    for _ in range(30):
        frame = FrameFactory.create(examination__patient__project=project)
        _predict(frame, ai_scene["active"], [0.5, 0.5])
        _predict(frame, ai_scene["site_model"], [0.1, 0.9])
        many.append(frame)
    client = APIClient()
    client.force_login(reader)

    def count(frames: list[Frame]) -> int:
        with CaptureQueriesContext(connection) as queries:
            response = client.get("/api/label-context/", {"frames": ",".join(str(f.pk) for f in frames)})
        assert response.status_code == 200
        assert all(len(row["predictions"]) >= 1 for row in response.json()["frames"])
        return len(queries)

    assert count(many[:1]) == count(many)
    # session + user, frames, the caller's role, whether they read in an open study (blinded),
    # predictions (with their versions, tasks and gates), tasks with an active model
    with django_assert_max_num_queries(7):
        client.get("/api/label-context/", {"frames": ",".join(str(f.pk) for f in many)})
