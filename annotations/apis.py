"""REST API of label schemas, annotations, the review of disagreements and adjudications: thin views
over annotations.selectors and services.

As everywhere in CLEAR, another project's object is a 404 (querysets come from `*_visible_to`), a
member without the role for a write gets 403. Schema writes are for coordinators and project admins;
reviewing and adjudicating for reviewers, coordinators and project admins (the adjudicators).
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, NotFound, PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotations.models import Adjudication, Annotation, LabelChoice, LabelTask
from annotations.presets import PRESETS
from annotations.selectors import (
    ADJUDICATOR_ROLES,
    ANNOTATION_OVERSEER_ROLES,
    QUEUE_DEFAULT_LIMIT,
    QUEUE_MAX_LIMIT,
    SCHEMA_EDITOR_ROLES,
    InvalidQueueCursor,
    NoActiveModel,
    QueueKey,
    QueueOrder,
    ReviewStatus,
    adjudication_history,
    adjudication_of,
    adjudications_visible_to,
    annotation_history,
    annotation_of,
    annotations_visible_to,
    label_choices_visible_to,
    label_tasks_visible_to,
    queue_task_and_counts,
    queue_task_of,
    review_queue,
    submit_targets,
    work_queue,
)
from annotations.services import (
    AdjudicationConflict,
    AnnotationConflict,
    AnnotationMissing,
    AnnotationRefused,
    IdempotencyKeyReused,
    InUseError,
    SchemaError,
    adjudication_submit,
    annotation_delete,
    annotation_submit,
    label_choice_create,
    label_choice_delete,
    label_choice_update,
    label_preset_apply,
    label_task_create,
    label_task_delete,
    label_task_update,
)
from config.schema import PATH_ID
from records.apis import FrameOutputSerializer, require_role
from records.filters import IdFilter
from records.models import Frame
from records.selectors import frames_visible_to, projects_visible_to


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class Unprocessable(APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_code = "unprocessable"


class PreconditionRequired(APIException):
    status_code = status.HTTP_428_PRECONDITION_REQUIRED
    default_code = "precondition_required"


def _schema_error(exc: SchemaError) -> ValidationError:
    return ValidationError(exc.detail)


# --- Label schemas --------------------------------------------------------------------------------


class LabelChoiceOutputSerializer(serializers.ModelSerializer[LabelChoice]):
    class Meta:
        model = LabelChoice
        fields = [
            "id",
            "task",
            "value",
            "label",
            "order",
            "color",
            "hotkey",
            "is_active",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class LabelTaskOutputSerializer(serializers.ModelSerializer[LabelTask]):
    choices = LabelChoiceOutputSerializer(many=True, read_only=True)

    class Meta:
        model = LabelTask
        fields = [
            "id",
            "project",
            "key",
            "name",
            "description",
            "kind",
            "order",
            "is_active",
            "choices",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class LabelTaskCreateInputSerializer(serializers.Serializer[LabelTask]):
    project = serializers.IntegerField()
    key = serializers.SlugField(max_length=50)
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    kind = serializers.ChoiceField(choices=LabelTask.Kind.choices, default=LabelTask.Kind.NOMINAL)
    order = serializers.IntegerField(min_value=0, default=0)
    is_active = serializers.BooleanField(default=True)


class LabelTaskUpdateInputSerializer(serializers.Serializer[LabelTask]):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    kind = serializers.ChoiceField(choices=LabelTask.Kind.choices, required=False)
    order = serializers.IntegerField(min_value=0, required=False)
    is_active = serializers.BooleanField(required=False)


HOTKEY_FIELD: dict[str, Any] = {
    "max_length": 1,
    "allow_blank": True,
    "help_text": "One letter or digit (stored lower-case); blank for none.",
}


class LabelChoiceCreateInputSerializer(serializers.Serializer[LabelChoice]):
    task = serializers.IntegerField()
    value = serializers.SlugField(max_length=50)
    label = serializers.CharField(max_length=200)  # type: ignore[assignment]
    order = serializers.IntegerField(min_value=0, default=0)
    color = serializers.RegexField(r"^#[0-9a-fA-F]{6}$", default="#808080")
    hotkey = serializers.CharField(default="", **HOTKEY_FIELD)
    is_active = serializers.BooleanField(default=True)


class LabelChoiceUpdateInputSerializer(serializers.Serializer[LabelChoice]):
    label = serializers.CharField(max_length=200, required=False)  # type: ignore[assignment]
    order = serializers.IntegerField(min_value=0, required=False)
    color = serializers.RegexField(r"^#[0-9a-fA-F]{6}$", required=False)
    hotkey = serializers.CharField(required=False, **HOTKEY_FIELD)
    is_active = serializers.BooleanField(required=False)


class LabelTaskFilter(filters.FilterSet):
    project = IdFilter(field_name="project_id")
    is_active = filters.BooleanFilter()

    class Meta:
        model = LabelTask
        fields = ["project", "is_active"]


class LabelChoiceFilter(filters.FilterSet):
    task = IdFilter(field_name="task_id")
    project = IdFilter(field_name="task__project_id")

    class Meta:
        model = LabelChoice
        fields = ["task", "project"]


_PROJECT_NOT_VISIBLE = OpenApiResponse(description="No such project among the caller's projects.")
_IN_USE = OpenApiResponse(description="Annotations use it: deactivate it instead (is_active=false).")


@extend_schema_view(
    list=extend_schema(description="Label tasks of the caller's projects, with their choices."),
    retrieve=extend_schema(description="One label task with its choices."),
)
class LabelTaskViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet[LabelTask],
):
    serializer_class = LabelTaskOutputSerializer
    filterset_class = LabelTaskFilter

    def get_queryset(self) -> QuerySet[LabelTask]:
        return label_tasks_visible_to(self.request.user).prefetch_related("choices")

    @extend_schema(
        request=LabelTaskCreateInputSerializer,
        responses={201: LabelTaskOutputSerializer, 404: _PROJECT_NOT_VISIBLE},
        description="Add a label task to a project (coordinators and project admins).",
    )
    def create(self, request: Request) -> Response:
        serializer = LabelTaskCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        project = get_object_or_404(projects_visible_to(request.user), pk=data.pop("project"))
        require_role(request.user, project, SCHEMA_EDITOR_ROLES, "edit label tasks")
        try:
            task = label_task_create(project=project, changed_by=request.user, **data)  # type: ignore[arg-type]
        except SchemaError as exc:
            raise _schema_error(exc) from exc
        return Response(LabelTaskOutputSerializer(task).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=LabelTaskUpdateInputSerializer,
        responses={200: LabelTaskOutputSerializer},
        description=(
            "Rename, reorder, (de)activate a task (coordinators and project admins). A deactivated task "
            "keeps its annotations readable and accepts no new or changed ones; its key never changes."
        ),
    )
    def partial_update(self, request: Request, pk: str) -> Response:
        task = self.get_object()
        require_role(request.user, task.project, SCHEMA_EDITOR_ROLES, "edit label tasks")
        serializer = LabelTaskUpdateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            task = label_task_update(task=task, changed_by=request.user, **serializer.validated_data)  # type: ignore[arg-type]
        except SchemaError as exc:
            raise _schema_error(exc) from exc
        return Response(LabelTaskOutputSerializer(self.get_queryset().get(pk=task.pk)).data)

    @extend_schema(
        responses={204: None, 409: _IN_USE},
        description="Delete a task nobody has annotated (coordinators and project admins); else 409.",
    )
    def destroy(self, request: Request, pk: str) -> Response:
        task = self.get_object()
        require_role(request.user, task.project, SCHEMA_EDITOR_ROLES, "delete label tasks")
        try:
            label_task_delete(task=task, changed_by=request.user)  # type: ignore[arg-type]
        except InUseError as exc:
            raise Conflict(str(exc)) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    list=extend_schema(description="Choices of the label tasks of the caller's projects."),
    retrieve=extend_schema(description="One choice of a label task."),
)
class LabelChoiceViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet[LabelChoice],
):
    serializer_class = LabelChoiceOutputSerializer
    filterset_class = LabelChoiceFilter

    def get_queryset(self) -> QuerySet[LabelChoice]:
        return label_choices_visible_to(self.request.user).select_related("task__project")

    @extend_schema(
        request=LabelChoiceCreateInputSerializer,
        responses={
            201: LabelChoiceOutputSerializer,
            404: OpenApiResponse(description="No such task in the caller's projects."),
        },
        description="Add a choice to a task (coordinators and project admins); hotkeys must stay unique.",
    )
    def create(self, request: Request) -> Response:
        serializer = LabelChoiceCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        task = get_object_or_404(
            label_tasks_visible_to(request.user).select_related("project"), pk=data.pop("task")
        )
        require_role(request.user, task.project, SCHEMA_EDITOR_ROLES, "edit label choices")
        try:
            choice = label_choice_create(task=task, changed_by=request.user, **data)  # type: ignore[arg-type]
        except SchemaError as exc:
            raise _schema_error(exc) from exc
        return Response(LabelChoiceOutputSerializer(choice).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=LabelChoiceUpdateInputSerializer,
        responses={200: LabelChoiceOutputSerializer},
        description=(
            "Relabel, recolour, reorder, change the hotkey of or (de)activate a choice (coordinators and "
            "project admins). Its value never changes. A deactivated choice keeps existing annotations "
            "valid and readable and refuses new ones."
        ),
    )
    def partial_update(self, request: Request, pk: str) -> Response:
        choice = self.get_object()
        require_role(request.user, choice.task.project, SCHEMA_EDITOR_ROLES, "edit label choices")
        serializer = LabelChoiceUpdateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            choice = label_choice_update(choice=choice, changed_by=request.user, **serializer.validated_data)  # type: ignore[arg-type]
        except SchemaError as exc:
            raise _schema_error(exc) from exc
        return Response(LabelChoiceOutputSerializer(choice).data)

    @extend_schema(
        responses={204: None, 409: _IN_USE},
        description="Delete a choice no annotation uses (coordinators and project admins); else 409.",
    )
    def destroy(self, request: Request, pk: str) -> Response:
        choice = self.get_object()
        require_role(request.user, choice.task.project, SCHEMA_EDITOR_ROLES, "delete label choices")
        try:
            label_choice_delete(choice=choice, changed_by=request.user)  # type: ignore[arg-type]
        except InUseError as exc:
            raise Conflict(str(exc)) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Presets --------------------------------------------------------------------------------------


class ChoicePresetSerializer(serializers.Serializer[Any]):
    value = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]
    color = serializers.CharField()
    hotkey = serializers.CharField()


class TaskPresetSerializer(serializers.Serializer[Any]):
    key = serializers.CharField()
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=LabelTask.Kind.choices)
    description = serializers.CharField()
    choices = ChoicePresetSerializer(many=True)


class PresetApplyInputSerializer(serializers.Serializer[Any]):
    project = serializers.IntegerField()
    preset = serializers.ChoiceField(choices=sorted(PRESETS))
    reassign_hotkeys = serializers.BooleanField(
        default=True,
        help_text="Move a preset hotkey the project already uses to a free key (true), or refuse (false).",
    )


class HotkeyReassignmentSerializer(serializers.Serializer[Any]):
    value = serializers.CharField()
    preset_hotkey = serializers.CharField()
    hotkey = serializers.CharField()


class PresetApplyOutputSerializer(serializers.Serializer[Any]):
    task = LabelTaskOutputSerializer()
    reassigned = HotkeyReassignmentSerializer(many=True)


class LabelPresetListApi(APIView):
    @extend_schema(
        operation_id="label_presets_list",
        responses={200: TaskPresetSerializer(many=True)},
        description="The built-in label-task presets of the seed studies.",
        tags=["label-presets"],
    )
    def get(self, request: Request) -> Response:
        return Response(TaskPresetSerializer(list(PRESETS.values()), many=True).data)


class LabelPresetApplyApi(APIView):
    @extend_schema(
        operation_id="label_presets_apply",
        request=PresetApplyInputSerializer,
        responses={201: PresetApplyOutputSerializer, 404: _PROJECT_NOT_VISIBLE},
        description=(
            "Create a preset's task and choices in a project (coordinators and project admins). A hotkey "
            "the project already uses is moved to a free key and reported in `reassigned`, or, with "
            "reassign_hotkeys=false, the preset is refused (400) naming the clashes."
        ),
        tags=["label-presets"],
    )
    def post(self, request: Request) -> Response:
        serializer = PresetApplyInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        project = get_object_or_404(projects_visible_to(request.user), pk=data["project"])
        require_role(request.user, project, SCHEMA_EDITOR_ROLES, "apply label presets")
        try:
            applied = label_preset_apply(
                project=project,
                preset_key=data["preset"],
                reassign_hotkeys=data["reassign_hotkeys"],
                changed_by=request.user,  # type: ignore[arg-type]
            )
        except SchemaError as exc:
            raise _schema_error(exc) from exc
        task = label_tasks_visible_to(request.user).prefetch_related("choices").get(pk=applied.task.pk)
        output = {
            "task": task,
            "reassigned": [
                {"value": value, "preset_hotkey": old, "hotkey": new}
                for value, (old, new) in applied.reassigned.items()
            ],
        }
        return Response(PresetApplyOutputSerializer(output).data, status=status.HTTP_201_CREATED)


# --- Annotations ----------------------------------------------------------------------------------


class AnnotationOutputSerializer(serializers.Serializer[Any]):
    """Works on an Annotation and on its snapshot() (an idempotent replay answers the stored one)."""

    id = serializers.IntegerField(read_only=True)
    frame = serializers.IntegerField(source="frame_id", read_only=True)
    task = serializers.IntegerField(source="task_id", read_only=True)
    annotator = serializers.IntegerField(source="annotator_id", read_only=True)
    value = serializers.CharField(read_only=True)
    confidence = serializers.IntegerField(
        read_only=True, help_text=Annotation._meta.get_field("confidence").help_text
    )
    time_on_frame_ms = serializers.IntegerField(read_only=True, allow_null=True)
    ai_shown = serializers.BooleanField(read_only=True)
    # default: an idempotent replay of an answer stored before the field existed has no such key.
    cam_visible_ms = serializers.IntegerField(
        read_only=True, default=0, help_text=Annotation._meta.get_field("cam_visible_ms").help_text
    )
    context = serializers.ChoiceField(choices=Annotation.Context.choices, read_only=True)  # type: ignore[assignment]
    version = serializers.IntegerField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)


class AnnotationSubmitInputSerializer(serializers.Serializer[Any]):
    value = serializers.SlugField(max_length=50, help_text="The value of one of the task's active choices.")
    confidence = serializers.IntegerField(
        min_value=1, max_value=5, help_text=Annotation._meta.get_field("confidence").help_text
    )
    time_on_frame_ms = serializers.IntegerField(
        min_value=0, max_value=86_400_000, required=False, allow_null=True
    )
    ai_shown = serializers.BooleanField(
        default=False,
        help_text=(
            "Whether the model's prediction (or CAM) was shown with this frame before this answer; "
            "refused (400) where model output is hidden from the caller in this project."
        ),
    )
    cam_visible_ms = serializers.IntegerField(
        min_value=0,
        max_value=86_400_000,
        default=0,
        help_text=(
            "Milliseconds the CAM overlay was visible (tab visible, opacity above 0) for this frame "
            "before this answer; 0 = never. Above 0 requires ai_shown, and is refused (400) where CAMs "
            "are hidden from the caller."
        ),
    )
    version = serializers.IntegerField(
        min_value=1,
        required=False,
        allow_null=True,
        help_text="The version being replaced (or send If-Match); leave out to create the annotation.",
    )


class AnnotationConflictSerializer(serializers.Serializer[Any]):
    detail = serializers.CharField()
    current = AnnotationOutputSerializer(allow_null=True, help_text="The server's state; null if none.")


def _etag(version: int) -> str:
    return f'"{version}"'


def _if_match_version(request: Request) -> int | None:
    raw = request.headers.get("If-Match", "").strip()
    if not raw:
        return None
    try:
        return int(raw.removeprefix("W/").strip('"'))
    except ValueError:
        raise ValidationError(
            {"If-Match": ['If-Match carries the annotation\'s version as an ETag, e.g. "3".']}
        ) from None


def _submit_version_and_key(request: Request, data: dict[str, Any]) -> tuple[int | None, str | None]:
    """The version a versioned submit replaces (`version` popped from the body, or If-Match; both
    must agree) and its Idempotency-Key, both checked; shared by annotations and adjudications."""
    version = data.pop("version", None)
    header_version = _if_match_version(request)
    if version is not None and header_version is not None and version != header_version:
        raise ValidationError({"version": ["The body's version and If-Match disagree."]})
    key = request.headers.get("Idempotency-Key") or None
    if key is not None and len(key) > 255:
        raise ValidationError({"Idempotency-Key": ["At most 255 characters."]})
    return (version if version is not None else header_version), key


def _conflict_response(message: str, current: Any, output: type[serializers.Serializer[Any]]) -> Response:
    """409 with the server's current state (and its version as the ETag); nothing was written."""
    body = {"detail": message, "current": output(current).data if current is not None else None}
    headers = {"ETag": _etag(current.version)} if current is not None else {}
    return Response(body, status=status.HTTP_409_CONFLICT, headers=headers)


