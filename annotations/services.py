"""Writes of label schemas, annotations and adjudications.

Every write sets the acting user on the instance (`_history_user`) before it saves, so that the
audit history (django-simple-history) records who made each change, in the same transaction.
Errors are domain exceptions; the API turns them into 400 / 409 / 422 answers.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone

from annotations.models import Adjudication, Annotation, IdempotencyRecord, LabelChoice, LabelTask
from annotations.presets import HOTKEY_POOL, PRESETS
from annotations.selectors import annotations_for_adjudication
from inference.selectors import ai_visibility
from records.models import Frame, Project
from records.services import UNSET, _apply, _Unset


class SchemaError(Exception):
    """A label-schema write that would leave the schema invalid (answered with 400)."""

    def __init__(self, message: str | dict[str, Any]) -> None:
        super().__init__(message)
        self.detail = message


class InUseError(Exception):
    """A task or choice that annotations use cannot be deleted (answered with 409)."""


class AnnotationRefused(Exception):
    """An annotation the schema does not allow (answered with 400); `field` names the culprit."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name
        self.message = message


class AnnotationConflict(Exception):
    """The submit did not carry the current version; `current` is the server's state (or None)."""

    def __init__(self, message: str, current: Annotation | None) -> None:
        super().__init__(message)
        self.message = message
        self.current = current


class IdempotencyKeyReused(Exception):
    """An Idempotency-Key already used for a different request (answered with 422)."""


class AnnotationMissing(Exception):
    """The caller has no annotation there (answered with 404)."""


class AdjudicationRefused(AnnotationRefused):
    """An adjudication the schema or the frame's annotations do not allow (answered with 400)."""


class AdjudicationConflict(Exception):
    """The adjudication submit did not carry the current version; `current` is the server's state."""

    def __init__(self, message: str, current: Adjudication | None) -> None:
        super().__init__(message)
        self.message = message
        self.current = current


def _set_history_user(instance: models.Model, user: User | None, reason: str = "") -> None:
    instance._history_user = user  # type: ignore[attr-defined]
    if reason:
        instance._change_reason = reason  # type: ignore[attr-defined]


def _validated(instance: models.Model, exclude: list[str]) -> None:
    try:
        instance.full_clean(exclude=exclude, validate_unique=False, validate_constraints=False)
    except DjangoValidationError as exc:
        raise SchemaError(exc.message_dict) from exc


def _lock_project(project_id: int) -> None:
    """Serialises schema writes of one project, so that two hotkey checks cannot both pass."""
    Project.objects.select_for_update().filter(pk=project_id).first()


def _hotkey_clashes(project_id: int) -> dict[str, list[str]]:
    """Hotkeys used more than once among the active choices of the project's active tasks."""
    rows = LabelChoice.objects.filter(
        task__project_id=project_id, task__is_active=True, is_active=True
    ).exclude(hotkey="")
    owners: dict[str, list[str]] = {}
    for task_key, value, hotkey in rows.values_list("task__key", "value", "hotkey").order_by(
        "task__order", "order"
    ):
        owners.setdefault(hotkey, []).append(f"{task_key}.{value}")
    return {hotkey: names for hotkey, names in owners.items() if len(names) > 1}


def _refuse_hotkey_clashes(project_id: int) -> None:
    clashes = _hotkey_clashes(project_id)
    if clashes:
        described = "; ".join(
            f"'{key}' is used by {', '.join(names)}" for key, names in sorted(clashes.items())
        )
        raise SchemaError(
            {"hotkey": [f"Hotkeys must be unique among the project's active choices: {described}."]}
        )


# --- Tasks ----------------------------------------------------------------------------------------


@transaction.atomic
def label_task_create(
    *,
    project: Project,
    key: str,
    name: str,
    kind: str = LabelTask.Kind.NOMINAL,
    description: str = "",
    order: int = 0,
    is_active: bool = True,
    changed_by: User | None,
) -> LabelTask:
    _lock_project(project.pk)
    if LabelTask.objects.filter(project=project, key=key).exists():
        raise SchemaError({"key": [f"The project already has a task with key '{key}'."]})
    task = LabelTask(
        project=project,
        key=key,
        name=name,
        kind=kind,
        description=description,
        order=order,
        is_active=is_active,
    )
    _validated(task, exclude=["project"])
    _set_history_user(task, changed_by)
    task.save()
    return task


