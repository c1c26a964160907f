"""The one world the permission matrix (test_permission_matrix.py) runs every cell against: a project
with one user per role, records, label tasks, annotations of two annotators, an adjudication, an
active model with a stored prediction and CAM, a task gate, an open reader study and a draft one,
a training run, a retrain policy, a ready export and jobs started by different people; plus an
outsider who coordinates another project. Not a test module itself.

Every id a row may name is in `World.ids` under the placeholder name the table uses ("{frame}").
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from PIL import Image
from rest_framework.test import APIClient

from annotations.models import Annotation, LabelTask
from annotations.services import adjudication_submit, annotation_submit
from exports.models import ExportSnapshot
from exports.tasks import export_job
from inference.models import ModelVersion, Prediction, RetrainPolicy, TaskGate, TrainingRun
from inference.ondemand import predict_frame_on_demand
from inference.services import model_version_activate, model_version_register, task_gate_set
from inference.training import training_run_create
from jobs.models import Job
from jobs.services import job_create
from records.models import Project, ProjectMembership, Video
from studies.models import ReaderStudy, ReadingSession, StudyCase
from studies.reading import case_predictions
from studies.services import (
    ArmSpec,
    CaseSpec,
    QuestionSpec,
    ReaderSpec,
    study_arms_set,
    study_cases_add,
    study_create,
    study_open,
    study_questions_set,
    study_readers_set,
)
from tests.factories import (
    FrameFactory,
    LabelChoiceFactory,
    LabelTaskFactory,
    ProjectFactory,
    UserFactory,
    VideoFactory,
)
from tests.inference_app.model_support import write_tiny_model_file
from tests.inference_app.training_support import diagnosis_task, texture_dataset

Role = ProjectMembership.Role

# The columns of the matrix, in the order the table lists them.
ROLES = (
    "anon",
    "outsider",  # a coordinator of another project
    "reader",  # reads in the open study (three arms) and labels freely
    "reviewer",
    "study_reviewer",  # a reviewer who also reads in the open study: blinding applies to any role
    "coordinator",
    "data_manager",
    "admin",
    "superuser",  # no member of the project
)


def png_bytes(size: int = 48, shade: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (size, size), color=shade).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class World:
    users: dict[str, Any]
    ids: dict[str, int]
    files: dict[str, bytes] = field(default_factory=dict)

    def user(self, role: str) -> Any:
        return self.users[role]


def _member(project: Project, role: str, name: str) -> User:
    user = UserFactory.create(username=name)
    ProjectMembership.objects.create(project=project, user=user, role=role)
    return user


def _task(project: Project, key: str, values: list[str], order: int) -> LabelTask:
    task = LabelTaskFactory.create(project=project, key=key, name=key.title(), order=order)
    for index, value in enumerate(values):
        LabelChoiceFactory.create(task=task, value=value, label=value.title(), order=index)
    return task


def _annotate(frame: Any, task: LabelTask, user: User, value: str) -> int:
    """The id of the user's new annotation (written by the service, with its history)."""
    submitted = annotation_submit(frame=frame, task=task, annotator=user, value=value, confidence=3)
    return int(submitted.annotation["id"])


def _study(
    project: Project, task: LabelTask, name: str, frames: list[Any], readers: list[User]
) -> ReaderStudy:
    """A fully crossed study (one period, so every arm's session is open at once) of frame cases."""
    study = study_create(project=project, name=name, design="fully_crossed", created_by=None, seed=7)
    study_questions_set(study=study, questions=[QuestionSpec(task=task)])
    study_arms_set(
        study=study,
        arms=[
            ArmSpec(name="unaided", assistance="unaided"),
            ArmSpec(name="prediction", assistance="prediction"),
            ArmSpec(name="cam", assistance="prediction_and_cam"),
        ],
    )
    study_cases_add(study=study, cases=[CaseSpec(frame_id=frame.pk) for frame in frames])
    study_readers_set(study=study, readers=[ReaderSpec(user=user) for user in readers])
    return study


