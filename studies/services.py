"""Writes of reader studies: the design while it is a draft, opening (which generates the reading
schedule) and starting a reading session (which enforces the crossover washout).

Every function raises `StudyDesignError` (API: 400) for input that cannot be right, and
`StudyFrozen` (API: 409) when the study is no longer a draft.
"""

from __future__ import annotations

import random
import secrets
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from annotations.models import LabelChoice, LabelTask
from records.models import Examination, Frame, ProjectMembership
from studies.models import (
    ReaderStudy,
    ReadingSession,
    StudyArm,
    StudyCase,
    StudyQuestion,
    StudyReader,
)

Design = ReaderStudy.Design
MAX_WASHOUT_DAYS = 365


class StudyDesignError(Exception):
    """A design that cannot be right; the message says why, for the coordinator."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StudyFrozen(StudyDesignError):
    """The study is open or locked: its design no longer changes."""


class SessionNotAvailable(StudyDesignError):
    """The reader may not start this session yet (earlier period unfinished, washout running)."""

    def __init__(self, message: str, available_from: datetime | None = None) -> None:
        super().__init__(message)
        self.available_from = available_from


def _check_design_settings(design: str, washout_days: int, reader_groups: int) -> None:
    if design not in Design.values:
        raise StudyDesignError(f"Unknown design {design!r}; one of {Design.values}.")
    if not 0 <= washout_days <= MAX_WASHOUT_DAYS:
        raise StudyDesignError(f"The washout is 0 to {MAX_WASHOUT_DAYS} days.")
    if design == Design.FULLY_CROSSED and washout_days:
        raise StudyDesignError(
            "A fully crossed study has no periods, so no washout; choose a crossover design for one."
        )
    if design == Design.SPLIT_PLOT and reader_groups < 2:
        raise StudyDesignError("A split-plot study needs at least 2 reader groups.")
    if design != Design.SPLIT_PLOT and reader_groups != 1:
        raise StudyDesignError("Reader groups exist only in split-plot studies.")


def _lock_draft(study: ReaderStudy) -> ReaderStudy:
    locked = ReaderStudy.objects.select_for_update().get(pk=study.pk)
    if locked.status != ReaderStudy.Status.DRAFT:
        raise StudyFrozen(f"The study is {locked.status}; its design can no longer change.")
    return locked


def study_create(
    *,
    project: Any,
    name: str,
    design: str,
    created_by: User | None,
    description: str = "",
    case_unit: str = ReaderStudy.CaseUnit.FRAME,
    washout_days: int = 0,
    reader_groups: int = 1,
    allow_navigation: bool = False,
    allow_answer_changes: bool = False,
    seed: int | None = None,
) -> ReaderStudy:
    """A draft study. The seed is drawn here (or given, to reproduce a published schedule) and
    stored, so every random choice of the schedule can be repeated."""
    _check_design_settings(design, washout_days, reader_groups)
    if ReaderStudy.objects.filter(project=project, name=name).exists():
        raise StudyDesignError(f"The project already has a study named {name!r}.")
    return ReaderStudy.objects.create(
        project=project,
        name=name,
        description=description,
        design=design,
        case_unit=case_unit,
        washout_days=washout_days,
        reader_groups=reader_groups,
        allow_navigation=allow_navigation,
        allow_answer_changes=allow_answer_changes,
        seed=seed if seed is not None else secrets.randbits(62),
        created_by=created_by,
    )


@transaction.atomic
def study_update(*, study: ReaderStudy, **changes: Any) -> ReaderStudy:
    """Change a draft's settings (name, description, design, washout, groups, navigation rules)."""
    locked = _lock_draft(study)
    for field, value in changes.items():
        setattr(locked, field, value)
    _check_design_settings(locked.design, locked.washout_days, locked.reader_groups)
    namesakes = ReaderStudy.objects.filter(project_id=locked.project_id, name=locked.name)
    if namesakes.exclude(pk=locked.pk).exists():
        raise StudyDesignError(f"The project already has a study named {locked.name!r}.")
    locked.save()
    return locked


