"""Reader-study design: checked settings, the schedule generated on opening (counterbalanced arm
order, periods, seeded case orders, split-plot blocks) and the enforced crossover washout."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from annotations.models import LabelTask
from records.models import Frame, Project
from studies.models import ReaderStudy, ReadingSession, StudyCase
from studies.services import (
    ArmSpec,
    CaseSpec,
    QuestionSpec,
    ReaderSpec,
    SessionNotAvailable,
    StudyDesignError,
    StudyFrozen,
    reading_session_availability,
    reading_session_start,
    study_arms_set,
    study_cases_add,
    study_create,
    study_open,
    study_questions_set,
    study_readers_set,
)
from tests.factories import (
    ExaminationFactory,
    FrameFactory,
    LabelChoiceFactory,
    LabelTaskFactory,
    PatientFactory,
    ProjectFactory,
)
from tests.records.api_support import Role, member_of

pytestmark = pytest.mark.django_db

UNAIDED = ArmSpec(name="unaided", assistance="unaided")
AIDED = ArmSpec(name="AI + CAM", assistance="prediction_and_cam")


def diagnosis_task(project: Project) -> LabelTask:
    task = LabelTaskFactory.create(project=project, key="diagnosis")
    LabelChoiceFactory.create(task=task, value="healthy", order=0)
    LabelChoiceFactory.create(task=task, value="neoplastic", order=1)
    return task


def frames_of_patients(project: Project, patients: int, frames_each: int) -> list[Frame]:
    frames = []
    for patient_number in range(patients):
        patient = PatientFactory.create(project=project)
        for frame_number in range(frames_each):
            label = "neoplastic" if (patient_number + frame_number) % 2 else "healthy"
            examination = ExaminationFactory.create(patient=patient, reference_label=label)
            frames.append(FrameFactory.create(examination=examination))
    return frames


def designed_study(
    *,
    design: str = "crossover",
    washout_days: int = 14,
    readers: int = 2,
    reader_groups: int = 1,
    patients: int = 4,
    frames_each: int = 2,
    training: int = 2,
    arms: tuple[ArmSpec, ...] = (UNAIDED, AIDED),
    seed: int = 20261123,
    project: Project | None = None,
) -> tuple[ReaderStudy, list[Any]]:
    project = project or ProjectFactory.create()
    task = diagnosis_task(project)
    study = study_create(
        project=project,
        name="CLE AI study",
        design=design,
        washout_days=washout_days,
        reader_groups=reader_groups,
        created_by=None,
        seed=seed,
    )
    study_questions_set(study=study, questions=[QuestionSpec(task=task)])
    study_arms_set(study=study, arms=list(arms))
    frames = frames_of_patients(project, patients, frames_each)
    specs = [CaseSpec(frame_id=frame.pk, is_training=index < training) for index, frame in enumerate(frames)]
    study_cases_add(study=study, cases=specs)
    users = [member_of(project, Role.READER) for _ in range(readers)]
    study_readers_set(
        study=study,
        readers=[ReaderSpec(user=user, group=index % reader_groups) for index, user in enumerate(users)],
    )
    return study, users


def _positions(session: ReadingSession) -> list[int]:
    """The session's case order as positions in the study's case list (comparable across studies)."""
    case_ids = list(
        StudyCase.objects.filter(study_id=session.arm.study_id).order_by("id").values_list("id", flat=True)
    )
    return [case_ids.index(case_id) for case_id in session.case_order]


def test_a_crossover_counterbalances_the_arm_order_and_puts_training_cases_first() -> None:
    study, _ = designed_study(readers=4)

    study_open(study=study)

    sessions = list(
        ReadingSession.objects.select_related("reader", "arm").order_by("reader__position", "period")
    )
    assert len(sessions) == 4 * 2
    first_arms = [s.arm.name for s in sessions if s.period == 1]
    assert first_arms == ["unaided", "AI + CAM", "unaided", "AI + CAM"]  # rotated by reader position
    training = set(StudyCase.objects.filter(is_training=True).values_list("id", flat=True))
    analysed = set(StudyCase.objects.filter(is_training=False).values_list("id", flat=True))
    for session in sessions:
        assert set(session.case_order[:2]) == training
        assert set(session.case_order[2:]) == analysed and len(session.case_order) == 8
    # Each reader and arm has its own order.
    assert len({tuple(session.case_order) for session in sessions}) > 1
    study.refresh_from_db()
    assert study.status == "open" and study.opened_at is not None


def test_the_same_seed_and_design_give_the_same_schedule_and_another_seed_another() -> None:
    first, _ = designed_study(seed=7)
    second, _ = designed_study(seed=7)
    third, _ = designed_study(seed=8)
    for study in (first, second, third):
        study_open(study=study)

    def schedule(study: ReaderStudy) -> list[list[int]]:
        sessions = ReadingSession.objects.filter(reader__study=study).order_by("reader__position", "period")
        return [_positions(session) for session in sessions.select_related("arm")]

    assert schedule(first) == schedule(second)
    assert schedule(first) != schedule(third)


def test_the_washout_is_enforced_between_periods() -> None:
    study, _ = designed_study(washout_days=14)
    study_open(study=study)
    first, second = ReadingSession.objects.filter(reader__position=0).order_by("period")
    now = timezone.now()

    with pytest.raises(SessionNotAvailable, match="Finish period 1 first"):
        reading_session_start(session=second, now=now)
    reading_session_start(session=first, now=now)
    ReadingSession.objects.filter(pk=first.pk).update(completed_at=now)

    with pytest.raises(SessionNotAvailable, match="Washout") as refused:
        reading_session_start(session=second, now=now + timedelta(days=13, hours=23))
    assert refused.value.available_from == now + timedelta(days=14)
    started = reading_session_start(session=second, now=now + timedelta(days=14))
    assert started.started_at == now + timedelta(days=14)


def test_a_fully_crossed_study_has_one_period_and_no_washout() -> None:
    with pytest.raises(StudyDesignError, match="no washout"):
        designed_study(design="fully_crossed", washout_days=3)
    study, _ = designed_study(design="fully_crossed", washout_days=0)
    study_open(study=study)

    sessions = list(ReadingSession.objects.all())
    assert {session.period for session in sessions} == {1}
    assert all(reading_session_availability(session).available for session in sessions)


def test_a_split_plot_deals_whole_patients_to_the_reader_groups() -> None:
    study, _ = designed_study(design="split_plot", reader_groups=2, readers=4, patients=6, training=0)

    study_open(study=study)

    cases = list(StudyCase.objects.select_related("examination"))
    blocks_of_patient: dict[int, set[int]] = {}
    for case in cases:
        blocks_of_patient.setdefault(case.examination.patient_id, set()).add(case.block)
    assert all(len(blocks) == 1 for blocks in blocks_of_patient.values())
    sizes = [sum(1 for case in cases if case.block == block) for block in (0, 1)]
    assert sizes == [6, 6]
    for session in ReadingSession.objects.select_related("reader"):
        blocks = {case.block for case in cases if case.pk in session.case_order}
        assert blocks == {session.reader.group} and len(session.case_order) == 6


def test_references_come_from_the_reference_label_or_are_given_and_checked() -> None:
    project = ProjectFactory.create()
    task = diagnosis_task(project)
    quality = LabelTaskFactory.create(project=project, key="quality")
    LabelChoiceFactory.create(task=quality, value="good")
    study = study_create(project=project, name="s", design="crossover", washout_days=7, created_by=None)
    study_questions_set(study=study, questions=[QuestionSpec(task=task), QuestionSpec(task=quality)])
    labelled, unlabelled, odd = (
        FrameFactory.create(
            examination=ExaminationFactory.create(patient__project=project, reference_label=label)
        )
        for label in ("neoplastic", "", "dysplasia")
    )

    with pytest.raises(StudyDesignError, match="'dysplasia' fits no question"):
        study_cases_add(study=study, cases=[CaseSpec(frame_id=odd.pk)])
    with pytest.raises(StudyDesignError, match="not a choice"):
        study_cases_add(study=study, cases=[CaseSpec(frame_id=odd.pk, reference={"diagnosis": "dysplasia"})])
    added = study_cases_add(
        study=study,
        cases=[
            CaseSpec(frame_id=labelled.pk),
            CaseSpec(frame_id=unlabelled.pk, reference={"diagnosis": "healthy", "quality": "good"}),
        ],
    )
    assert [case.reference for case in added] == [
        {"diagnosis": "neoplastic"},
        {"diagnosis": "healthy", "quality": "good"},
    ]
    with pytest.raises(StudyDesignError, match="Already cases"):
        study_cases_add(study=study, cases=[CaseSpec(frame_id=labelled.pk)])
    other_project_frame = FrameFactory.create()
    with pytest.raises(StudyDesignError, match="No such frames"):
        study_cases_add(study=study, cases=[CaseSpec(frame_id=other_project_frame.pk)])
    assert StudyCase.objects.count() == 2  # refused batches store nothing


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"arms": (ArmSpec(name="seq", assistance="unaided", sequential=True),)}, "sequential arm"),
        ({"arms": (UNAIDED,)}, "at least two arms"),
        ({"training": 8, "patients": 4}, "no case to analyse"),
        ({"design": "split_plot", "reader_groups": 2, "readers": 1}, "reader group"),
    ],
)
def test_a_design_that_cannot_be_right_is_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(StudyDesignError, match=message):
        study, _ = designed_study(**change)
        study_open(study=study)
    assert not ReadingSession.objects.exists()


def test_readers_must_be_project_members_and_the_design_freezes_when_open() -> None:
    study, _ = designed_study()
    outsider = member_of(ProjectFactory.create(), Role.READER)
    with pytest.raises(StudyDesignError, match="Not members"):
        study_readers_set(study=study, readers=[ReaderSpec(user=outsider)])

    study_open(study=study)

    with pytest.raises(StudyFrozen):
        study_arms_set(study=study, arms=[UNAIDED, AIDED])
    with pytest.raises(StudyFrozen):
        study_open(study=study)