def _submitted_response(
    state: dict[str, Any], *, created: bool, replayed: bool, output: type[serializers.Serializer[Any]]
) -> Response:
    headers = {"ETag": _etag(state["version"])}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return Response(output(state).data, status=code, headers=headers)


_FRAME_TASK = [
    OpenApiParameter("frame_id", PATH_ID, OpenApiParameter.PATH),
    OpenApiParameter("task_id", PATH_ID, OpenApiParameter.PATH),
]


class AnnotationApi(APIView):
    """The caller's own annotation of one frame for one task."""

    def _frame_and_task(self, request: Request, frame_id: int, task_id: int) -> tuple[Any, LabelTask]:
        frame = get_object_or_404(
            frames_visible_to(request.user).select_related("examination__patient"), pk=frame_id
        )
        task = get_object_or_404(
            label_tasks_visible_to(request.user).filter(project_id=frame.examination.patient.project_id),
            pk=task_id,
        )
        return frame, task

    def _frame_task_and_choice(
        self, request: Request, frame_id: int, task_id: int
    ) -> tuple[Any, LabelTask, LabelChoice | None]:
        """The submit's look-ups in one query (submit_targets): the frame (visible to the caller),
        the task of the frame's project and its choice of the submitted value. An unknown frame or
        task is a 404 whatever the body; a body that cannot be parsed is answered after that."""
        unparsed: APIException | None = None
        try:
            value = request.data.get("value") if isinstance(request.data, dict) else None
        except APIException as exc:  # a malformed body (400) or another media type (415)
            value, unparsed = None, exc
        targets = submit_targets(
            user=request.user,
            frame_id=frame_id,
            task_id=task_id,
            value=value if isinstance(value, str) else None,
        )
        if targets is None:
            raise Http404("No Frame matches the given query.")
        if targets.task is None:
            raise Http404("No LabelTask matches the given query.")
        if unparsed is not None:
            raise unparsed
        return targets.frame, targets.task, targets.choice

    @extend_schema(
        operation_id="frame_annotation_retrieve",
        parameters=_FRAME_TASK,
        responses={
            200: AnnotationOutputSerializer,
            404: OpenApiResponse(
                description="No such frame or task in the caller's projects, or no annotation yet."
            ),
        },
        description="The caller's annotation of this frame for this task; ETag carries its version.",
        tags=["annotations"],
    )
    def get(self, request: Request, frame_id: int, task_id: int) -> Response:
        frame, task = self._frame_and_task(request, frame_id, task_id)
        annotation = annotation_of(frame=frame, task=task, annotator=request.user)
        if annotation is None:
            raise NotFound("You have not annotated this frame for this task yet.")
        return Response(
            AnnotationOutputSerializer(annotation).data, headers={"ETag": _etag(annotation.version)}
        )

    @extend_schema(
        operation_id="frame_annotation_submit",
        parameters=[
            *_FRAME_TASK,
            OpenApiParameter(
                "If-Match",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                description='The version being replaced as an ETag ("3"), instead of `version` in the body.',
            ),
            OpenApiParameter(
                "Idempotency-Key",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                description=(
                    "A unique key per submit: a retry with the same key and payload returns the first answer "
                    "without writing again; the same key with another payload is refused with 422."
                ),
            ),
        ],
        request=AnnotationSubmitInputSerializer,
        responses={
            200: AnnotationOutputSerializer,
            201: AnnotationOutputSerializer,
            400: OpenApiResponse(description="Invalid value, confidence, or an inactive task or choice."),
            404: OpenApiResponse(description="No such frame or task in the caller's projects."),
            409: AnnotationConflictSerializer,
            422: OpenApiResponse(description="The Idempotency-Key was used for a different submit."),
        },
        description=(
            "Create (no version: 201, version 1) or update (with the current version, in the body or in "
            "If-Match: 200, version + 1) the caller's annotation. A missing or stale version answers 409 "
            "with the server's current state and overwrites nothing."
        ),
        tags=["annotations"],
    )
    def put(self, request: Request, frame_id: int, task_id: int) -> Response:
        frame, task, choice = self._frame_task_and_choice(request, frame_id, task_id)
        serializer = AnnotationSubmitInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        version, key = _submit_version_and_key(request, data)
        try:
            outcome = annotation_submit(
                frame=frame,
                task=task,
                annotator=request.user,  # type: ignore[arg-type]
                version=version,
                idempotency_key=key,
                choice=choice,
                **data,
            )
        except AnnotationRefused as exc:
            raise ValidationError({exc.field: [exc.message]}) from exc
        except IdempotencyKeyReused as exc:
            raise Unprocessable(str(exc)) from exc
        except AnnotationConflict as exc:
            return _conflict_response(exc.message, exc.current, AnnotationOutputSerializer)
        return _submitted_response(
            outcome.annotation,
            created=outcome.created,
            replayed=outcome.replayed,
            output=AnnotationOutputSerializer,
        )

    @extend_schema(
        operation_id="frame_annotation_delete",
        parameters=[
            *_FRAME_TASK,
            OpenApiParameter(
                "If-Match",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                required=True,
                description='The version being deleted as an ETag ("3"); required.',
            ),
        ],
        request=None,
        responses={
            204: None,
            400: OpenApiResponse(description="An inactive task, or a reader-study reading."),
            404: OpenApiResponse(
                description="No such frame or task in the caller's projects, or no annotation of the caller."
            ),
            409: AnnotationConflictSerializer,
            428: OpenApiResponse(description="If-Match is missing."),
        },
        description=(
            "Delete the caller's own annotation (the browser app's undo). If-Match must carry the current "
            "version: without it 428, with a stale one 409 with the server's current state, and nothing is "
            "deleted. The deletion is kept in the annotation's audit history."
        ),
        tags=["annotations"],
    )
    def delete(self, request: Request, frame_id: int, task_id: int) -> Response:
        frame, task = self._frame_and_task(request, frame_id, task_id)
        version = _if_match_version(request)
        if version is None:
            raise PreconditionRequired(
                'Send If-Match with the version being deleted (the ETag of the annotation, e.g. "3").'
            )
        try:
            annotation_delete(frame=frame, task=task, annotator=request.user, version=version)  # type: ignore[arg-type]
        except AnnotationMissing as exc:
            raise NotFound(str(exc)) from exc
        except AnnotationRefused as exc:
            raise ValidationError({exc.field: [exc.message]}) from exc
        except AnnotationConflict as exc:
            return _conflict_response(exc.message, exc.current, AnnotationOutputSerializer)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AnnotationFilter(filters.FilterSet):
    project = IdFilter(field_name="task__project_id")
    frame = IdFilter(field_name="frame_id")
    task = IdFilter(field_name="task_id")
    annotator = IdFilter(field_name="annotator_id")

    class Meta:
        model = Annotation
        fields = ["project", "frame", "task", "annotator"]