@dataclass(frozen=True)
class QuestionSpec:
    task: LabelTask
    ask_confidence: bool = True


@transaction.atomic
def study_questions_set(*, study: ReaderStudy, questions: Sequence[QuestionSpec]) -> list[StudyQuestion]:
    """Replace the questions: tasks of the study's project, each once, in the given order."""
    locked = _lock_draft(study)
    if not questions:
        raise StudyDesignError("Ask at least one question.")
    keys = [spec.task.key for spec in questions]
    if len(set(keys)) != len(keys):
        raise StudyDesignError("Each task is asked once.")
    for spec in questions:
        if spec.task.project_id != locked.project_id:
            raise StudyDesignError(f"Task {spec.task.key!r} belongs to another project.")
        if not spec.task.is_active:
            raise StudyDesignError(f"Task {spec.task.key!r} is inactive.")
    locked.questions.all().delete()
    return StudyQuestion.objects.bulk_create(
        StudyQuestion(study=locked, task=spec.task, ask_confidence=spec.ask_confidence, order=order)
        for order, spec in enumerate(questions)
    )


@dataclass(frozen=True)
class ArmSpec:
    name: str
    assistance: str
    sequential: bool = False


@transaction.atomic
def study_arms_set(*, study: ReaderStudy, arms: Sequence[ArmSpec]) -> list[StudyArm]:
    """Replace the arms. A sequential arm must show AI (its second answer is the aided one)."""
    locked = _lock_draft(study)
    if not arms:
        raise StudyDesignError("Define at least one arm.")
    names = [arm.name.strip() for arm in arms]
    if len(set(names)) != len(names) or not all(names):
        raise StudyDesignError("Arms have distinct, non-empty names.")
    for arm in arms:
        if arm.assistance not in StudyArm.Assistance.values:
            known = StudyArm.Assistance.values
            raise StudyDesignError(f"Unknown assistance {arm.assistance!r}; one of {known}.")
        if arm.sequential and arm.assistance == StudyArm.Assistance.UNAIDED:
            raise StudyDesignError(f"Arm {arm.name!r}: a sequential arm shows the AI after the first answer.")
    locked.arms.all().delete()
    return StudyArm.objects.bulk_create(
        StudyArm(
            study=locked,
            name=name,
            assistance=arm.assistance,
            sequential=arm.sequential,
            order=order,
        )
        for order, (name, arm) in enumerate(zip(names, arms, strict=True))
    )


@dataclass(frozen=True)
class CaseSpec:
    """A case to add: a frame id or an examination id (per the study's case unit), its reference
    standard ({task key: value}; taken from the frame's or examination's reference label when
    omitted) and whether it is a training case."""

    frame_id: int | None = None
    examination_id: int | None = None
    reference: dict[str, str] | None = None
    is_training: bool = False