@transaction.atomic
def label_task_update(
    *,
    task: LabelTask,
    name: str | _Unset = UNSET,
    kind: str | _Unset = UNSET,
    description: str | _Unset = UNSET,
    order: int | _Unset = UNSET,
    is_active: bool | _Unset = UNSET,
    changed_by: User | None,
) -> LabelTask:
    """Edit a task; its key never changes. Re-activating it re-checks the project's hotkeys."""
    _lock_project(task.project_id)
    locked = LabelTask.objects.select_for_update().get(pk=task.pk)
    changed = _apply(
        locked,
        {"name": name, "kind": kind, "description": description, "order": order, "is_active": is_active},
    )
    if changed:
        _validated(locked, exclude=["project"])
        _set_history_user(locked, changed_by)
        locked.save(update_fields=[*changed, "updated_at"])
        _refuse_hotkey_clashes(locked.project_id)
    return locked


@transaction.atomic
def label_task_delete(*, task: LabelTask, changed_by: User | None) -> None:
    """Delete a task that nobody has used; one with annotations can only be deactivated."""
    _lock_project(task.project_id)
    locked = LabelTask.objects.select_for_update().get(pk=task.pk)
    used = Annotation.objects.filter(task=locked).count()
    if used:
        raise InUseError(
            f"Task '{locked.key}' has {used} annotation(s) and cannot be deleted; deactivate it instead "
            "(is_active=false keeps its annotations readable and refuses new ones)."
        )
    decided = Adjudication.objects.filter(task=locked).count()
    if decided:
        raise InUseError(
            f"Task '{locked.key}' has {decided} adjudication(s) and cannot be deleted; deactivate it instead "
            "(is_active=false keeps its adjudications readable and refuses new ones)."
        )
    for choice in locked.choices.all():
        _set_history_user(choice, changed_by)
        choice.delete()
    _set_history_user(locked, changed_by)
    locked.delete()


# --- Choices --------------------------------------------------------------------------------------


@transaction.atomic
def label_choice_create(
    *,
    task: LabelTask,
    value: str,
    label: str,
    order: int = 0,
    color: str = "#808080",
    hotkey: str = "",
    is_active: bool = True,
    changed_by: User | None,
) -> LabelChoice:
    _lock_project(task.project_id)
    if LabelChoice.objects.filter(task=task, value=value).exists():
        raise SchemaError({"value": [f"Task '{task.key}' already has a choice with value '{value}'."]})
    choice = LabelChoice(
        task=task,
        value=value,
        label=label,
        order=order,
        color=color,
        hotkey=hotkey.lower(),
        is_active=is_active,
    )
    _validated(choice, exclude=["task"])
    _set_history_user(choice, changed_by)
    choice.save()
    _refuse_hotkey_clashes(task.project_id)
    return choice


@transaction.atomic
def label_choice_update(
    *,
    choice: LabelChoice,
    label: str | _Unset = UNSET,
    order: int | _Unset = UNSET,
    color: str | _Unset = UNSET,
    hotkey: str | _Unset = UNSET,
    is_active: bool | _Unset = UNSET,
    changed_by: User | None,
) -> LabelChoice:
    """Edit a choice; its value never changes, because annotations store it."""
    project_id = LabelTask.objects.values_list("project_id", flat=True).get(pk=choice.task_id)
    _lock_project(project_id)
    locked = LabelChoice.objects.select_for_update().get(pk=choice.pk)
    if isinstance(hotkey, str):
        hotkey = hotkey.lower()
    changed = _apply(
        locked, {"label": label, "order": order, "color": color, "hotkey": hotkey, "is_active": is_active}
    )
    if changed:
        _validated(locked, exclude=["task"])
        _set_history_user(locked, changed_by)
        locked.save(update_fields=[*changed, "updated_at"])
        _refuse_hotkey_clashes(project_id)
    return locked


@transaction.atomic
def label_choice_delete(*, choice: LabelChoice, changed_by: User | None) -> None:
    """Delete a choice nobody has chosen; one with annotations can only be deactivated."""
    locked = LabelChoice.objects.select_for_update().select_related("task").get(pk=choice.pk)
    _lock_project(locked.task.project_id)
    used = Annotation.objects.filter(task_id=locked.task_id, value=locked.value).count()
    if used:
        raise InUseError(
            f"Choice '{locked.value}' of task '{locked.task.key}' is the value of {used} annotation(s) and "
            "cannot be deleted; deactivate it instead (is_active=false keeps those annotations readable "
            "and refuses new ones with this value)."
        )
    decided = Adjudication.objects.filter(task_id=locked.task_id, value=locked.value).count()
    if decided:
        raise InUseError(
            f"Choice '{locked.value}' of task '{locked.task.key}' is the value of {decided} adjudication(s) "
            "and cannot be deleted; deactivate it instead."
        )
    _set_history_user(locked, changed_by)
    locked.delete()