class HistoryEntrySerializer(serializers.Serializer[Any]):
    history_id = serializers.IntegerField()
    changed_at = serializers.DateTimeField()
    change_type = serializers.ChoiceField(
        choices=[("+", "created"), ("~", "changed"), ("-", "deleted")],
        help_text="+ created, ~ changed, - deleted.",
    )
    changed_by_id = serializers.IntegerField(allow_null=True)
    changed_by = serializers.CharField(allow_null=True, help_text="Username of who made the change.")
    version = serializers.IntegerField()
    state = serializers.DictField(help_text="The annotation's fields after the change.")
    changes = serializers.ListField(
        child=serializers.DictField(), help_text="{field, old, new} for every field the change touched."
    )


@extend_schema_view(
    list=extend_schema(
        description=(
            "The caller's own annotations, and all of the projects where they are a coordinator, reviewer "
            "or admin."
        )
    ),
    retrieve=extend_schema(
        description="One annotation: own, or of a project the caller coordinates, reviews or administers."
    ),
)
class AnnotationViewSet(viewsets.ReadOnlyModelViewSet[Annotation]):
    serializer_class = AnnotationOutputSerializer
    filterset_class = AnnotationFilter

    def get_queryset(self) -> QuerySet[Annotation]:
        return annotations_visible_to(self.request.user)

    @extend_schema(
        responses={200: HistoryEntrySerializer(many=True)},
        description=(
            "Every change of the annotation, oldest first: who, when, what (coordinators, reviewers, admins)."
        ),
    )
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def history(self, request: Request, pk: str) -> Response:
        annotation = self.get_object()
        require_role(
            request.user, annotation.task.project, ANNOTATION_OVERSEER_ROLES, "read annotation history"
        )
        return Response(HistoryEntrySerializer(annotation_history(annotation), many=True).data)