@transaction.atomic
def study_cases_add(*, study: ReaderStudy, cases: Sequence[CaseSpec]) -> list[StudyCase]:
    """Add cases of the study's project, all or nothing.

    A reference given explicitly must name question tasks and their choices. Where it is omitted,
    the frame's (else the examination's) reference label becomes the reference of the one question
    task that offers that value as a choice; a label that fits no question, or several, is refused
    rather than guessed. Set the questions first.
    """
    locked = _lock_draft(study)
    if not cases:
        raise StudyDesignError("Give at least one case.")
    questions = list(locked.questions.select_related("task"))
    if not questions:
        raise StudyDesignError("Set the study's questions before its cases (references name them).")
    choices: dict[str, set[str]] = defaultdict(set)
    for choice in LabelChoice.objects.filter(task__in=[q.task for q in questions]).select_related("task"):
        choices[choice.task.key].add(choice.value)
    by_frame = locked.case_unit == ReaderStudy.CaseUnit.FRAME
    wanted = [spec.frame_id if by_frame else spec.examination_id for spec in cases]
    if any(item is None for item in wanted):
        unit = "frame" if by_frame else "examination"
        raise StudyDesignError(f"Every case of this study is a {unit}: give its {unit} id.")
    if len(set(wanted)) != len(wanted):
        raise StudyDesignError("A case is listed twice.")
    project_id = locked.project_id
    if by_frame:
        frames = {
            frame.pk: frame
            for frame in Frame.objects.filter(
                pk__in=wanted, examination__patient__project_id=project_id
            ).select_related("examination")
        }
        missing = [item for item in wanted if item not in frames]
        existing = set(locked.cases.filter(frame_id__in=wanted).values_list("frame_id", flat=True))
    else:
        examinations = {
            exam.pk: exam
            for exam in Examination.objects.filter(pk__in=wanted, patient__project_id=project_id)
        }
        missing = [item for item in wanted if item not in examinations]
        existing = set(
            locked.cases.filter(frame__isnull=True, examination_id__in=wanted).values_list(
                "examination_id", flat=True
            )
        )
    if missing:
        raise StudyDesignError(f"No such {locked.case_unit}s in the project: {missing[:10]}.")
    if existing:
        raise StudyDesignError(f"Already cases of the study: {sorted(existing)[:10]}.")
    rows = []
    for spec, item in zip(cases, wanted, strict=True):
        if by_frame:
            frame = frames[item]  # type: ignore[index]
            examination = frame.examination
            fallback = frame.reference_label or examination.reference_label
        else:
            frame = None
            examination = examinations[item]  # type: ignore[index]
            fallback = examination.reference_label
        reference = _case_reference(spec.reference, fallback, choices, item)
        rows.append(
            StudyCase(
                study=locked,
                frame=frame,
                examination=examination,
                reference=reference,
                reference_source=examination.reference_source,
                is_training=spec.is_training,
            )
        )
    return StudyCase.objects.bulk_create(rows)


def _case_reference(
    given: dict[str, str] | None, fallback: str, choices: dict[str, set[str]], item: int | None
) -> dict[str, str]:
    if given is not None:
        for key, value in given.items():
            if key not in choices:
                raise StudyDesignError(f"Case {item}: {key!r} is not a question of the study.")
            if value not in choices[key]:
                raise StudyDesignError(f"Case {item}: {value!r} is not a choice of {key!r}.")
        return dict(given)
    if not fallback:
        return {}
    fitting = [key for key, values in choices.items() if fallback in values]
    if len(fitting) != 1:
        where = "no question" if not fitting else f"several questions ({sorted(fitting)})"
        raise StudyDesignError(
            f"Case {item}: its reference label {fallback!r} fits {where}; give the reference explicitly."
        )
    return {fitting[0]: fallback}


@dataclass(frozen=True)
class ReaderSpec:
    user: User
    group: int = 0


@transaction.atomic
def study_readers_set(*, study: ReaderStudy, readers: Sequence[ReaderSpec]) -> list[StudyReader]:
    """Replace the readers: members of the project, each once. Their order is their position, which
    counterbalances the arm order; in a split-plot study each is in a group 0..groups-1."""
    locked = _lock_draft(study)
    if not readers:
        raise StudyDesignError("Assign at least one reader.")
    user_ids = [spec.user.pk for spec in readers]
    if len(set(user_ids)) != len(user_ids):
        raise StudyDesignError("A reader is assigned twice.")
    members = set(
        ProjectMembership.objects.filter(project_id=locked.project_id, user_id__in=user_ids).values_list(
            "user_id", flat=True
        )
    )
    outsiders = [spec.user.username for spec in readers if spec.user.pk not in members]
    if outsiders:
        raise StudyDesignError(f"Not members of the project: {outsiders}.")
    for spec in readers:
        if not 0 <= spec.group < locked.reader_groups:
            raise StudyDesignError(
                f"Reader {spec.user.username!r}: group {spec.group} is outside 0..{locked.reader_groups - 1}."
            )
    locked.readers.all().delete()
    return StudyReader.objects.bulk_create(
        StudyReader(study=locked, user=spec.user, position=position, group=spec.group)
        for position, spec in enumerate(readers)
    )