# --- Presets --------------------------------------------------------------------------------------


@dataclass
class PresetApplied:
    task: LabelTask
    # value -> (preset hotkey, hotkey given instead) for every choice moved off a taken key.
    reassigned: dict[str, tuple[str, str]] = field(default_factory=dict)


@transaction.atomic
def label_preset_apply(
    *, project: Project, preset_key: str, reassign_hotkeys: bool = True, changed_by: User | None
) -> PresetApplied:
    """Create the preset's task and choices in the project.

    A preset hotkey already taken by an active choice of the project moves to the first free key of
    HOTKEY_POOL (reported in `reassigned`), or, with reassign_hotkeys=False, the whole preset is
    refused with the clashes named. A task with the preset's key must not exist yet.
    """
    preset = PRESETS.get(preset_key)
    if preset is None:
        raise SchemaError(
            {"preset": [f"Unknown preset '{preset_key}'; known: {', '.join(sorted(PRESETS))}."]}
        )
    _lock_project(project.pk)
    if LabelTask.objects.filter(project=project, key=preset.key).exists():
        raise SchemaError({"preset": [f"The project already has a task '{preset.key}'."]})
    taken = set(
        LabelChoice.objects.filter(task__project=project, task__is_active=True, is_active=True)
        .exclude(hotkey="")
        .values_list("hotkey", flat=True)
    )
    clashes = [choice for choice in preset.choices if choice.hotkey in taken]
    if clashes and not reassign_hotkeys:
        described = ", ".join(f"'{choice.hotkey}' ({choice.value})" for choice in clashes)
        raise SchemaError(
            {"hotkey": [f"Preset '{preset.key}' needs hotkeys the project already uses: {described}."]}
        )
    taken |= {choice.hotkey for choice in preset.choices}
    order = (LabelTask.objects.filter(project=project).aggregate(models.Max("order"))["order__max"] or 0) + 1
    task = label_task_create(
        project=project,
        key=preset.key,
        name=preset.name,
        kind=preset.kind,
        description=preset.description,
        order=order,
        changed_by=changed_by,
    )
    applied = PresetApplied(task=task)
    for position, choice in enumerate(preset.choices):
        hotkey = choice.hotkey
        if choice in clashes:
            free = next((key for key in HOTKEY_POOL if key not in taken), "")
            taken.add(free)
            applied.reassigned[choice.value] = (choice.hotkey, free)
            hotkey = free
        label_choice_create(
            task=task,
            value=choice.value,
            label=choice.label,
            order=position,
            color=choice.color,
            hotkey=hotkey,
            changed_by=changed_by,
        )
    return applied


# --- Annotations ----------------------------------------------------------------------------------


@dataclass
class AnnotationSubmitted:
    """The outcome of a submit: the annotation as JSON-safe data, whether it was created, and whether
    this was an idempotent replay of an earlier submit (nothing written)."""

    annotation: dict[str, Any]
    created: bool
    replayed: bool = False


def _fingerprint(payload: dict[str, Any]) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


# IdempotencyRecord's own table; ON CONFLICT DO NOTHING RETURNING works on PostgreSQL and SQLite.
_IDEMPOTENCY_INSERT = (
    'INSERT INTO "annotations_idempotencyrecord" (user_id, "key", fingerprint, created_at) '
    "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING id"
)


_IDEMPOTENCY_OUTCOME = (
    'UPDATE "annotations_idempotencyrecord" SET status_code = %s, response = %s WHERE id = %s'
)


def _store_outcome(record: IdempotencyRecord, *, response: dict[str, Any], status_code: int) -> None:
    """record.save(update_fields=["response", "status_code"]) as one hand-written statement: the
    ORM's save costs 0.4 ms of Python on each submit, more than the update itself."""
    record.response, record.status_code = response, status_code
    stored = IdempotencyRecord._meta.get_field("response").get_db_prep_save(response, connection)
    with connection.cursor() as cursor:
        cursor.execute(_IDEMPOTENCY_OUTCOME, [status_code, stored, record.pk])