# --- Work queue -----------------------------------------------------------------------------------


class WorkQueueQuerySerializer(serializers.Serializer[Any]):
    task = serializers.IntegerField(min_value=1, help_text="The label task to work on (of this project).")
    limit = serializers.IntegerField(
        min_value=1,
        max_value=QUEUE_MAX_LIMIT,
        default=QUEUE_DEFAULT_LIMIT,
        help_text=f"How many frames to return (default {QUEUE_DEFAULT_LIMIT}, at most {QUEUE_MAX_LIMIT}).",
    )
    examination = serializers.IntegerField(required=False, help_text="Only frames of this examination.")
    anatomical_site = serializers.CharField(
        required=False, allow_blank=True, help_text="Only frames whose examination has this site."
    )
    device = serializers.CharField(
        required=False, allow_blank=True, help_text="Only frames whose examination used this device."
    )
    quality_task = serializers.IntegerField(
        required=False,
        help_text="With quality_value: only frames any annotator gave that value for this task.",
    )
    quality_value = serializers.CharField(
        required=False, max_length=50, help_text="The choice value to match in quality_task."
    )
    after = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=2000,
        help_text=(
            "A cursor from an earlier answer (a frame's `cursor`, or `next_cursor`): the page starts after "
            "that frame in queue order instead of at the first unannotated frame. Unannotated frames before "
            "it (skipped ones) are not listed again but still count in `remaining`."
        ),
    )

    def validate_after(self, value: str) -> QueueKey | str:
        if value == "":
            return value
        try:
            return QueueKey.decode(value)
        except InvalidQueueCursor as exc:
            raise ValidationError(str(exc)) from exc

    order = serializers.ChoiceField(
        choices=QueueOrder.choices,
        default=QueueOrder.QUEUE,
        help_text=(
            "queue (default): the stable queue order. Active learning, for whoever may see the project's "
            "model output: uncertainty (the active model's least confident frames first) or "
            "disagreement (frames whose annotations disagree most with the model first). Without a "
            "cursor: the frames labelled drop out, so the next request gives the next ones."
        ),
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # An empty text filter means no filter, as in the records API's filters.
        attrs = {name: value for name, value in attrs.items() if value != ""}
        if ("quality_task" in attrs) != ("quality_value" in attrs):
            raise ValidationError("quality_task and quality_value go together: give both or neither.")
        if attrs.get("order", QueueOrder.QUEUE) != QueueOrder.QUEUE and attrs.get("after"):
            raise ValidationError({"after": ["A cursor pages the queue order only."]})
        return attrs


class QueueFrameSerializer(FrameOutputSerializer):
    """A frame as the frames API gives it, without any reference standard (the reader must not see
    the frame's or the examination's reference_label), plus its examination's site and device."""

    examination_site = serializers.CharField(source="examination.anatomical_site", read_only=True)
    examination_device = serializers.CharField(source="examination.device", read_only=True)

    class Meta(FrameOutputSerializer.Meta):
        fields = [
            *(name for name in FrameOutputSerializer.Meta.fields if name != "reference_label"),
            "examination_site",
            "examination_device",
        ]
        read_only_fields = fields


class WorkQueueFrameSerializer(QueueFrameSerializer):
    """A frame of the work queue, with its position in the queue as a cursor for `after`."""

    cursor = serializers.CharField(
        source="queue_cursor", read_only=True, help_text="Pass as `after` for the frames after this one."
    )

    class Meta(QueueFrameSerializer.Meta):
        fields = [*QueueFrameSerializer.Meta.fields, "cursor"]
        read_only_fields = fields


class WorkQueueOutputSerializer(serializers.Serializer[Any]):
    task = serializers.IntegerField(source="task.id")
    remaining = serializers.IntegerField(
        help_text="Frames matching the filters that the caller has not annotated for the task."
    )
    total = serializers.IntegerField(help_text="Frames matching the filters.")
    frames = WorkQueueFrameSerializer(many=True, help_text="The next unannotated frames, in queue order.")
    next_cursor = serializers.CharField(
        allow_null=True,
        help_text=(
            "The last listed frame's cursor (the `after` given when the page is empty, null without one): "
            "pass it as `after` for the next page."
        ),
    )

    def to_representation(self, instance: Any) -> dict[str, Any]:
        """The declared fields' answer, written out: DRF's field-by-field build of five frames (two
        URL reversals each) cost 1.3 ms of the 9 ms of Python in the labelling loop.
        tests/annotations/test_label_path_sql.py holds the two equal."""
        request = self.context["request"]
        image_url = _FrameUrl(request, "frame-image")
        preview_url = _FrameUrl(request, "frame-preview")
        return {
            "task": instance.task.id,
            "remaining": int(instance.remaining),
            "total": int(instance.total),
            "frames": [
                {
                    "id": frame.id,
                    "examination": frame.examination_id,
                    "video": frame.video_id,
                    "index_in_video": frame.index_in_video,
                    "time_s": None if frame.time_s is None else float(frame.time_s),
                    "source_name": str(frame.source_name),
                    "sha256": str(frame.sha256),
                    "file_bytes": int(frame.file_bytes),
                    "width": int(frame.width),
                    "height": int(frame.height),
                    "mode": str(frame.mode),
                    "preview_width": int(frame.preview_width),
                    "preview_height": int(frame.preview_height),
                    "crop_box": None if frame.crop_box is None else [int(edge) for edge in frame.crop_box],
                    "created_at": _DATETIME.to_representation(frame.created_at),
                    "image_url": image_url.of(frame.id),
                    "preview_url": preview_url.of(frame.id),
                    "examination_site": str(frame.examination.anatomical_site),
                    "examination_device": str(frame.examination.device),
                    "cursor": str(frame.queue_cursor),
                }
                for frame in instance.frames
            ],
            "next_cursor": instance.next_cursor,
        }


_DATETIME = serializers.DateTimeField()


class _FrameUrl:
    """A frame endpoint's absolute URL as HyperlinkedIdentityField gives it, reversed once per answer."""

    _PLACEHOLDER = 1234567890

    def __init__(self, request: Request, view_name: str) -> None:
        url = request.build_absolute_uri(reverse(view_name, kwargs={"pk": self._PLACEHOLDER}))
        # The last occurrence: the id is in the path, after anything the host part may hold.
        self._before, _, self._after = url.rpartition(str(self._PLACEHOLDER))

    def of(self, pk: int) -> str:
        return f"{self._before}{pk}{self._after}"


# The work queue's filters (what the counts depend on).
_QUEUE_FILTERS = ("examination", "anatomical_site", "device", "quality_task", "quality_value")


class WorkQueueApi(APIView):
    """The caller's next frames to annotate for one task of a project."""

    @extend_schema(
        operation_id="project_work_queue",
        parameters=[
            OpenApiParameter("project_id", PATH_ID, OpenApiParameter.PATH),
            WorkQueueQuerySerializer,
        ],
        responses={
            200: WorkQueueOutputSerializer,
            400: OpenApiResponse(
                description="Invalid parameters (limit above the maximum), or an inactive task."
            ),
            404: OpenApiResponse(description="Not a member of the project, or no such task in it."),
        },
        description=(
            "The next frames of the project the caller has not annotated for `task` (done once they "
            "have an annotation of (frame, task); other annotators' annotations do not count), in a "
            "stable order: patient pseudonym, examination code, video name, index in the video, frame "
            "id. `remaining` counts the caller's unannotated frames matching the filters, `total` all "
            "frames matching them. With `after` (a cursor from an earlier answer) the page continues after "
            "that frame. No reference standard is included."
        ),
        tags=["annotations"],
    )
    def get(self, request: Request, project_id: int) -> Response:
        query = WorkQueueQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = dict(query.validated_data)
        found = queue_task_and_counts(
            user=request.user,
            project_id=project_id,
            task_id=params.pop("task"),
            **{name: params[name] for name in _QUEUE_FILTERS if name in params},
        )
        if found is None:
            raise NotFound("No such label task in this project.")
        task, counts = found
        if not task.is_active:
            raise ValidationError({"task": ["This label task is inactive: it accepts no annotations."]})
        if params.get("order", QueueOrder.QUEUE) != QueueOrder.QUEUE:
            from inference.selectors import ai_visibility

            if not ai_visibility(request.user, task.project).prediction:
                raise PermissionDenied(
                    "Ordering by the model uses its output, which is hidden from you in this project."
                )
        try:
            queue = work_queue(user=request.user, task=task, counts=counts, **params)
        except NoActiveModel as exc:
            raise ValidationError({"order": [str(exc)]}) from exc
        return Response(WorkQueueOutputSerializer(queue, context={"request": request}).data)


# --- Review of disagreements and adjudications ----------------------------------------------------


class ReviewQueueQuerySerializer(serializers.Serializer[Any]):
    task = serializers.IntegerField(min_value=1, help_text="The label task to review (of this project).")
    status = serializers.ChoiceField(
        choices=ReviewStatus.choices,
        default=ReviewStatus.OPEN,
        help_text=(
            "open: disagreeing, not yet adjudicated (default); adjudicated: an adjudication exists; all: "
            "every disagreeing frame, adjudicated or not."
        ),
    )
    limit = serializers.IntegerField(
        min_value=1,
        max_value=QUEUE_MAX_LIMIT,
        default=QUEUE_DEFAULT_LIMIT,
        help_text=f"How many frames to return (default {QUEUE_DEFAULT_LIMIT}, at most {QUEUE_MAX_LIMIT}).",
    )
    examination = serializers.IntegerField(required=False, help_text="Only frames of this examination.")
    anatomical_site = serializers.CharField(
        required=False, allow_blank=True, help_text="Only frames whose examination has this site."
    )
    device = serializers.CharField(
        required=False, allow_blank=True, help_text="Only frames whose examination used this device."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # An empty text filter means no filter, as in the work queue.
        return {name: value for name, value in attrs.items() if value != ""}


class AdjudicationBasisSerializer(serializers.Serializer[Any]):
    annotation_id = serializers.IntegerField()
    annotator_id = serializers.IntegerField()
    value = serializers.CharField()
    confidence = serializers.IntegerField()
    version = serializers.IntegerField()


class AdjudicationOutputSerializer(serializers.Serializer[Any]):
    """Works on an Adjudication and on its snapshot() (an idempotent replay answers the stored one)."""

    id = serializers.IntegerField(read_only=True)
    frame = serializers.IntegerField(source="frame_id", read_only=True)
    task = serializers.IntegerField(source="task_id", read_only=True)
    value = serializers.CharField(read_only=True)
    rationale = serializers.CharField(read_only=True)
    adjudicated_by = serializers.IntegerField(
        source="adjudicated_by_id", read_only=True, help_text="Who made the current decision."
    )
    adjudicated_by_username = serializers.CharField(read_only=True)
    based_on = AdjudicationBasisSerializer(
        many=True,
        read_only=True,
        help_text="The free-labelling annotations decided over, as they were when the decision was made.",
    )
    version = serializers.IntegerField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)


class AdjudicationSubmitInputSerializer(serializers.Serializer[Any]):
    value = serializers.SlugField(max_length=50, help_text="The value of one of the task's active choices.")
    rationale = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="Why (optional)."
    )
    version = serializers.IntegerField(
        min_value=1,
        required=False,
        allow_null=True,
        help_text="The version being replaced (or send If-Match); leave out to create the adjudication.",
    )