def build_world(models_folder: Path) -> World:
    # Readers see predictions (not CAMs) in free labelling here, so the matrix shows both the
    # project setting (data managers see predictions, not CAMs) and the study blinding that
    # overrides it for whoever reads in an open study (the reader column).
    project: Project = ProjectFactory.create(slug="matrix", ai_assistance=Project.AiAssistance.PREDICTION)
    users: dict[str, Any] = {
        "anon": AnonymousUser(),
        "reader": _member(project, Role.READER, "m-reader"),
        "reviewer": _member(project, Role.REVIEWER, "m-reviewer"),
        "study_reviewer": _member(project, Role.REVIEWER, "m-study-reviewer"),
        "coordinator": _member(project, Role.COORDINATOR, "m-coordinator"),
        "data_manager": _member(project, Role.DATA_MANAGER, "m-data-manager"),
        "admin": _member(project, Role.ADMIN, "m-admin"),
        "superuser": UserFactory.create(username="m-superuser", is_staff=True, is_superuser=True),
    }
    other_project: Project = ProjectFactory.create(slug="elsewhere")
    users["outsider"] = _member(other_project, Role.COORDINATOR, "m-outsider")
    # Another project's label task and frame, for rows that mix them with this project's objects.
    other_task = _task(other_project, "diagnosis", ["healthy", "neoplastic"], order=0)
    other_frame = FrameFactory.create(examination__patient__project=other_project)
    # Another reader of the project: the "someone else" who owns annotations and sessions.
    reader2 = _member(project, Role.READER, "m-reader-2")

    diagnosis = diagnosis_task(project)  # healthy / neoplastic
    quality = _task(project, "quality", ["good", "bad"], order=1)
    lesion = _task(project, "lesion", ["yes", "no"], order=2)
    spare_task = _task(project, "spare", ["a", "b"], order=3)  # nobody annotates it: deletable
    spare_choice = LabelChoiceFactory.create(task=diagnosis, value="unsure", label="Unsure", order=5)

    # Three patients, one examination each (reference label = histopathology), two 48x48 texture
    # frames per patient, each frame with a reference label too.
    frames = texture_dataset(project, patients=3, per_class=1)
    examination = frames[0].examination
    examination.reference_source = "histopathology"
    examination.reference_label = "healthy"
    examination.save(update_fields=["reference_source", "reference_label"])
    video: Video = VideoFactory.create(examination=examination)
    frame, frame_pending, frame_free, *study_frames = frames

    # Free labelling: the reader and another reader disagree on `frame` (adjudicated) and on
    # `frame_pending` (not yet); nobody labelled `frame_free`.
    own = _annotate(frame, diagnosis, users["reader"], "healthy")
    other = _annotate(frame, diagnosis, reader2, "neoplastic")
    _annotate(frame_pending, diagnosis, users["reader"], "healthy")
    _annotate(frame_pending, diagnosis, reader2, "neoplastic")
    adjudication = adjudication_submit(
        frame=frame, task=diagnosis, adjudicator=users["reviewer"], value="healthy"
    ).adjudication["id"]

    # An active tiny model with a stored prediction and CAM of `frame`, a candidate to compare and
    # activate, and a gate (lesion is predicted only for frames of good quality).
    labels = {"diagnosis": ["healthy", "neoplastic"]}
    active_file = write_tiny_model_file(models_folder / "active.safetensors", tasks=labels, seed=1)
    candidate_file = write_tiny_model_file(models_folder / "candidate.safetensors", tasks=labels, seed=2)
    upload_file = write_tiny_model_file(models_folder / "upload.safetensors", tasks=labels, seed=3)
    version = model_version_activate(
        model_version=model_version_register(
            project=project, task=diagnosis, uploaded_path=active_file, name="active", created_by=None
        )
    )
    candidate = model_version_register(
        project=project, task=diagnosis, uploaded_path=candidate_file, name="candidate", created_by=None
    )
    prediction: Prediction = predict_frame_on_demand(frame=frame, task=diagnosis)
    assert prediction.cam_file, "the stored prediction needs its CAM"
    gate, _ = task_gate_set(
        project=project, task=lesion, gate_task=quality, diagnostic_values=["good"], created_by=None
    )

    # Reader studies: an open one read by the reader, reader2 and the study reviewer (three arms
    # each), a draft one complete enough to open.
    study_readers = [users["reader"], reader2, users["study_reviewer"]]
    study = _study(project, diagnosis, "open study", study_frames, study_readers)
    study_open(study=study)
    sessions = {
        session.arm.name: session
        for session in ReadingSession.objects.filter(reader__study=study, reader__user=users["reader"])
    }
    other_session = ReadingSession.objects.filter(reader__study=study, reader__user=reader2).first()
    assert other_session is not None
    cam_session = sessions["cam"]
    first_case = StudyCase.objects.get(pk=cam_session.case_order[0])
    (study_prediction,) = case_predictions(session=cam_session, case=first_case)
    draft = _study(project, diagnosis, "draft study", study_frames, [reader2])

    # Training: a run on the reference labels (its job stays queued: nothing runs it), a retrain
    # policy on it, and a run of another task that no policy uses yet (a template to POST).
    run: TrainingRun = training_run_create(
        project=project,
        task=diagnosis,
        name="nightly",
        label_source="reference",
        config={"architecture": "cnn_lstm", "input_size": 32, "epochs": 1},
        evaluation={"scheme": "lopo"},
        created_by=users["coordinator"],
    )
    policy = RetrainPolicy.objects.create(
        project=project, task=diagnosis, template=run, min_new_labels=10, created_by=users["coordinator"]
    )
    quality_run = TrainingRun.objects.create(
        project=project,
        task=quality,
        name="quality",
        label_source="reference",
        config=run.config,
        evaluation=run.evaluation,
        labels=["good", "bad"],
        job=Job.objects.create(kind="inference.train", project=project, created_by=users["coordinator"]),
    )

    # A ready export, built by its job here, started by the data manager.
    export = _ready_export(project, diagnosis, users["data_manager"])

    # A queued job the data manager started (an import), and the training run's job that the
    # coordinator started.
    dm_job = job_create(
        kind="records.import",
        params={},
        enqueue=lambda job_id: None,
        project_id=project.pk,
        created_by_id=users["data_manager"].pk,
    )

    ids = {
        "project": project.pk,
        "other_project": other_project.pk,
        "other_task": other_task.pk,
        "other_frame": other_frame.pk,
        "outsider_user": users["outsider"].pk,
        "patient": examination.patient_id,
        "examination": examination.pk,
        "video": video.pk,
        "frame": frame.pk,
        "frame_pending": frame_pending.pk,
        "frame_free": frame_free.pk,
        "task": diagnosis.pk,
        "quality_task": quality.pk,
        "lesion_task": lesion.pk,
        "spare_task": spare_task.pk,
        "choice": diagnosis.choices.get(value="healthy").pk,
        "spare_choice": spare_choice.pk,
        "annotation_own": own,
        "annotation_other": other,
        "adjudication": adjudication,
        "version": version.pk,
        "candidate": candidate.pk,
        "prediction": prediction.pk,
        "gate": gate.pk,
        "study": study.pk,
        "draft_study": draft.pk,
        "session_unaided": sessions["unaided"].pk,
        "session_prediction": sessions["prediction"].pk,
        "session_cam": sessions["cam"].pk,
        "session_other": other_session.pk,
        "study_prediction": study_prediction.pk,
        "reader2": reader2.pk,
        "run": run.pk,
        "quality_run": quality_run.pk,
        "policy": policy.pk,
        "export": export.pk,
        "dm_job": dm_job.pk,
        "coordinator_job": run.job_id,
    }
    _check(ids)
    files = {"png": png_bytes(), "model": upload_file.read_bytes()}
    return World(users=users, ids=ids, files=files)