def _idempotency_record(*, user: User, key: str, payload: dict[str, Any]) -> IdempotencyRecord:
    """The locked IdempotencyRecord of (user, key), created for this payload if new. Its `response`
    is None until the submit that created it stores its outcome. Raises IdempotencyKeyReused when
    the key was used for another payload. Call inside the submit's transaction."""
    fingerprint = _fingerprint(payload)
    # Insert-or-wait: a concurrent submit with the same key blocks here until it commits, then
    # this one finds its stored outcome. A new key (the usual case) takes this one statement: the
    # row the INSERT returns is ours, new (no outcome yet) and locked by the insert until commit;
    # only a key seen before needs the locking read.
    created_at = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            _IDEMPOTENCY_INSERT,
            [user.pk, key, fingerprint, connection.ops.adapt_datetimefield_value(created_at)],
        )
        inserted = cursor.fetchone()
    if inserted is not None:
        record = IdempotencyRecord(
            pk=inserted[0], user=user, key=key, fingerprint=fingerprint, created_at=created_at
        )
        record._state.adding = False
        record._state.db = connection.alias
        return record
    record = IdempotencyRecord.objects.select_for_update().get(user=user, key=key)
    if record.fingerprint != fingerprint:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was already used for a different submit; use a new key for a new one."
        )
    return record


@transaction.atomic
def annotation_submit(
    *,
    frame: Frame,
    task: LabelTask,
    annotator: User,
    value: str,
    confidence: int,
    time_on_frame_ms: int | None = None,
    ai_shown: bool = False,
    cam_visible_ms: int = 0,
    version: int | None = None,
    idempotency_key: str | None = None,
    choice: LabelChoice | None = None,
) -> AnnotationSubmitted:
    """Create the annotator's annotation of `frame` for `task` (no `version`), or update it when
    `version` is the current one. Anything else raises AnnotationConflict with the server's state
    and writes nothing.

    With an `idempotency_key`, the first submit stores its outcome under (annotator, key); a retry
    with the same payload returns that outcome without writing, one with another payload raises
    IdempotencyKeyReused. A submit that fails stores nothing, so its retry is judged afresh.

    `ai_shown` and `cam_visible_ms` record the annotator's exposure to model output before this
    answer. The server does not take the page's word for blinding: exposure to output that
    `inference.selectors.ai_visibility` hides from the annotator in this project is refused
    (AnnotationRefused), as is CAM time without `ai_shown`.

    `choice`: the task's choice of `value` where the caller has already read it (the API reads it
    with the task, in one query); otherwise it is read here.
    """
    record: IdempotencyRecord | None = None
    if idempotency_key is not None:
        record = _idempotency_record(
            user=annotator,
            key=idempotency_key,
            payload={
                "frame": frame.pk,
                "task": task.pk,
                "value": value,
                "confidence": confidence,
                "time_on_frame_ms": time_on_frame_ms,
                "ai_shown": ai_shown,
                "cam_visible_ms": cam_visible_ms,
                "version": version,
            },
        )
        if record.response is not None:
            return AnnotationSubmitted(
                annotation=record.response, created=record.status_code == 201, replayed=True
            )

    annotation, created = _annotation_write(
        frame=frame,
        task=task,
        annotator=annotator,
        value=value,
        confidence=confidence,
        time_on_frame_ms=time_on_frame_ms,
        ai_shown=ai_shown,
        cam_visible_ms=cam_visible_ms,
        version=version,
        choice=choice,
    )
    outcome = AnnotationSubmitted(annotation=annotation.snapshot(), created=created)
    if record is not None:
        _store_outcome(record, response=outcome.annotation, status_code=201 if created else 200)
    return outcome