class AdjudicationConflictSerializer(serializers.Serializer[Any]):
    detail = serializers.CharField()
    current = AdjudicationOutputSerializer(allow_null=True, help_text="The server's state; null if none.")


class ReviewAnnotationSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    annotator = serializers.IntegerField(source="annotator_id")
    annotator_username = serializers.CharField(source="annotator.username")
    value = serializers.CharField()
    confidence = serializers.IntegerField()
    version = serializers.IntegerField()
    ai_shown = serializers.BooleanField()
    cam_visible_ms = serializers.IntegerField()
    updated_at = serializers.DateTimeField()


class ReviewItemSerializer(serializers.Serializer[Any]):
    frame = QueueFrameSerializer(help_text="As in the work queue: no reference standard.")
    annotations = ReviewAnnotationSerializer(
        many=True, help_text="The frame's free-labelling annotations of the task, oldest first."
    )
    adjudication = AdjudicationOutputSerializer(allow_null=True, help_text="Null until adjudicated.")
    disagreement = serializers.BooleanField(
        help_text="Whether the annotators disagree now (false for a confirmed, agreed label)."
    )


class ReviewQueueOutputSerializer(serializers.Serializer[Any]):
    task = serializers.IntegerField(source="task.id")
    open = serializers.IntegerField(
        help_text="Frames matching the filters that disagree and are not adjudicated."
    )
    adjudicated = serializers.IntegerField(help_text="Frames matching the filters with an adjudication.")
    items = ReviewItemSerializer(many=True, help_text="The frames in `status`, in work-queue order.")


