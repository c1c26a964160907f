"""Reading a study: what a reader gets for a case, the AI of an aided arm, answers, progress, locking.

Blinding is decided here and enforced by the API, never only by the page: a case view carries no
reference standard and no other reader's answer; the AI of a case is given only in an aided arm,
and in a sequential arm only after the reader's first answers to every question of the case (which
are final from then on). An answer claiming exposure the arm does not give is refused. While a user
reads in an open study of a project, the project's free-labelling AI is hidden from them too
(`inference.selectors.ai_visibility`), so no other endpoint leaks what the arm withholds.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from annotations.models import LabelChoice
from inference.models import ModelVersion, Prediction
from records.models import Frame
from studies.models import ReaderStudy, ReadingSession, StudyArm, StudyCase, StudyQuestion
from studies.models import Reading as ReadingRow
from studies.services import StudyDesignError, reading_session_start

if TYPE_CHECKING:
    from inference.scoring import Gate

Phase = ReadingRow.Phase
Assistance = StudyArm.Assistance
MAX_TIME_MS = 24 * 3600 * 1000


class ReadingRefused(StudyDesignError):
    """An answer or view the study's rules do not allow (API 400, or 409 where `conflict`)."""

    def __init__(self, message: str, *, field: str = "detail", conflict: bool = False) -> None:
        super().__init__(message)
        self.field = field
        self.conflict = conflict


def _required_phases(arm: StudyArm) -> tuple[str, ...]:
    return (Phase.FIRST, Phase.REVISED) if arm.sequential else (Phase.FIRST,)