def _annotation_write(
    *,
    frame: Frame,
    task: LabelTask,
    annotator: User,
    value: str,
    confidence: int,
    time_on_frame_ms: int | None,
    ai_shown: bool,
    cam_visible_ms: int,
    version: int | None,
    choice: LabelChoice | None = None,
) -> tuple[Annotation, bool]:
    if frame.examination.patient.project_id != task.project_id:
        raise AnnotationRefused("task", "This task belongs to another project than the frame.")
    _check_ai_exposure(annotator=annotator, task=task, ai_shown=ai_shown, cam_visible_ms=cam_visible_ms)
    if not task.is_active:
        raise AnnotationRefused(
            "task", f"Task '{task.key}' is inactive and accepts no new or changed annotations."
        )
    if not 1 <= confidence <= 5:
        raise AnnotationRefused("confidence", "Confidence is an integer from 1 (guess) to 5 (certain).")
    if choice is None or choice.task_id != task.pk or choice.value != value:
        choice = LabelChoice.objects.filter(task=task, value=value).first()
    if choice is None:
        valid = ", ".join(task.choices.filter(is_active=True).values_list("value", flat=True))
        raise AnnotationRefused(
            "value", f"'{value}' is not a choice of task '{task.key}' (choices: {valid})."
        )

    lookup = {"frame": frame, "task": task, "annotator": annotator}
    if version is None and choice.is_active:
        # A first submit (the usual case): one INSERT ... ON CONFLICT DO NOTHING instead of a locking
        # read, a savepoint, the insert and its release. Where the annotation already exists (made
        # earlier, or by a concurrent submit that committed first: the insert waits for it), nothing
        # is inserted and the locking read below finds it, and the submit conflicts as before.
        annotation = Annotation(
            **lookup,
            value=value,
            confidence=confidence,
            time_on_frame_ms=time_on_frame_ms,
            ai_shown=ai_shown,
            cam_visible_ms=cam_visible_ms,
            context=Annotation.Context.FREE,
            version=1,
        )
        _set_history_user(annotation, annotator)
        if _insert_unless_exists(annotation):
            return annotation, True
    current = Annotation.objects.select_for_update().filter(**lookup).first()
    if current is None:
        if version is not None:
            raise AnnotationConflict(
                f"There is no annotation at version {version}; submit without a version to create it.", None
            )
        if not choice.is_active:
            raise AnnotationRefused("value", f"Choice '{value}' is inactive and cannot be chosen any more.")
        # The annotation that blocked the insert was deleted (undone) before our read.
        raise AnnotationConflict(
            "This annotation was just changed by another request; review it and resubmit.", None
        )

    if version != current.version:
        expected = "no version" if version is None else f"version {version}"
        raise AnnotationConflict(
            f"The annotation is at version {current.version}, but this submit carried {expected}: it was "
            "changed elsewhere. Nothing was overwritten; review the current state and resubmit.",
            current,
        )
    if value != current.value and not choice.is_active:
        raise AnnotationRefused("value", f"Choice '{value}' is inactive and cannot be chosen any more.")
    changed = _apply(
        current,
        {
            "value": value,
            "confidence": confidence,
            "time_on_frame_ms": time_on_frame_ms,
            "ai_shown": ai_shown,
            "cam_visible_ms": cam_visible_ms,
        },
    )
    if changed:
        current.version += 1
        _set_history_user(current, annotator)
        current.save(update_fields=[*changed, "version", "updated_at"])
    return current, False


# A new annotation's row: every column but the serial id (tests/annotations/test_submit_queries.py
# checks that this list is the model's), and nothing where the (frame, task, annotator) row exists.
_ANNOTATION_FIELDS = (
    "frame",
    "task",
    "annotator",
    "value",
    "confidence",
    "time_on_frame_ms",
    "ai_shown",
    "cam_visible_ms",
    "context",
    "version",
    "created_at",
    "updated_at",
)
_ANNOTATION_INSERT = (
    'INSERT INTO "annotations_annotation" (frame_id, task_id, annotator_id, value, confidence, '
    "time_on_frame_ms, ai_shown, cam_visible_ms, context, version, created_at, updated_at) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (frame_id, task_id, annotator_id) DO NOTHING RETURNING id"
)


def _insert_unless_exists(annotation: Annotation) -> bool:
    """Insert a new annotation unless its (frame, task, annotator) row exists; True if inserted.

    What Model.save() does for a new row, with ON CONFLICT DO NOTHING on the unique constraint
    (PostgreSQL and SQLite): the auto_now fields are filled in, the row is inserted, and the save
    signals are sent as save() sends them, so that the audit history (django-simple-history's
    post_save receiver) records the creation with its user, in the same transaction."""
    models.signals.pre_save.send(
        sender=Annotation, instance=annotation, raw=False, using=connection.alias, update_fields=None
    )
    fields = {field.name: field for field in Annotation._meta.concrete_fields}
    values = [
        fields[name].get_db_prep_save(fields[name].pre_save(annotation, True), connection)
        for name in _ANNOTATION_FIELDS
    ]
    with connection.cursor() as cursor:
        cursor.execute(_ANNOTATION_INSERT, values)
        inserted = cursor.fetchone()
    if inserted is None:
        return False
    annotation.pk = inserted[0]
    annotation._state.adding = False
    annotation._state.db = connection.alias
    models.signals.post_save.send(
        sender=Annotation,
        instance=annotation,
        created=True,
        update_fields=None,
        raw=False,
        using=connection.alias,
    )
    return True