_ADJUDICATOR_ONLY = OpenApiResponse(
    description="A member of the project who is not a reviewer, coordinator or admin."
)


class ReviewQueueApi(APIView):
    """Frames whose annotators disagree on a task, for the project's adjudicators."""

    @extend_schema(
        operation_id="project_review_queue",
        parameters=[
            OpenApiParameter("project_id", PATH_ID, OpenApiParameter.PATH),
            ReviewQueueQuerySerializer,
        ],
        responses={
            200: ReviewQueueOutputSerializer,
            400: OpenApiResponse(description="Invalid parameters (limit above the maximum, unknown status)."),
            403: _ADJUDICATOR_ONLY,
            404: OpenApiResponse(description="Not a member of the project, or no such task in it."),
        },
        description=(
            "A frame disagrees on a task when it has free-labelling annotations of the task from at least "
            "2 different annotators and they do not all have the same value. `status`: open (disagreeing, "
            "not adjudicated; the default), adjudicated (an adjudication exists, disagreeing or not), all "
            "(every disagreeing frame). Frames come in the work queue's order with the same filters, each "
            "with its annotations and adjudication; `open` and `adjudicated` count the frames matching the "
            "filters. Reviewers, coordinators and project admins only."
        ),
        tags=["review"],
    )
    def get(self, request: Request, project_id: int) -> Response:
        project = get_object_or_404(projects_visible_to(request.user), pk=project_id)
        require_role(request.user, project, ADJUDICATOR_ROLES, "review disagreements")
        query = ReviewQueueQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = dict(query.validated_data)
        task = queue_task_of(user=request.user, project_id=project.pk, task_id=params.pop("task"))
        if task is None:
            raise NotFound("No such label task in this project.")
        queue = review_queue(task=task, **params)
        return Response(ReviewQueueOutputSerializer(queue, context={"request": request}).data)


