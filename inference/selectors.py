"""Reads of the inference app, always scoped to the caller's projects."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import cast

from django.db.models import Exists, F, OuterRef, Q, QuerySet, Subquery

from inference.models import ModelVersion, Prediction, TaskGate
from records.models import Frame, Project, ProjectMembership
from records.selectors import AnyUser, projects_visible_to, role_in_project

Role = ProjectMembership.Role
# Roles that curate labels and models: they always see model output (they are never blinded).
AI_ALWAYS_VISIBLE_ROLES = frozenset({Role.COORDINATOR, Role.ADMIN, Role.REVIEWER})


@dataclass(frozen=True)
class AiVisibility:
    """What model output a user may see in a project: the prediction (class and probabilities)
    and, on top of it, the CAM. The API enforces it; the workspace only mirrors it."""

    prediction: bool
    cam: bool

    @property
    def label(self) -> str:
        if self.cam:
            return Project.AiAssistance.PREDICTION_AND_CAM.value
        return Project.AiAssistance.PREDICTION.value if self.prediction else Project.AiAssistance.HIDDEN.value


def ai_visibility(user: AnyUser, project: Project) -> AiVisibility:
    """Coordinators, admins and reviewers see everything; readers and data managers see what the
    project's `ai_assistance` allows (hidden by default, so free labels are unbiased); non-members
    nothing. Whoever reads in an open reader study of the project (whatever their role) sees no
    model output outside the study's own endpoints, which give it per arm (studies/reading.py):
    otherwise a blinded arm could be read beside the free-labelling predictions."""
    role = role_in_project(user, project)
    if role is None:
        return AiVisibility(prediction=False, cam=False)
    from studies.models import ReaderStudy, StudyReader

    if StudyReader.objects.filter(
        user_id=cast(int, user.pk), study__project=project, study__status=ReaderStudy.Status.OPEN
    ).exists():
        return AiVisibility(prediction=False, cam=False)
    if role in AI_ALWAYS_VISIBLE_ROLES:
        return AiVisibility(prediction=True, cam=True)
    setting = project.ai_assistance
    return AiVisibility(
        prediction=setting != Project.AiAssistance.HIDDEN,
        cam=setting == Project.AiAssistance.PREDICTION_AND_CAM,
    )


def model_versions_visible_to(user: AnyUser) -> QuerySet[ModelVersion]:
    return ModelVersion.objects.filter(project__in=projects_visible_to(user)).select_related("task")


def predictions_visible_to(user: AnyUser) -> QuerySet[Prediction]:
    return Prediction.objects.filter(model_version__project__in=projects_visible_to(user))


def task_gates_visible_to(user: AnyUser) -> QuerySet[TaskGate]:
    return TaskGate.objects.filter(project__in=projects_visible_to(user)).select_related("task", "gate_task")


def active_model_version(*, project_id: int, task_id: int) -> ModelVersion | None:
    return (
        ModelVersion.objects.filter(project_id=project_id, task_id=task_id, status=ModelVersion.Status.ACTIVE)
        .select_related("task")
        .first()
    )


# What the prediction serializer reads besides the row: its version and task, and for a gated
# row the gate's prediction (with its version and task) and the task's gate (diagnostic values).
PREDICTION_RELATED = (
    "model_version",
    "task__gate",
    "gate_prediction__model_version",
    "gate_prediction__task",
)


def with_prediction_details(predictions: QuerySet[Prediction]) -> QuerySet[Prediction]:
    return predictions.select_related(*PREDICTION_RELATED)


def current_predictions(
    *, version: ModelVersion, gate_version_id: int | None, diagnostic_values: Collection[str] = ()
) -> QuerySet[Prediction]:
    """`version`'s predictions (for its task) that agree with how the task is gated now.

    Ungated task (`gate_version_id` None): rows without a gate decision. Gated task: rows decided
    on a prediction of the gate task's active version (`gate_version_id`) and whose decision is what
    `diagnostic_values` say of that prediction. Anything else (made before the gate was set,
    changed or removed, or on an earlier gate version) is stale: the re-score job and on-demand
    prediction replace it, and skip only frames that have a current row.
    """
    rows = Prediction.objects.filter(model_version_id=version.pk, task_id=version.task_id)
    if gate_version_id is None:
        return rows.filter(gate_passed__isnull=True)
    diagnostic = Q(gate_prediction__predicted_value__in=list(diagnostic_values))
    return rows.filter(gate_prediction__model_version_id=gate_version_id).filter(
        (Q(gate_passed=True) & diagnostic) | (Q(gate_passed=False) & ~diagnostic)
    )


def frame_active_predictions(frame: Frame) -> QuerySet[Prediction]:
    """The frame's predictions made by the active model version of each task (one per task)."""
    return with_prediction_details(
        Prediction.objects.filter(frame=frame, model_version__status=ModelVersion.Status.ACTIVE)
    ).order_by("task__order", "task_id")


@dataclass(frozen=True)
class Flips:
    compared: int  # frames both versions scored for the task
    flipped: int  # of those, frames whose predicted value differs
    predictions: list[Prediction]  # this version's predictions that flipped, with `previous_*` set


def prediction_flips(*, version: ModelVersion, against: ModelVersion, limit: int) -> Flips:
    """Frames whose predicted class differs between `against` (the earlier version, usually) and
    `version`, for their common task: the first `limit` by frame id, each of `version`'s
    predictions annotated with `previous_value` and `previous_confidence` from `against`. Frames only
    one of them scored are not compared. Three queries whatever the number of frames."""
    theirs = Prediction.objects.filter(
        model_version=against, task_id=version.task_id, frame=OuterRef("frame")
    )
    mine = Prediction.objects.filter(model_version=version, task_id=version.task_id)
    both = mine.filter(Exists(theirs))
    flipped = (
        both.annotate(
            previous_value=Subquery(theirs.values("predicted_value")[:1]),
            previous_confidence=Subquery(theirs.values("confidence")[:1]),
        )
        .exclude(predicted_value=F("previous_value"))
        .order_by("frame_id")
    )
    return Flips(
        compared=both.count(),
        flipped=flipped.count(),
        predictions=list(with_prediction_details(flipped)[:limit]),
    )