AI_HIDDEN_MESSAGE = "Model output is hidden from you in this project; an answer cannot claim it was shown."


def _check_ai_exposure(*, annotator: User, task: LabelTask, ai_shown: bool, cam_visible_ms: int) -> None:
    """Exposure the annotator could not have had is refused: CAM time without the prediction shown,
    or any model output where the project hides it from them (a blinded reader's page must not be
    able to record AI exposure, whatever it sends)."""
    if cam_visible_ms < 0:
        raise AnnotationRefused("cam_visible_ms", "CAM time is a number of milliseconds, 0 or more.")
    if cam_visible_ms > 0 and not ai_shown:
        raise AnnotationRefused(
            "cam_visible_ms", "CAM time above 0 requires ai_shown: a CAM is model output."
        )
    if not ai_shown:
        return
    visibility = ai_visibility(annotator, task.project)
    if not visibility.prediction:
        raise AnnotationRefused("ai_shown", AI_HIDDEN_MESSAGE)
    if cam_visible_ms > 0 and not visibility.cam:
        raise AnnotationRefused(
            "cam_visible_ms",
            "CAMs are hidden from you in this project; an answer cannot claim one was shown.",
        )


@transaction.atomic
def annotation_delete(*, frame: Frame, task: LabelTask, annotator: User, version: int) -> None:
    """Delete the annotator's own annotation of `frame` for `task` (the browser's undo) when `version`
    is the current one; a stale version raises AnnotationConflict with the server's state and deletes
    nothing. The deletion stays in the audit history (history_type "-", by the annotator).

    Raises AnnotationMissing when there is no such annotation. An inactive task refuses deletions as
    it refuses every write, and reader-study readings are not deleted here.
    """
    current = (
        Annotation.objects.select_for_update().filter(frame=frame, task=task, annotator=annotator).first()
    )
    if current is None:
        raise AnnotationMissing("You have not annotated this frame for this task.")
    if not task.is_active:
        raise AnnotationRefused(
            "task", f"Task '{task.key}' is inactive: its annotations can no longer change."
        )
    if current.context != Annotation.Context.FREE:
        raise AnnotationRefused("context", "A reader-study reading cannot be deleted here.")
    if version != current.version:
        raise AnnotationConflict(
            f"The annotation is at version {current.version}, but this delete carried version {version}: "
            "it was changed elsewhere. Nothing was deleted; review the current state and retry.",
            current,
        )
    _set_history_user(current, annotator)
    current.delete()


# --- Adjudications --------------------------------------------------------------------------------


@dataclass
class AdjudicationSubmitted:
    """The outcome of an adjudication submit, as AnnotationSubmitted."""

    adjudication: dict[str, Any]
    created: bool
    replayed: bool = False


@transaction.atomic
def adjudication_submit(
    *,
    frame: Frame,
    task: LabelTask,
    adjudicator: User,
    value: str,
    rationale: str = "",
    version: int | None = None,
    idempotency_key: str | None = None,
) -> AdjudicationSubmitted:
    """Decide `task` for `frame` (no `version`: create) or change the decision (`version` is the
    current one); anything else raises AdjudicationConflict with the server's state and writes
    nothing. The semantics follow annotation_submit, idempotency keys included (the keys are the
    caller's, shared with their annotation submits).

    `based_on` is filled here with the frame's free-labelling annotations of the task as they are
    now. A frame without disagreement may be adjudicated (a reviewer confirms a label); one without
    any free-labelling annotation of the task is refused. A new value must be an active choice of
    the (active) task; a decision already holding a since-deactivated value may keep it.
    """
    record: IdempotencyRecord | None = None
    if idempotency_key is not None:
        record = _idempotency_record(
            user=adjudicator,
            key=idempotency_key,
            payload={
                "kind": "adjudication",
                "frame": frame.pk,
                "task": task.pk,
                "value": value,
                "rationale": rationale,
                "version": version,
            },
        )
        if record.response is not None:
            return AdjudicationSubmitted(
                adjudication=record.response, created=record.status_code == 201, replayed=True
            )

    adjudication, created = _adjudication_write(
        frame=frame, task=task, adjudicator=adjudicator, value=value, rationale=rationale, version=version
    )
    outcome = AdjudicationSubmitted(adjudication=adjudication.snapshot(), created=created)
    if record is not None:
        _store_outcome(record, response=outcome.adjudication, status_code=201 if created else 200)
    return outcome