def _ready_export(project: Project, task: LabelTask, user: User) -> ExportSnapshot:
    """An export the data manager asked for through the API, built here by its job."""
    client = APIClient()
    client.force_login(user)
    body = {"projects": [project.pk], "task": task.key, "label_source": "reference", "format": "csv"}
    response = client.post("/api/exports/", body, format="json")
    assert response.status_code == 202, response.content
    snapshot = ExportSnapshot.objects.get(pk=response.json()["id"])
    export_job.apply(kwargs={"job_id": snapshot.job_id})
    snapshot.refresh_from_db()
    assert snapshot.status == ExportSnapshot.Status.READY, snapshot.error
    return snapshot


def _check(ids: dict[str, int]) -> None:
    """The world is what the table assumes (a broken world would make every cell meaningless)."""
    assert Annotation.objects.filter(pk=ids["annotation_own"]).exists()
    assert ModelVersion.objects.get(pk=ids["version"]).status == ModelVersion.Status.ACTIVE
    assert ReaderStudy.objects.get(pk=ids["study"]).status == ReaderStudy.Status.OPEN
    assert ReaderStudy.objects.get(pk=ids["draft_study"]).status == ReaderStudy.Status.DRAFT
    assert TaskGate.objects.filter(pk=ids["gate"]).exists()
    assert Job.objects.get(pk=ids["dm_job"]).status == Job.Status.QUEUED
    assert Job.objects.get(pk=ids["coordinator_job"]).status == Job.Status.QUEUED