class AdjudicationApi(APIView):
    """The adjudication of one frame for one task (adjudicators only)."""

    def _frame_and_task(self, request: Request, frame_id: int, task_id: int) -> tuple[Frame, LabelTask]:
        frame = get_object_or_404(
            frames_visible_to(request.user).select_related("examination__patient__project"), pk=frame_id
        )
        project = frame.examination.patient.project
        require_role(request.user, project, ADJUDICATOR_ROLES, "adjudicate")
        task = get_object_or_404(label_tasks_visible_to(request.user).filter(project=project), pk=task_id)
        return frame, task

    @extend_schema(
        operation_id="frame_adjudication_retrieve",
        parameters=_FRAME_TASK,
        responses={
            200: AdjudicationOutputSerializer,
            403: _ADJUDICATOR_ONLY,
            404: OpenApiResponse(
                description="No such frame or task in the caller's projects, or no adjudication yet."
            ),
        },
        description="The adjudication of this frame for this task; ETag carries its version.",
        tags=["review"],
    )
    def get(self, request: Request, frame_id: int, task_id: int) -> Response:
        frame, task = self._frame_and_task(request, frame_id, task_id)
        adjudication = adjudication_of(frame=frame, task=task)
        if adjudication is None:
            raise NotFound("This frame has not been adjudicated for this task yet.")
        return Response(
            AdjudicationOutputSerializer(adjudication).data, headers={"ETag": _etag(adjudication.version)}
        )

    @extend_schema(
        operation_id="frame_adjudication_submit",
        parameters=[
            *_FRAME_TASK,
            OpenApiParameter(
                "If-Match",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                description='The version being replaced as an ETag ("3"), instead of `version` in the body.',
            ),
            OpenApiParameter(
                "Idempotency-Key",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                description=(
                    "A unique key per submit: a retry with the same key and payload returns the first answer "
                    "without writing again; the same key with another payload is refused with 422."
                ),
            ),
        ],
        request=AdjudicationSubmitInputSerializer,
        responses={
            200: AdjudicationOutputSerializer,
            201: AdjudicationOutputSerializer,
            400: OpenApiResponse(
                description=(
                    "Not an active choice of an active task, or the frame has no annotation for the task."
                )
            ),
            403: _ADJUDICATOR_ONLY,
            404: OpenApiResponse(description="No such frame or task in the caller's projects."),
            409: AdjudicationConflictSerializer,
            422: OpenApiResponse(description="The Idempotency-Key was used for a different submit."),
        },
        description=(
            "Create (no version: 201, version 1) or change (with the current version, in the body or in "
            "If-Match: 200, version + 1) the adjudication. A missing or stale version answers 409 with the "
            "server's current state and overwrites nothing. `based_on` records the frame's free-labelling "
            "annotations as they are now. A frame without disagreement may be adjudicated (confirming its "
            "label); one without any annotation for the task is refused (400)."
        ),
        tags=["review"],
    )
    def put(self, request: Request, frame_id: int, task_id: int) -> Response:
        frame, task = self._frame_and_task(request, frame_id, task_id)
        serializer = AdjudicationSubmitInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        version, key = _submit_version_and_key(request, data)
        try:
            outcome = adjudication_submit(
                frame=frame,
                task=task,
                adjudicator=request.user,  # type: ignore[arg-type]
                version=version,
                idempotency_key=key,
                **data,
            )
        except AnnotationRefused as exc:
            raise ValidationError({exc.field: [exc.message]}) from exc
        except IdempotencyKeyReused as exc:
            raise Unprocessable(str(exc)) from exc
        except AdjudicationConflict as exc:
            return _conflict_response(exc.message, exc.current, AdjudicationOutputSerializer)
        return _submitted_response(
            outcome.adjudication,
            created=outcome.created,
            replayed=outcome.replayed,
            output=AdjudicationOutputSerializer,
        )