def _adjudication_write(
    *, frame: Frame, task: LabelTask, adjudicator: User, value: str, rationale: str, version: int | None
) -> tuple[Adjudication, bool]:
    if frame.examination.patient.project_id != task.project_id:
        raise AdjudicationRefused("task", "This task belongs to another project than the frame.")
    if not task.is_active:
        raise AdjudicationRefused(
            "task", f"Task '{task.key}' is inactive and accepts no new or changed adjudications."
        )
    choice = LabelChoice.objects.filter(task=task, value=value).first()
    if choice is None:
        valid = ", ".join(task.choices.filter(is_active=True).values_list("value", flat=True))
        raise AdjudicationRefused(
            "value", f"'{value}' is not a choice of task '{task.key}' (choices: {valid})."
        )
    based_on = [
        {
            "annotation_id": annotation.pk,
            "annotator_id": annotation.annotator_id,
            "value": annotation.value,
            "confidence": annotation.confidence,
            "version": annotation.version,
        }
        for annotation in annotations_for_adjudication(frame=frame, task=task)
    ]
    if not based_on:
        raise AdjudicationRefused(
            "frame",
            f"Frame {frame.pk} has no annotation for task '{task.key}': there is nothing to adjudicate.",
        )

    current = (
        Adjudication.objects.select_for_update()
        .select_related("adjudicated_by")
        .filter(frame=frame, task=task)
        .first()
    )
    if current is None:
        if version is not None:
            raise AdjudicationConflict(
                f"There is no adjudication at version {version}; submit without a version to create it.",
                None,
            )
        if not choice.is_active:
            raise AdjudicationRefused("value", f"Choice '{value}' is inactive and cannot be chosen any more.")
        adjudication = Adjudication(
            frame=frame,
            task=task,
            value=value,
            rationale=rationale,
            adjudicated_by=adjudicator,
            based_on=based_on,
            version=1,
        )
        _set_history_user(adjudication, adjudicator)
        try:
            with transaction.atomic():
                adjudication.save()
        except IntegrityError:
            # Another submit created it between our look-up and our insert: that one won.
            current = (
                Adjudication.objects.select_for_update()
                .select_related("adjudicated_by")
                .get(frame=frame, task=task)
            )
            raise AdjudicationConflict(
                "This frame was just adjudicated by another submit; review it, resubmit with its version.",
                current,
            ) from None
        return adjudication, True

    if version != current.version:
        expected = "no version" if version is None else f"version {version}"
        raise AdjudicationConflict(
            f"The adjudication is at version {current.version}, but this submit carried {expected}: it "
            "was changed elsewhere. Nothing was overwritten; review the current state and resubmit.",
            current,
        )
    if value != current.value and not choice.is_active:
        raise AdjudicationRefused("value", f"Choice '{value}' is inactive and cannot be chosen any more.")
    changed = _apply(
        current,
        {
            "value": value,
            "rationale": rationale,
            "based_on": based_on,
            "adjudicated_by_id": adjudicator.pk,
        },
    )
    current.adjudicated_by = adjudicator
    if changed:
        current.version += 1
        _set_history_user(current, adjudicator)
        current.save(update_fields=[*changed, "version", "updated_at"])
    return current, False


def idempotency_records_purge(*, now: datetime.datetime | None = None) -> int:
    """Forget Idempotency-Keys older than CLEAR_IDEMPOTENCY_KEY_TTL_HOURS; returns how many.

    A retry that arrives after its key was forgotten is an ordinary submit again, and still cannot
    duplicate or overwrite anything: a repeated create finds the annotation there and a repeated
    update carries a version that is no longer current, so both answer 409.
    """
    hours: int = settings.CLEAR_IDEMPOTENCY_KEY_TTL_HOURS
    cutoff = (now or timezone.now()) - datetime.timedelta(hours=hours)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted
