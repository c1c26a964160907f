"""Reads of the inference app, always scoped to the caller's projects."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Exists, F, OuterRef, QuerySet, Subquery

from inference.models import ModelVersion, Prediction
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
    nothing. Reader studies will decide per arm instead (studies app)."""
    role = role_in_project(user, project)
    if role is None:
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


def frame_active_predictions(frame: Frame) -> QuerySet[Prediction]:
    """The frame's predictions made by the active model version of each task (one per task)."""
    return (
        Prediction.objects.filter(frame=frame, model_version__status=ModelVersion.Status.ACTIVE)
        .select_related("model_version", "task")
        .order_by("task__order", "task_id")
    )


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
        predictions=list(flipped.select_related("model_version", "task")[:limit]),
    )
