"""Reading a study through the API: blinding per arm (a permission matrix over every endpoint that
could leak a prediction, a CAM, the reference standard or another reader's answer), the sequential
design, navigation and answer-change rules, progress, locking and the audit history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from inference.ondemand import predict_frame_on_demand
from inference.services import (
    RESCORE_JOB_KIND,
    model_version_activate,
    model_version_register,
    model_version_score_frames,
)
from jobs.models import Job
from records.models import Project
from studies.models import ReaderStudy, Reading, ReadingSession
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
from tests.factories import ExaminationFactory, ImageFrameFactory, PatientFactory, ProjectFactory
from tests.inference_app.model_support import write_tiny_model_file
from tests.records.api_support import Role, client_for, member_of
from tests.studies.test_design import diagnosis_task

pytestmark = pytest.mark.django_db

ARMS = {
    "unaided": ArmSpec(name="unaided", assistance="unaided"),
    "prediction": ArmSpec(name="prediction", assistance="prediction"),
    "cam": ArmSpec(name="cam", assistance="prediction_and_cam"),
    "sequential": ArmSpec(name="sequential", assistance="prediction_and_cam", sequential=True),
}


class StudySetup:
    def __init__(self, *, arms: list[str], cases: int = 3, **settings: Any) -> None:
        # The project shows AI to its readers in free labelling: the study must still blind them.
        self.project: Project = ProjectFactory.create(ai_assistance="prediction_and_cam")
        self.task = diagnosis_task(self.project)
        self.frames = []
        for index in range(cases):
            label = "neoplastic" if index % 2 else "healthy"
            examination = ExaminationFactory.create(
                patient=PatientFactory.create(project=self.project),
                reference_label=label,
                reference_source="histopathology",
            )
            self.frames.append(ImageFrameFactory.create(examination=examination))
        self.study = study_create(
            project=self.project, name="blinded", design="fully_crossed", created_by=None, seed=3, **settings
        )
        study_questions_set(study=self.study, questions=[QuestionSpec(task=self.task)])
        study_arms_set(study=self.study, arms=[ARMS[name] for name in arms])
        study_cases_add(study=self.study, cases=[CaseSpec(frame_id=frame.pk) for frame in self.frames])
        self.reader = member_of(self.project, Role.READER)
        self.other = member_of(self.project, Role.READER)
        study_readers_set(
            study=self.study, readers=[ReaderSpec(user=self.reader), ReaderSpec(user=self.other)]
        )
        self.coordinator = client_for(member_of(self.project, Role.COORDINATOR))

    def with_model(self, tmp_path: Path) -> StudySetup:
        path = write_tiny_model_file(
            tmp_path / "diagnosis.safetensors", tasks={"diagnosis": ["healthy", "neoplastic"]}
        )
        version = model_version_register(
            project=self.project, task=self.task, uploaded_path=path, name="d1", created_by=None
        )
        model_version_activate(model_version=version)
        return self

    def open(self) -> StudySetup:
        study_open(study=self.study)
        return self

    def session(self, arm: str, user: Any = None) -> ReadingSession:
        return ReadingSession.objects.get(reader__user=user or self.reader, arm__name=arm)


def url(session: ReadingSession, position: int, tail: str = "") -> str:
    return f"/api/reading-sessions/{session.pk}/cases/{position}/{tail}"


def answer(client: APIClient, session: ReadingSession, position: int, **fields: Any) -> Any:
    body = {"question": "diagnosis", "value": "healthy", "confidence": 4, "time_ms": 2500, **fields}
    return client.put(url(session, position, "readings/"), body, format="json")


def test_an_unaided_arm_gets_no_ai_anywhere_and_never_the_reference(tmp_path: Path) -> None:
    setup = StudySetup(arms=["unaided", "cam"]).with_model(tmp_path).open()
    reader = client_for(setup.reader)
    session = setup.session("unaided")
    frame = setup.frames[0]
    other_session = setup.session("unaided", setup.other)
    other_reader = client_for(setup.other)
    # The other reader answers every case, so one of theirs is the case on our reader's screen.
    for position in range(3):
        assert answer(other_reader, other_session, position, value="neoplastic").status_code == 201

    case = reader.get(url(session, 0))
    assert case.status_code == 200, case.content
    body = case.json()
    assert body["ai_available"] is False and body["readings"] == []

    blocked = {
        "study AI": reader.get(url(session, 0, "ai/")),
        "study CAM": reader.get(url(session, 0, "cam/1/")),
        "frame predictions": reader.get(f"/api/frames/{frame.pk}/predictions/"),
        "predict on demand": reader.post(
            f"/api/frames/{frame.pk}/predict/", {"task": "diagnosis"}, format="json"
        ),
        "study cases": reader.get(f"/api/studies/{setup.study.pk}/cases/"),
        "study readings": reader.get(f"/api/studies/{setup.study.pk}/readings/"),
        "study progress": reader.get(f"/api/studies/{setup.study.pk}/progress/"),
    }
    assert {name: response.status_code for name, response in blocked.items()} == dict.fromkeys(blocked, 403)
    context = reader.get("/api/label-context/", {"frames": str(frame.pk)}).json()["frames"][0]
    assert context["predictions"] == [] and context["ai"] == {"prediction": False, "cam": False}
    # The reference standard is nowhere in what the reader can fetch.
    for response in (
        case,
        reader.get(f"/api/frames/{frame.pk}/"),
        reader.get(f"/api/examinations/{frame.examination_id}/"),
        reader.get(f"/api/studies/{setup.study.pk}/"),
        reader.get("/api/reading-sessions/"),
    ):
        assert response.status_code == 200
        assert "histopathology" not in response.content.decode()
        assert '"reference_label":"healthy"' not in response.content.decode().replace(" ", "")
    # An answer may not claim AI it could not have seen.
    refused = answer(reader, session, 0, ai_shown=True)
    assert refused.status_code == 400 and "ai_shown" in refused.json()
    # The coordinator sees the reference.
    cases = setup.coordinator.get(f"/api/studies/{setup.study.pk}/cases/").json()
    assert {case["reference"]["diagnosis"] for case in cases} == {"healthy", "neoplastic"}


@pytest.mark.parametrize(("arm", "cam_shown"), [("prediction", False), ("cam", True)])
def test_aided_arms_give_the_prediction_and_only_the_cam_arm_the_cam(
    arm: str, cam_shown: bool, tmp_path: Path
) -> None:
    setup = StudySetup(arms=["unaided", arm]).with_model(tmp_path).open()
    reader = client_for(setup.reader)
    session = setup.session(arm)

    ai = reader.get(url(session, 0, "ai/"))

    assert ai.status_code == 200, ai.content
    (prediction,) = ai.json()
    assert prediction["task_key"] == "diagnosis" and prediction["predicted_value"] in {
        "healthy",
        "neoplastic",
    }
    cam = reader.get(url(session, 0, f"cam/{prediction['id']}/"))
    if cam_shown:
        assert prediction["cam_url"].endswith(url(session, 0, f"cam/{prediction['id']}/"))
        assert cam.status_code == 200 and cam["Content-Type"] == "image/png"
    else:
        assert prediction["cam_url"] is None and cam.status_code == 403
    # Outside the study's endpoints the same reader still sees nothing.
    assert reader.get(f"/api/predictions/{prediction['id']}/cam/").status_code == 403
    stored = answer(reader, session, 0, ai_shown=True, cam_visible_ms=1200 if cam_shown else 0)
    assert stored.status_code == 201, stored.content
    reading = Reading.objects.get()
    assert reading.ai_shown and reading.prediction_id == prediction["id"]
    if not cam_shown:
        assert answer(reader, session, 1, ai_shown=True, cam_visible_ms=500).status_code == 400


def test_a_sequential_arm_shows_the_ai_only_after_the_first_answer_which_then_is_final(
    tmp_path: Path,
) -> None:
    setup = StudySetup(arms=["sequential"], allow_answer_changes=True).with_model(tmp_path).open()
    reader = client_for(setup.reader)
    session = setup.session("sequential")

    assert reader.get(url(session, 0, "ai/")).status_code == 409
    assert answer(reader, session, 0, phase="revised", ai_shown=True).status_code == 409
    assert answer(reader, session, 0, value="healthy").status_code == 201
    assert reader.get(url(session, 0)).json()["ai_available"] is True
    assert reader.get(url(session, 0, "ai/")).status_code == 200
    # The unaided answer is final once the AI was shown, even where changes are allowed.
    assert answer(reader, session, 0, value="neoplastic").status_code == 409
    # The case is not done until the revised answer is in.
    assert answer(reader, session, 1).status_code == 409
    revised = answer(
        reader, session, 0, phase="revised", value="neoplastic", ai_shown=True, cam_visible_ms=900
    )
    assert revised.status_code == 201
    assert list(Reading.objects.order_by("phase").values_list("phase", "value")) == [
        ("first", "healthy"),
        ("revised", "neoplastic"),
    ]


def test_cases_are_read_in_order_and_answers_change_only_where_allowed(tmp_path: Path) -> None:
    strict = StudySetup(arms=["unaided"]).open()
    reader = client_for(strict.reader)
    session = strict.session("unaided")

    assert reader.get(url(session, 1)).status_code == 409  # ahead of the current case
    assert answer(reader, session, 1).status_code == 409
    assert answer(reader, session, 0).status_code == 201
    assert answer(reader, session, 0, value="neoplastic").status_code == 409  # no changes
    assert reader.get(url(session, 0)).status_code == 409  # no going back
    assert reader.get(url(session, 1)).json()["current_position"] == 1

    lenient = StudySetup(arms=["unaided"], allow_navigation=True, allow_answer_changes=True).open()
    reader = client_for(lenient.reader)
    session = lenient.session("unaided")
    assert answer(reader, session, 0).status_code == 201
    assert reader.get(url(session, 0)).status_code == 200
    changed = answer(reader, session, 0, value="neoplastic", confidence=2)
    assert changed.status_code == 200 and changed.json()["version"] == 2
    reading = Reading.objects.get(session=session)
    assert [h.value for h in reading.history.order_by("history_date")] == ["healthy", "neoplastic"]


def test_progress_completion_and_locking() -> None:
    setup = StudySetup(arms=["unaided"], cases=2).open()
    reader = client_for(setup.reader)
    session = setup.session("unaided")
    assert answer(reader, session, 0).status_code == 201

    progress = setup.coordinator.get(f"/api/studies/{setup.study.pk}/progress/").json()
    mine = next(row for row in progress if row["reader"] == setup.reader.pk)
    assert (mine["cases_done"], mine["cases_total"], mine["completed_at"]) == (1, 2, None)
    assert answer(reader, session, 1, value="neoplastic").status_code == 201
    session.refresh_from_db()
    assert session.completed_at is not None

    locked = setup.coordinator.post(f"/api/studies/{setup.study.pk}/lock/")
    assert locked.status_code == 200 and locked.json()["status"] == "locked"
    other = setup.session("unaided", setup.other)
    other_reader = client_for(setup.other)
    assert other_reader.get(url(other, 0)).status_code == 409
    assert answer(other_reader, other, 0).status_code == 409
    assert reader.post(f"/api/studies/{setup.study.pk}/lock/").status_code == 403
    readings = setup.coordinator.get(f"/api/studies/{setup.study.pk}/readings/").json()
    assert sorted((row["reader"], row["arm"], row["value"]) for row in readings) == [
        (setup.reader.pk, "unaided", "healthy"),
        (setup.reader.pk, "unaided", "neoplastic"),
    ]
    assert ReaderStudy.objects.get().status == "locked"


def test_after_the_study_is_locked_the_readers_free_labelling_ai_returns(tmp_path: Path) -> None:
    setup = StudySetup(arms=["unaided"]).with_model(tmp_path).open()
    reader = client_for(setup.reader)
    frame = setup.frames[0]
    assert (
        reader.post(f"/api/frames/{frame.pk}/predict/", {"task": "diagnosis"}, format="json").status_code
        == 403
    )

    setup.coordinator.post(f"/api/studies/{setup.study.pk}/lock/")

    assert reader.post(
        f"/api/frames/{frame.pk}/predict/", {"task": "diagnosis"}, format="json"
    ).status_code in {
        200,
        201,
    }


def test_the_ai_shown_is_the_model_version_active_when_the_study_opened(tmp_path: Path) -> None:
    """A model promoted while the study runs (e.g. by a retraining) changes nothing the readers see:
    every reader of an AI arm gets the version frozen at opening, and the study's CAM endpoint
    serves no other version's CAM."""
    setup = StudySetup(arms=["unaided", "cam"]).with_model(tmp_path).open()
    frozen = setup.study.questions.get().model_version
    assert frozen is not None and frozen.status == "active"
    detail = setup.coordinator.get(f"/api/studies/{setup.study.pk}/")
    assert detail.json()["questions"][0]["model_version"] == frozen.pk
    newer_path = write_tiny_model_file(
        tmp_path / "newer.safetensors", tasks={"diagnosis": ["healthy", "neoplastic"]}, seed=7
    )
    newer = model_version_register(
        project=setup.project, task=setup.task, uploaded_path=newer_path, name="d2", created_by=None
    )
    model_version_activate(model_version=newer)
    newer_prediction = predict_frame_on_demand(frame=setup.frames[0], task=setup.task)
    assert newer_prediction.model_version_id == newer.pk
    reader = client_for(setup.reader)
    session = setup.session("cam")
    position = session.case_order.index(setup.study.cases.get(frame=setup.frames[0]).pk)
    # Reach the case (cases are read in order).
    for earlier in range(position):
        assert answer(reader, session, earlier).status_code == 201

    (shown,) = reader.get(url(session, position, "ai/")).json()

    assert shown["model_version"] == frozen.pk
    assert reader.get(url(session, position, f"cam/{shown['id']}/")).status_code == 200
    assert reader.get(url(session, position, f"cam/{newer_prediction.pk}/")).status_code == 404
    assert answer(reader, session, position, ai_shown=True, cam_visible_ms=800).status_code == 201
    assert Reading.objects.get(case__frame=setup.frames[0]).prediction_id == shown["id"]