@transaction.atomic
def study_open(*, study: ReaderStudy) -> ReaderStudy:
    """Check the design, assign split-plot case blocks and generate every reading session; then the
    study is open and its design frozen.

    Schedule (all random choices from `random.Random` seeded with the study's seed and the names of
    what is drawn, so the same study always gets the same schedule):
    - arm order per reader: the arms rotated by the reader's position (a Latin square; for two arms
      AB for even positions, BA for odd ones), so each arm is read first equally often;
    - period: crossover and split-plot read one arm per period; fully crossed has one period;
    - split-plot: patients are shuffled and dealt to the case blocks (all cases of a patient in one
      block), each block read by the reader group of the same number;
    - case order per session: training cases first, then the analysed cases, each part shuffled per
      reader and arm.
    """
    locked = _lock_draft(study)
    arms = list(locked.arms.order_by("order", "id"))
    readers = list(locked.readers.order_by("position"))
    cases = list(locked.cases.order_by("id"))
    if not locked.questions.exists():
        raise StudyDesignError("The study asks no question.")
    if not arms:
        raise StudyDesignError("The study has no arm.")
    if locked.design != Design.FULLY_CROSSED and len(arms) < 2:
        raise StudyDesignError("A crossover or split-plot study compares at least two arms.")
    if not readers:
        raise StudyDesignError("The study has no reader.")
    analysed = [case for case in cases if not case.is_training]
    if not analysed:
        raise StudyDesignError("The study has no case to analyse (training cases are not analysed).")
    without_reference = [case.pk for case in analysed if not case.reference]
    if without_reference:
        raise StudyDesignError(f"Cases without a reference standard: {without_reference[:10]}.")
    if locked.design == Design.SPLIT_PLOT:
        groups = {reader.group for reader in readers}
        if groups != set(range(locked.reader_groups)):
            raise StudyDesignError(f"Every reader group 0..{locked.reader_groups - 1} needs a reader.")
        _assign_case_blocks(locked, analysed)
    sessions = []
    for reader in readers:
        rotation = reader.position % len(arms)
        arm_order = arms[rotation:] + arms[:rotation]
        for index, arm in enumerate(arm_order):
            block = [
                case
                for case in cases
                if locked.design != Design.SPLIT_PLOT or case.is_training or case.block == reader.group
            ]
            # Keyed by design positions, not database ids: the same seed and design give the
            # same orders in any installation (a published schedule can be reproduced).
            draw = random.Random(f"{locked.seed}:reader:{reader.position}:arm:{arm.order}")
            training = [case.pk for case in block if case.is_training]
            reading = [case.pk for case in block if not case.is_training]
            draw.shuffle(training)
            draw.shuffle(reading)
            sessions.append(
                ReadingSession(
                    reader=reader,
                    arm=arm,
                    period=1 if locked.design == Design.FULLY_CROSSED else index + 1,
                    case_order=training + reading,
                )
            )
    ReadingSession.objects.bulk_create(sessions)
    if any(arm.assistance != StudyArm.Assistance.UNAIDED for arm in arms):
        _freeze_study_ai(locked)
        if locked.case_unit == ReaderStudy.CaseUnit.EXAMINATION:
            _prescore_examination_cases(locked, cases)
    locked.status = ReaderStudy.Status.OPEN
    locked.opened_at = timezone.now()
    locked.save(update_fields=["status", "opened_at"])
    return locked


def _freeze_study_ai(study: ReaderStudy) -> None:
    """Record per question the AI its readers will see: the task's active model version now and,
    for a gated task, the gate's version and diagnostic values (see StudyQuestion.model_version).
    A question whose task has no active model gets no AI (the study's questions in the API show
    which model each question's AI is); a gated task whose gate has no model is refused, as its
    diagnosis cannot be shown at all."""
    # Lazily: inference.scoring imports torch, which opening a study without AI does not need.
    from inference.scoring import GateUnavailable, resolve_gate
    from inference.selectors import active_model_version

    questions = list(study.questions.select_related("task"))
    for question in questions:
        version = active_model_version(project_id=study.project_id, task_id=question.task_id)
        if version is None:
            continue
        try:
            gate = resolve_gate(question.task_id)
        except GateUnavailable as exc:
            raise StudyDesignError(exc.message) from exc
        question.model_version = version
        question.gate_version = gate.version if gate else None
        question.gate_diagnostic_values = sorted(gate.diagnostic_values) if gate else []
        question.save(update_fields=["model_version", "gate_version", "gate_diagnostic_values"])