class AdjudicationFilter(filters.FilterSet):
    project = IdFilter(field_name="task__project_id")
    task = IdFilter(field_name="task_id")
    frame = IdFilter(field_name="frame_id")

    class Meta:
        model = Adjudication
        fields = ["project", "task", "frame"]


class AdjudicationHistoryEntrySerializer(HistoryEntrySerializer):
    state = serializers.DictField(
        help_text="value, rationale, adjudicated_by_id, based_on and version after the change."
    )


@extend_schema_view(
    list=extend_schema(
        description=(
            "Adjudications of the projects where the caller is a reviewer, coordinator or admin; nobody "
            "else sees any (readers are measured against them)."
        )
    ),
    retrieve=extend_schema(
        description="One adjudication (reviewers, coordinators and admins of its project)."
    ),
)
@extend_schema(tags=["review"])
class AdjudicationViewSet(viewsets.ReadOnlyModelViewSet[Adjudication]):
    serializer_class = AdjudicationOutputSerializer
    filterset_class = AdjudicationFilter

    def get_queryset(self) -> QuerySet[Adjudication]:
        return adjudications_visible_to(self.request.user).select_related("adjudicated_by")

    @extend_schema(
        responses={200: AdjudicationHistoryEntrySerializer(many=True)},
        description="Every decision on the adjudication, oldest first: who, when, what.",
    )
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def history(self, request: Request, pk: str) -> Response:
        adjudication = self.get_object()
        return Response(
            AdjudicationHistoryEntrySerializer(adjudication_history(adjudication), many=True).data
        )