def test_an_examination_case_shows_the_ai_of_its_frames_once_the_study_s_rescore_stored_it(
    tmp_path: Path, django_capture_on_commit_callbacks: Any
) -> None:
    project = ProjectFactory.create()
    task = diagnosis_task(project)
    examination = ExaminationFactory.create(
        patient=PatientFactory.create(project=project), reference_label="neoplastic"
    )
    frames = [ImageFrameFactory.create(examination=examination) for _ in range(3)]
    path = write_tiny_model_file(tmp_path / "d.safetensors", tasks={"diagnosis": ["healthy", "neoplastic"]})
    version = model_version_activate(
        model_version=model_version_register(
            project=project, task=task, uploaded_path=path, name="d1", created_by=None
        )
    )
    study = study_create(
        project=project,
        name="per examination",
        design="fully_crossed",
        created_by=None,
        case_unit="examination",
    )
    study_questions_set(study=study, questions=[QuestionSpec(task=task)])
    study_arms_set(study=study, arms=[ARMS["cam"]])
    study_cases_add(study=study, cases=[CaseSpec(examination_id=examination.pk)])
    reader_user = member_of(project, Role.READER)
    study_readers_set(study=study, readers=[ReaderSpec(user=reader_user)])
    with django_capture_on_commit_callbacks(execute=False):
        study_open(study=study)
    (job,) = Job.objects.filter(kind=RESCORE_JOB_KIND)
    assert job.params == {"model_version_id": version.pk, "examination_ids": [examination.pk]}
    reader = client_for(reader_user)
    session = ReadingSession.objects.get()

    pending = reader.get(url(session, 0, "ai/"))
    assert pending.status_code == 409 and "0 of 3" in pending.json()["detail"]

    model_version_score_frames(model_version=version, examination_ids=[examination.pk])
    shown = reader.get(url(session, 0, "ai/"))

    assert shown.status_code == 200, shown.content
    assert [row["frame"] for row in shown.json()] == [frame.pk for frame in frames]
    cam = reader.get(url(session, 0, f"cam/{shown.json()[1]['id']}/"))
    assert cam.status_code == 200 and cam["Content-Type"] == "image/png"