def _answers(session: ReadingSession) -> dict[int, dict[str, set[int]]]:
    """case id -> phase -> question ids answered."""
    answered: dict[int, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    for case_id, phase, question_id in ReadingRow.objects.filter(session=session).values_list(
        "case_id", "phase", "question_id"
    ):
        answered[case_id][phase].add(question_id)
    return answered


def _question_ids(study_id: int) -> set[int]:
    return set(StudyQuestion.objects.filter(study_id=study_id).values_list("id", flat=True))


def _case_done(answers: dict[str, set[int]], questions: set[int], arm: StudyArm) -> bool:
    return all(questions <= answers.get(phase, set()) for phase in _required_phases(arm))


def current_position(session: ReadingSession) -> int | None:
    """The first case of the session's order not fully answered (None when all are)."""
    answers = _answers(session)
    questions = _question_ids(session.arm.study_id)
    for position, case_id in enumerate(session.case_order):
        if not _case_done(answers.get(case_id, {}), questions, session.arm):
            return position
    return None


@dataclass(frozen=True)
class CaseView:
    position: int
    current: int | None
    case: StudyCase
    is_training: bool
    readings: list[ReadingRow]
    ai_available: bool
    ai_reason: str


def ai_availability(session: ReadingSession, case: StudyCase) -> tuple[bool, str]:
    """Whether the reader may see the AI for `case` now, and if not, why."""
    arm = session.arm
    if arm.assistance == Assistance.UNAIDED:
        return False, "This arm is read without AI."
    if arm.sequential:
        questions = _question_ids(arm.study_id)
        firsts = set(
            ReadingRow.objects.filter(session=session, case=case, phase=Phase.FIRST).values_list(
                "question_id", flat=True
            )
        )
        if not questions <= firsts:
            return False, "Give your first answer to every question of the case; then the AI is shown."
    return True, ""


def case_view(*, session: ReadingSession, position: int, now: datetime | None = None) -> CaseView:
    """The reader's case at `position` of their session (starting the session if needed, which
    enforces the washout). Without navigation, only the current case can be opened; with it, any
    case up to the current one."""
    if session.reader.study.status != ReaderStudy.Status.OPEN:
        raise ReadingRefused(f"The study is {session.reader.study.status}.", conflict=True)
    if session.started_at is None:
        session = reading_session_start(session=session, now=now)
    if not 0 <= position < len(session.case_order):
        raise ReadingRefused(f"The session has cases 0 to {len(session.case_order) - 1}.", field="position")
    current = current_position(session)
    _check_navigation(session, position, current)
    case = StudyCase.objects.select_related("frame", "examination").get(pk=session.case_order[position])
    readings = list(ReadingRow.objects.filter(session=session, case=case).select_related("question__task"))
    available, reason = ai_availability(session, case)
    return CaseView(
        position=position,
        current=current,
        case=case,
        is_training=case.is_training,
        readings=readings,
        ai_available=available,
        ai_reason=reason,
    )


def _check_navigation(session: ReadingSession, position: int, current: int | None) -> None:
    last = len(session.case_order) - 1 if current is None else current
    if position > last:
        raise ReadingRefused(
            "Read the cases in order: this case comes later.", field="position", conflict=True
        )
    if position < last and not session.reader.study.allow_navigation:
        raise ReadingRefused("This study does not allow going back to earlier cases.", conflict=True)


def case_predictions(*, session: ReadingSession, case: StudyCase) -> list[Prediction]:
    """The AI shown for `case`, per question with a frozen model version (see _frozen_ai): a frame
    case's prediction (stored, or computed on demand and stored); an examination case's stored
    predictions of its shown frames (case_frames), refused (409) until all are stored. Refused where
    the arm withholds the AI."""
    available, reason = ai_availability(session, case)
    if not available:
        raise ReadingRefused(reason, conflict=session.arm.assistance != Assistance.UNAIDED)
    from inference.ondemand import predict_frame_with
    from inference.scoring import current_rows
    from inference.selectors import with_prediction_details

    predictions: list[Prediction] = []
    for question in _questions_with_ai(session.arm.study_id):
        version, gate = _frozen_ai(question)
        if case.frame is not None:
            predictions.append(predict_frame_with(frame=case.frame, version=version, gate=gate))
            continue
        # An examination case: the stored predictions of the frames the reader is shown (the
        # re-score queued when the study opened computes them; see services.study_open).
        frames = case_frames(case)
        rows = list(
            with_prediction_details(current_rows(version, gate).filter(frame_id__in=[f.pk for f in frames]))
        )
        if len(rows) < len(frames):
            raise ReadingRefused(
                f"The AI for this examination is still being computed ({len(rows)} of {len(frames)} "
                "frames); try again in a moment.",
                conflict=True,
            )
        predictions.extend(sorted(rows, key=lambda row: row.frame_id))
    return predictions


# The frames a reader is shown for an examination case (the first by id), and so the frames whose
# AI an examination case shows.
EXAMINATION_CASE_MAX_FRAMES = 200


def case_frames(case: StudyCase) -> list[Frame]:
    if case.frame is not None:
        return [case.frame]
    return list(case.examination.frames.order_by("id")[:EXAMINATION_CASE_MAX_FRAMES])


def _questions_with_ai(study_id: int) -> list[StudyQuestion]:
    return list(
        StudyQuestion.objects.filter(study_id=study_id, model_version__isnull=False).select_related(
            "task", "model_version", "gate_version"
        )
    )


def _frozen_ai(question: StudyQuestion) -> tuple[ModelVersion, Gate | None]:
    """The model version and gate frozen for `question` when the study opened (not the ones active
    now: see StudyQuestion.model_version)."""
    from inference.models import TaskGate
    from inference.scoring import Gate

    assert question.model_version is not None
    if question.gate_version is None:
        return question.model_version, None
    # The task's gate row as it is now if it still exists, else one rebuilt from the frozen values
    # (never saved): what decides is the frozen gate version and diagnostic values.
    task_gate = TaskGate.objects.filter(task_id=question.task_id).first() or TaskGate(
        project_id=question.task.project_id,
        task_id=question.task_id,
        gate_task_id=question.gate_version.task_id,
        diagnostic_values=question.gate_diagnostic_values,
    )
    return question.model_version, Gate(
        task_gate=task_gate,
        version=question.gate_version,
        diagnostic_values=frozenset(question.gate_diagnostic_values),
    )


@dataclass(frozen=True)
class Answer:
    question_key: str
    value: str
    confidence: int | None
    time_ms: int
    phase: str = Phase.FIRST
    ai_shown: bool = False
    cam_visible_ms: int = 0


@transaction.atomic
def reading_submit(*, session: ReadingSession, position: int, answer: Answer) -> tuple[ReadingRow, bool]:
    """Store the reader's answer to one question of the case at `position`; (reading, created).

    Refused: a locked or closed study, a case ahead of the current one (or behind it without
    navigation), a changed answer where changes are not allowed, a first answer of a sequential arm
    once the AI was revealed, a revised answer outside a sequential arm or before the AI, a value
    that is not a choice, a missing or unasked confidence, and exposure the arm does not give. The
    session row is locked, so one reader's answers are written one at a time; the session is marked
    completed with its last answer (which starts the washout of the next period).
    """
    locked = (
        ReadingSession.objects.select_for_update().select_related("reader__study", "arm").get(pk=session.pk)
    )
    study = locked.reader.study
    if study.status != ReaderStudy.Status.OPEN:
        raise ReadingRefused(f"The study is {study.status}: its readings are immutable.", conflict=True)
    if locked.started_at is None:
        # The first answer starts the session, with the same washout check as opening a case.
        locked = reading_session_start(session=locked)
    if not 0 <= position < len(locked.case_order):
        raise ReadingRefused(f"The session has cases 0 to {len(locked.case_order) - 1}.", field="position")
    _check_navigation(locked, position, current_position(locked))
    case = StudyCase.objects.select_related("frame").get(pk=locked.case_order[position])
    question = (
        StudyQuestion.objects.filter(study=study, task__key=answer.question_key)
        .select_related("task", "model_version", "gate_version")
        .first()
    )
    if question is None:
        raise ReadingRefused(f"{answer.question_key!r} is not a question of the study.", field="question")
    _check_answer(locked, question, answer)
    available, _ = ai_availability(locked, case)
    if answer.phase == Phase.REVISED and not available:
        raise ReadingRefused("The revised answer comes after the AI is shown.", field="phase", conflict=True)
    if answer.phase == Phase.FIRST and locked.arm.sequential and available:
        raise ReadingRefused(
            "The first answers of this case are final: the AI has been shown.", field="phase", conflict=True
        )
    _check_exposure(locked.arm, answer)
    prediction = None
    if answer.ai_shown and case.frame is not None and question.model_version_id is not None:
        from inference.ondemand import stored_prediction_with

        version, gate = _frozen_ai(question)
        prediction = stored_prediction_with(frame=case.frame, version=version, gate=gate)
    fields: dict[str, Any] = {
        "value": answer.value,
        "confidence": answer.confidence,
        "time_ms": answer.time_ms,
        "ai_shown": answer.ai_shown,
        "cam_visible_ms": answer.cam_visible_ms,
        "prediction": prediction,
    }
    existing = (
        ReadingRow.objects.select_for_update()
        .filter(session=locked, case=case, question=question, phase=answer.phase)
        .first()
    )
    if existing is not None:
        if not study.allow_answer_changes:
            raise ReadingRefused("This study does not allow changing an answer.", conflict=True)
        for name, value in fields.items():
            setattr(existing, name, value)
        existing.version += 1
        existing.save()
        return existing, False
    reading = ReadingRow.objects.create(
        session=locked, case=case, question=question, phase=answer.phase, **fields
    )
    if locked.completed_at is None and current_position(locked) is None:
        locked.completed_at = timezone.now()
        locked.save(update_fields=["completed_at"])
    return reading, True


def _check_answer(session: ReadingSession, question: StudyQuestion, answer: Answer) -> None:
    if answer.phase not in Phase.values:
        raise ReadingRefused(f"Unknown phase {answer.phase!r}.", field="phase")
    if answer.phase == Phase.REVISED and not session.arm.sequential:
        raise ReadingRefused("Only a sequential arm has revised answers.", field="phase")
    if not LabelChoice.objects.filter(task_id=question.task_id, value=answer.value, is_active=True).exists():
        raise ReadingRefused(f"{answer.value!r} is not a choice of {question.task.key!r}.", field="value")
    if question.ask_confidence and answer.confidence is None:
        raise ReadingRefused("This question asks for your confidence (1 to 5).", field="confidence")
    if not question.ask_confidence and answer.confidence is not None:
        raise ReadingRefused("This question does not ask for a confidence.", field="confidence")
    if answer.confidence is not None and not 1 <= answer.confidence <= 5:
        raise ReadingRefused("Confidence is 1 (guess) to 5 (certain).", field="confidence")
    if not 0 <= answer.time_ms <= MAX_TIME_MS:
        raise ReadingRefused("Reading time is 0 to 24 hours in milliseconds.", field="time_ms")


def _check_exposure(arm: StudyArm, answer: Answer) -> None:
    unaided_answer = arm.assistance == Assistance.UNAIDED or (arm.sequential and answer.phase == Phase.FIRST)
    if answer.cam_visible_ms < 0:
        raise ReadingRefused("CAM time is 0 or more milliseconds.", field="cam_visible_ms")
    if unaided_answer and (answer.ai_shown or answer.cam_visible_ms):
        raise ReadingRefused(
            "This answer is given without AI; it cannot claim AI was shown.", field="ai_shown"
        )
    if answer.cam_visible_ms and not answer.ai_shown:
        raise ReadingRefused("CAM time above 0 requires ai_shown.", field="cam_visible_ms")
    if answer.cam_visible_ms and arm.assistance != Assistance.PREDICTION_AND_CAM:
        raise ReadingRefused("This arm shows no CAM.", field="cam_visible_ms")


@transaction.atomic
def study_lock(*, study: ReaderStudy) -> ReaderStudy:
    """Lock an open study: from now on its readings are immutable (locking twice is a no-op)."""
    locked = ReaderStudy.objects.select_for_update().get(pk=study.pk)
    if locked.status == ReaderStudy.Status.LOCKED:
        return locked
    if locked.status != ReaderStudy.Status.OPEN:
        raise ReadingRefused("Only an open study can be locked.", conflict=True)
    locked.status = ReaderStudy.Status.LOCKED
    locked.locked_at = timezone.now()
    locked.save(update_fields=["status", "locked_at"])
    return locked


@dataclass(frozen=True)
class SessionProgress:
    session: ReadingSession
    cases_done: int
    cases_total: int


def study_progress(study: ReaderStudy) -> list[SessionProgress]:
    """Per reader and arm: cases fully answered out of the session's cases (three queries)."""
    sessions = list(
        ReadingSession.objects.filter(reader__study=study)
        .select_related("reader__user", "arm")
        .order_by("reader__position", "period", "arm__order")
    )
    questions = _question_ids(study.pk)
    answered: dict[tuple[int, int], dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    for session_id, case_id, phase, question_id in ReadingRow.objects.filter(
        session__reader__study=study
    ).values_list("session_id", "case_id", "phase", "question_id"):
        answered[(session_id, case_id)][phase].add(question_id)
    return [
        SessionProgress(
            session=session,
            cases_done=sum(
                1
                for case_id in session.case_order
                if _case_done(answered.get((session.pk, case_id), {}), questions, session.arm)
            ),
            cases_total=len(session.case_order),
        )
        for session in sessions
    ]