def _prescore_examination_cases(study: ReaderStudy, cases: list[StudyCase]) -> None:
    """Queue a re-score of the case examinations with each frozen model version (after commit).
    A frame case is predicted on demand when the reader reaches it (tens of ms); an examination can
    hold hundreds of frames, so its AI is computed before anyone reads it, and shown once stored."""
    from inference.services import rescore_job_create

    examination_ids = sorted({case.examination_id for case in cases})
    for question in study.questions.filter(model_version__isnull=False).select_related("model_version"):
        assert question.model_version is not None
        rescore_job_create(
            model_version=question.model_version, examination_ids=examination_ids, created_by=study.created_by
        )


def _assign_case_blocks(study: ReaderStudy, analysed: list[StudyCase]) -> None:
    """Deal patients (not cases: a patient's cases are correlated) to the blocks: shuffled by the
    seed, each to the block with the fewest cases so far."""
    by_patient: dict[int, list[StudyCase]] = defaultdict(list)
    patient_of = dict(
        Examination.objects.filter(pk__in={case.examination_id for case in analysed}).values_list(
            "pk", "patient_id"
        )
    )
    for case in analysed:
        by_patient[patient_of[case.examination_id]].append(case)
    patients = sorted(by_patient)
    random.Random(f"{study.seed}:blocks").shuffle(patients)
    sizes = [0] * study.reader_groups
    if len(patients) < study.reader_groups:
        raise StudyDesignError(
            f"A split-plot study with {study.reader_groups} groups needs cases of at least as many patients."
        )
    for patient in patients:
        block = min(range(study.reader_groups), key=lambda b: (sizes[b], b))
        for case in by_patient[patient]:
            case.block = block
        sizes[block] += len(by_patient[patient])
    StudyCase.objects.bulk_update(analysed, ["block"])


@dataclass(frozen=True)
class Availability:
    available: bool
    reason: str
    available_from: datetime | None


def reading_session_availability(session: ReadingSession, *, now: datetime | None = None) -> Availability:
    """Whether the reader may start (or go on with) `session` now: the study is open, every session
    of the reader's earlier periods is completed, and the washout since the last of them is over."""
    now = now or timezone.now()
    study = session.reader.study
    if study.status != ReaderStudy.Status.OPEN:
        return Availability(False, f"The study is {study.status}.", None)
    if session.completed_at is not None:
        return Availability(False, "This session is completed.", None)
    earlier = list(
        ReadingSession.objects.filter(reader_id=session.reader_id, period__lt=session.period).only(
            "completed_at"
        )
    )
    if any(previous.completed_at is None for previous in earlier):
        return Availability(False, f"Finish period {session.period - 1} first.", None)
    if earlier:
        finished = max(previous.completed_at for previous in earlier if previous.completed_at)
        available_from = finished + timedelta(days=study.washout_days)
        if now < available_from:
            return Availability(
                False,
                f"Washout: period {session.period} opens on {available_from:%Y-%m-%d %H:%M} UTC.",
                available_from,
            )
    return Availability(True, "", None)


@transaction.atomic
def reading_session_start(*, session: ReadingSession, now: datetime | None = None) -> ReadingSession:
    """Start the session (idempotent once started), refusing it while it is not available."""
    locked = ReadingSession.objects.select_for_update().select_related("reader__study").get(pk=session.pk)
    if locked.started_at is not None and locked.completed_at is None:
        return locked
    availability = reading_session_availability(locked, now=now)
    if not availability.available:
        raise SessionNotAvailable(availability.reason, availability.available_from)
    locked.started_at = now or timezone.now()
    locked.save(update_fields=["started_at"])
    return locked
