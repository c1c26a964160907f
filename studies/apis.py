"""REST API of reader-study design: thin views over studies.selectors and studies.services.

Coordinators and project admins design a study while it is a draft (settings, questions, arms,
cases with their reference standard, readers) and open it, which generates the reading schedule.
Readers list their own sessions with their availability (washout) and start them; they never see
the cases' reference standard. A study outside the caller's reach is a 404.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from django.contrib.auth.models import User
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from annotations.models import LabelTask
from inference.apis import PredictionOutputSerializer
from inference.models import Prediction
from records.apis import IgnoreAcceptNegotiation, require_role, serve_content_addressed
from records.models import Project
from records.selectors import projects_visible_to
from studies.models import (
    ReaderStudy,
    Reading,
    ReadingSession,
    StudyArm,
    StudyCase,
    StudyQuestion,
    StudyReader,
)
from studies.reading import (
    Answer,
    CaseView,
    ReadingRefused,
    case_frames,
    case_predictions,
    case_view,
    current_position,
    reading_submit,
    study_lock,
    study_progress,
)
from studies.selectors import (
    STUDY_MANAGER_ROLES,
    sessions_of_reader,
    studies_visible_to,
)
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
    study_update,
)

MAX_CASES_PER_REQUEST = 5000


class StudyConflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The study's design can no longer change."
    default_code = "study_frozen"


def _design_call(call: Any) -> Any:
    """Run a study service, turning its refusals into 409 (frozen, out of turn, not available yet)
    or 400 (wrong input, on the field it names)."""
    try:
        return call()
    except StudyFrozen as exc:
        raise StudyConflict(exc.message) from exc
    except ReadingRefused as exc:
        if exc.conflict:
            raise StudyConflict(exc.message) from exc
        raise ValidationError({exc.field: [exc.message]}) from exc
    except SessionNotAvailable as exc:
        raise StudyConflict(exc.message) from exc
    except StudyDesignError as exc:
        raise ValidationError({"detail": exc.message}) from exc


# --- Serializers ----------------------------------------------------------------------------------


class QuestionOutputSerializer(serializers.Serializer[Any]):
    task = serializers.IntegerField(source="task_id")
    task_key = serializers.CharField(source="task.key")
    task_name = serializers.CharField(source="task.name")
    ask_confidence = serializers.BooleanField()
    model_version = serializers.IntegerField(
        source="model_version_id",
        allow_null=True,
        help_text="The model version whose AI the AI arms show, frozen when the study opened; null: none.",
    )
    gate_version = serializers.IntegerField(
        source="gate_version_id", allow_null=True, help_text="Its gate's version, frozen likewise."
    )


class ArmSerializer(serializers.ModelSerializer[StudyArm]):
    class Meta:
        model = StudyArm
        fields = ["id", "name", "assistance", "sequential"]
        read_only_fields = ["id"]


class ReaderOutputSerializer(serializers.ModelSerializer[StudyReader]):
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = StudyReader
        fields = ["user", "username", "position", "group"]
        read_only_fields = fields


class StudyOutputSerializer(serializers.ModelSerializer[ReaderStudy]):
    questions = QuestionOutputSerializer(many=True, read_only=True)
    arms = ArmSerializer(many=True, read_only=True)
    case_count = serializers.IntegerField(read_only=True)
    training_case_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = ReaderStudy
        fields = [
            "id",
            "project",
            "name",
            "description",
            "design",
            "case_unit",
            "status",
            "washout_days",
            "reader_groups",
            "seed",
            "allow_navigation",
            "allow_answer_changes",
            "questions",
            "arms",
            "case_count",
            "training_case_count",
            "created_at",
            "opened_at",
            "locked_at",
        ]
        read_only_fields = fields


class StudyCreateInputSerializer(serializers.Serializer[Any]):
    project = serializers.IntegerField()
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    design = serializers.ChoiceField(choices=ReaderStudy.Design.choices)
    case_unit = serializers.ChoiceField(choices=ReaderStudy.CaseUnit.choices, default="frame")
    washout_days = serializers.IntegerField(min_value=0, default=0)
    reader_groups = serializers.IntegerField(min_value=1, default=1)
    allow_navigation = serializers.BooleanField(default=False)
    allow_answer_changes = serializers.BooleanField(default=False)
    seed = serializers.IntegerField(
        required=False, min_value=0, max_value=2**62, help_text="To reproduce a schedule; drawn if omitted."
    )


class StudyUpdateInputSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    design = serializers.ChoiceField(choices=ReaderStudy.Design.choices, required=False)
    case_unit = serializers.ChoiceField(choices=ReaderStudy.CaseUnit.choices, required=False)
    washout_days = serializers.IntegerField(min_value=0, required=False)
    reader_groups = serializers.IntegerField(min_value=1, required=False)
    allow_navigation = serializers.BooleanField(required=False)
    allow_answer_changes = serializers.BooleanField(required=False)


class QuestionInputSerializer(serializers.Serializer[Any]):
    task = serializers.CharField(help_text="The label task's key.")
    ask_confidence = serializers.BooleanField(default=True)


class QuestionsInputSerializer(serializers.Serializer[Any]):
    questions = QuestionInputSerializer(many=True)


class ArmsInputSerializer(serializers.Serializer[Any]):
    arms = ArmSerializer(many=True)


class CaseInputSerializer(serializers.Serializer[Any]):
    frame = serializers.IntegerField(required=False)
    examination = serializers.IntegerField(required=False)
    reference = serializers.DictField(child=serializers.CharField(), required=False)
    is_training = serializers.BooleanField(default=False)


class CasesInputSerializer(serializers.Serializer[Any]):
    cases = serializers.ListField(child=CaseInputSerializer(), min_length=1, max_length=MAX_CASES_PER_REQUEST)


class CaseOutputSerializer(serializers.ModelSerializer[StudyCase]):
    class Meta:
        model = StudyCase
        fields = ["id", "frame", "examination", "reference", "reference_source", "is_training", "block"]
        read_only_fields = fields


class ReaderInputSerializer(serializers.Serializer[Any]):
    user = serializers.IntegerField()
    group = serializers.IntegerField(min_value=0, default=0)


class ReadersInputSerializer(serializers.Serializer[Any]):
    readers = ReaderInputSerializer(many=True)


class SessionOutputSerializer(serializers.ModelSerializer[ReadingSession]):
    study = serializers.IntegerField(source="reader.study_id", read_only=True)
    study_name = serializers.CharField(source="reader.study.name", read_only=True)
    reader = serializers.IntegerField(source="reader.user_id", read_only=True)
    reader_username = serializers.CharField(source="reader.user.username", read_only=True)
    arm = ArmSerializer(read_only=True)
    case_count = serializers.SerializerMethodField()
    available = serializers.SerializerMethodField()
    unavailable_reason = serializers.SerializerMethodField()
    available_from = serializers.SerializerMethodField()
    current_position = serializers.SerializerMethodField(
        help_text="The first case not fully answered (where the reader goes on); null once every case is."
    )

    class Meta:
        model = ReadingSession
        fields = [
            "id",
            "study",
            "study_name",
            "reader",
            "reader_username",
            "arm",
            "period",
            "case_order",
            "case_count",
            "started_at",
            "completed_at",
            "available",
            "unavailable_reason",
            "available_from",
            "current_position",
        ]
        read_only_fields = fields

    def _availability(self, session: ReadingSession) -> Any:
        cache = self.context.setdefault("availability", {})
        if session.pk not in cache:
            cache[session.pk] = reading_session_availability(session)
        return cache[session.pk]

    def get_case_count(self, session: ReadingSession) -> int:
        return len(session.case_order)

    def get_available(self, session: ReadingSession) -> bool:
        return bool(self._availability(session).available)

    def get_unavailable_reason(self, session: ReadingSession) -> str:
        return str(self._availability(session).reason)

    def get_available_from(self, session: ReadingSession) -> str | None:
        moment = self._availability(session).available_from
        return moment.isoformat() if moment else None

    def get_current_position(self, session: ReadingSession) -> int | None:
        return current_position(session)


def _sessions(queryset: QuerySet[ReadingSession]) -> QuerySet[ReadingSession]:
    return queryset.select_related("reader__study", "reader__user", "arm").order_by(
        "reader__study_id", "reader__position", "period", "arm__order"
    )


class ReadingOutputSerializer(serializers.ModelSerializer[Reading]):
    question = serializers.CharField(source="question.task.key", read_only=True)

    class Meta:
        model = Reading
        fields = [
            "id",
            "case",
            "question",
            "phase",
            "value",
            "confidence",
            "time_ms",
            "ai_shown",
            "cam_visible_ms",
            "version",
            "updated_at",
        ]
        read_only_fields = fields


class StudyReadingOutputSerializer(ReadingOutputSerializer):
    """A reading for the coordinator: who read it, in which arm and period, and the prediction shown."""

    reader = serializers.IntegerField(source="session.reader.user_id", read_only=True)
    reader_username = serializers.CharField(source="session.reader.user.username", read_only=True)
    arm = serializers.CharField(source="session.arm.name", read_only=True)
    period = serializers.IntegerField(source="session.period", read_only=True)

    class Meta(ReadingOutputSerializer.Meta):
        fields = [
            *ReadingOutputSerializer.Meta.fields,
            "reader",
            "reader_username",
            "arm",
            "period",
            "prediction",
        ]
        read_only_fields = fields


class CaseFrameSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    crop_box = serializers.ListField(child=serializers.IntegerField(), allow_null=True)
    image_url = serializers.CharField()
    preview_url = serializers.CharField()


class QuestionChoiceSerializer(serializers.Serializer[Any]):
    value = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]  # a field named like Field.label
    color = serializers.CharField()
    hotkey = serializers.CharField()


class CaseQuestionSerializer(serializers.Serializer[Any]):
    key = serializers.CharField()
    name = serializers.CharField()
    ask_confidence = serializers.BooleanField()
    choices = QuestionChoiceSerializer(many=True)


class CaseViewOutputSerializer(serializers.Serializer[Any]):
    """What a reader gets for a case: never its reference standard nor another reader's answer."""

    position = serializers.IntegerField()
    current_position = serializers.IntegerField(allow_null=True)
    case_count = serializers.IntegerField()
    case = serializers.IntegerField()
    is_training = serializers.BooleanField()
    arm = ArmSerializer()
    frames = CaseFrameSerializer(many=True)
    questions = CaseQuestionSerializer(many=True)
    readings = ReadingOutputSerializer(many=True)
    ai_available = serializers.BooleanField()
    ai_unavailable_reason = serializers.CharField()
    allow_navigation = serializers.BooleanField()
    allow_answer_changes = serializers.BooleanField()


class ReadingInputSerializer(serializers.Serializer[Any]):
    question = serializers.CharField(help_text="The question's label task key.")
    phase = serializers.ChoiceField(choices=Reading.Phase.choices, default=Reading.Phase.FIRST)
    value = serializers.CharField(max_length=50)
    confidence = serializers.IntegerField(required=False, allow_null=True, default=None)
    time_ms = serializers.IntegerField(min_value=0)
    ai_shown = serializers.BooleanField(default=False)
    cam_visible_ms = serializers.IntegerField(min_value=0, default=0)


class ProgressOutputSerializer(serializers.Serializer[Any]):
    session = serializers.IntegerField(source="session.pk")
    reader = serializers.IntegerField(source="session.reader.user_id")
    reader_username = serializers.CharField(source="session.reader.user.username")
    arm = serializers.CharField(source="session.arm.name")
    period = serializers.IntegerField(source="session.period")
    cases_done = serializers.IntegerField()
    cases_total = serializers.IntegerField()
    started_at = serializers.DateTimeField(source="session.started_at", allow_null=True)
    completed_at = serializers.DateTimeField(source="session.completed_at", allow_null=True)


def _case_view_body(request: Request, session: ReadingSession, view: CaseView) -> dict[str, Any]:
    case = view.case
    frames = case_frames(case)
    study = session.reader.study
    questions = []
    for question in study.questions.select_related("task").order_by("order", "id"):
        choices = question.task.choices.filter(is_active=True).order_by("order", "id")
        questions.append(
            {
                "key": question.task.key,
                "name": question.task.name,
                "ask_confidence": question.ask_confidence,
                "choices": [
                    {"value": c.value, "label": c.label, "color": c.color, "hotkey": c.hotkey}
                    for c in choices
                ],
            }
        )
    return {
        "position": view.position,
        "current_position": view.current,
        "case_count": len(session.case_order),
        "case": case.pk,
        "is_training": view.is_training,
        "arm": session.arm,
        "frames": [
            {
                "id": frame.pk,
                "width": frame.width,
                "height": frame.height,
                "crop_box": frame.crop_box,
                "image_url": request.build_absolute_uri(f"/api/frames/{frame.pk}/image/"),
                "preview_url": request.build_absolute_uri(f"/api/frames/{frame.pk}/preview/"),
            }
            for frame in frames
        ],
        "questions": questions,
        "readings": view.readings,
        "ai_available": view.ai_available,
        "ai_unavailable_reason": view.ai_reason,
        "allow_navigation": study.allow_navigation,
        "allow_answer_changes": study.allow_answer_changes,
    }


# --- Views ----------------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        description=(
            "Studies of the caller's projects they manage (coordinators, admins), plus the open or "
            "locked studies they read in."
        )
    ),
    retrieve=extend_schema(description="One study: settings, questions, arms and case counts."),
)
class ReaderStudyViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[ReaderStudy]
):
    serializer_class = StudyOutputSerializer
    filterset_fields = ["project", "status"]

    def get_queryset(self) -> QuerySet[ReaderStudy]:
        return (
            studies_visible_to(self.request.user)
            .prefetch_related("questions__task", "arms")
            .annotate(case_count=Count("cases", distinct=True))
            .annotate(training_case_count=Count("cases", filter=Q(cases__is_training=True), distinct=True))
        )

    def _managed(self, pk: str) -> ReaderStudy:
        """The study, for its coordinators and admins: 404 when the caller cannot see it at all, 403
        for one of its readers."""
        study = studies_visible_to(self.request.user).filter(pk=pk).select_related("project").first()
        if study is None:
            raise Http404("No such study.")
        require_role(self.request.user, study.project, STUDY_MANAGER_ROLES, "design studies")
        return study

    def _output(self, study: ReaderStudy) -> Response:
        return Response(StudyOutputSerializer(self.get_queryset().get(pk=study.pk)).data)

    @extend_schema(
        request=StudyCreateInputSerializer,
        responses={201: StudyOutputSerializer, 400: OpenApiResponse(description="Refused design.")},
        description="Create a draft study (coordinators and admins of the project).",
    )
    def create(self, request: Request) -> Response:
        serializer = StudyCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        project = projects_visible_to(request.user).filter(pk=data.pop("project")).first()
        if project is None:
            raise ValidationError({"project": ["No such project."]})
        require_role(request.user, cast(Project, project), STUDY_MANAGER_ROLES, "design studies")
        study = _design_call(
            lambda: study_create(project=project, created_by=cast(User, request.user), **data)
        )
        response = self._output(study)
        response.status_code = status.HTTP_201_CREATED
        return response

    @extend_schema(
        request=StudyUpdateInputSerializer,
        responses={200: StudyOutputSerializer, 409: OpenApiResponse(description="Not a draft.")},
        description="Change a draft study's settings.",
    )
    def partial_update(self, request: Request, pk: str) -> Response:
        study = self._managed(pk)
        serializer = StudyUpdateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return self._output(_design_call(lambda: study_update(study=study, **serializer.validated_data)))

    @extend_schema(
        request=QuestionsInputSerializer,
        responses={200: StudyOutputSerializer, 409: OpenApiResponse(description="Not a draft.")},
        description="Replace the questions (label task keys of the project, in order, with confidence).",
    )
    @action(detail=True, methods=["put"])
    def questions(self, request: Request, pk: str) -> Response:
        study = self._managed(pk)
        serializer = QuestionsInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        rows = serializer.validated_data["questions"]
        tasks = {task.key: task for task in LabelTask.objects.filter(project_id=study.project_id)}
        unknown = [row["task"] for row in rows if row["task"] not in tasks]
        if unknown:
            raise ValidationError({"questions": [f"No such tasks in the project: {unknown}."]})
        specs = [QuestionSpec(task=tasks[row["task"]], ask_confidence=row["ask_confidence"]) for row in rows]
        _design_call(lambda: study_questions_set(study=study, questions=specs))
        return self._output(study)

    @extend_schema(
        request=ArmsInputSerializer,
        responses={200: StudyOutputSerializer, 409: OpenApiResponse(description="Not a draft.")},
        description="Replace the arms: unaided, prediction or prediction + CAM, optionally sequential.",
    )
    @action(detail=True, methods=["put"])
    def arms(self, request: Request, pk: str) -> Response:
        study = self._managed(pk)
        serializer = ArmsInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        specs = [ArmSpec(**row) for row in serializer.validated_data["arms"]]
        _design_call(lambda: study_arms_set(study=study, arms=specs))
        return self._output(study)

    @extend_schema(
        methods=["get"],
        responses={200: CaseOutputSerializer(many=True)},
        description="The cases with their reference standard (coordinators and admins only).",
    )
    @extend_schema(
        methods=["post"],
        request=CasesInputSerializer,
        responses={201: CaseOutputSerializer(many=True), 409: OpenApiResponse(description="Not a draft.")},
        description=(
            "Add cases (frames or examinations, per the study's case unit), all or nothing; a reference "
            "omitted is taken from the frame's or examination's reference label."
        ),
    )
    @action(detail=True, methods=["get", "post"], pagination_class=None)
    def cases(self, request: Request, pk: str) -> Response:
        study = self._managed(pk)
        if request.method == "GET":
            return Response(CaseOutputSerializer(study.cases.order_by("id"), many=True).data)
        serializer = CasesInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        specs = [
            CaseSpec(
                frame_id=row.get("frame"),
                examination_id=row.get("examination"),
                reference=row.get("reference"),
                is_training=row["is_training"],
            )
            for row in serializer.validated_data["cases"]
        ]
        created = _design_call(lambda: study_cases_add(study=study, cases=specs))
        return Response(CaseOutputSerializer(created, many=True).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=ReadersInputSerializer,
        responses={200: ReaderOutputSerializer(many=True), 409: OpenApiResponse(description="Not a draft.")},
        description=(
            "Replace the readers (project members, in order: the order counterbalances the arm order; "
            "`group` is the split-plot reader group)."
        ),
    )
    @action(detail=True, methods=["put"], pagination_class=None)
    def readers(self, request: Request, pk: str) -> Response:
        study = self._managed(pk)
        serializer = ReadersInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        rows = serializer.validated_data["readers"]
        users = {user.pk: user for user in User.objects.filter(pk__in=[row["user"] for row in rows])}
        unknown = [row["user"] for row in rows if row["user"] not in users]
        if unknown:
            raise ValidationError({"readers": [f"No such users: {unknown}."]})
        specs = [ReaderSpec(user=users[row["user"]], group=row["group"]) for row in rows]
        readers = _design_call(lambda: study_readers_set(study=study, readers=specs))
        return Response(ReaderOutputSerializer(readers, many=True).data)

    @extend_schema(
        request=None,
        responses={200: StudyOutputSerializer, 400: OpenApiResponse(description="Incomplete design.")},
        description="Check the design and open the study: generates every reader's sessions and case order.",
    )
    @action(detail=True, methods=["post"])
    def open(self, request: Request, pk: str) -> Response:
        study = self._managed(pk)
        return self._output(_design_call(lambda: study_open(study=study)))

    @extend_schema(
        responses={200: SessionOutputSerializer(many=True)},
        description="Every reader's sessions with their progress (coordinators and admins).",
    )
    @action(detail=True, methods=["get"], pagination_class=None)
    def sessions(self, request: Request, pk: str) -> Response:
        study = self._managed(pk)
        queryset = _sessions(ReadingSession.objects.filter(reader__study=study))
        return Response(SessionOutputSerializer(queryset, many=True).data)

    @extend_schema(
        responses={200: ProgressOutputSerializer(many=True)},
        description="Cases answered per reader and arm (coordinators and admins).",
    )
    @action(detail=True, methods=["get"], pagination_class=None)
    def progress(self, request: Request, pk: str) -> Response:
        study = self._managed(pk)
        return Response(ProgressOutputSerializer(study_progress(study), many=True).data)

    @extend_schema(
        request=None,
        responses={200: StudyOutputSerializer, 409: OpenApiResponse(description="Not open.")},
        description="Lock the study: its readings become immutable.",
    )
    @action(detail=True, methods=["post"])
    def lock(self, request: Request, pk: str) -> Response:
        study = self._managed(pk)
        return self._output(_design_call(lambda: study_lock(study=study)))

    @extend_schema(
        responses={200: StudyReadingOutputSerializer(many=True)},
        description="Every reading of the study with its reader, arm and period (coordinators and admins).",
    )
    @action(detail=True, methods=["get"], pagination_class=None)
    def readings(self, request: Request, pk: str) -> Response:
        study = self._managed(pk)
        rows = (
            Reading.objects.filter(session__reader__study=study)
            .select_related("question__task", "session__reader__user", "session__arm")
            .order_by("session__reader__position", "session__period", "case_id", "question__order", "phase")
        )
        return Response(StudyReadingOutputSerializer(rows, many=True).data)


@extend_schema_view(
    list=extend_schema(description="The caller's own reading sessions, with whether each may start now."),
    retrieve=extend_schema(description="One of the caller's reading sessions."),
)
class ReadingSessionViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[ReadingSession]
):
    serializer_class = SessionOutputSerializer

    def get_queryset(self) -> QuerySet[ReadingSession]:
        return _sessions(sessions_of_reader(self.request.user))

    def _own(self, pk: str) -> ReadingSession:
        session = self.get_queryset().filter(pk=pk).first()
        if session is None:
            raise Http404("No such reading session.")
        return session

    @extend_schema(
        responses={200: CaseViewOutputSerializer, 409: OpenApiResponse(description="Out of turn.")},
        description=(
            "The case at `position` of the session (starting the session, which enforces the washout): "
            "its frames, the questions and the caller's own answers; never the reference standard."
        ),
    )
    @action(detail=True, methods=["get"], url_path=r"cases/(?P<position>[0-9]+)")
    def case(self, request: Request, pk: str, position: str) -> Response:
        session = self._own(pk)
        view = _design_call(lambda: case_view(session=session, position=int(position)))
        session.refresh_from_db()
        return Response(CaseViewOutputSerializer(_case_view_body(request, session, view)).data)

    @extend_schema(
        request=ReadingInputSerializer,
        responses={200: ReadingOutputSerializer, 201: ReadingOutputSerializer},
        description=(
            "Answer one question of the case at `position`. 409 for a locked study, a case out of turn, "
            "a changed answer where changes are not allowed, or a sequential answer in the wrong phase."
        ),
    )
    @action(detail=True, methods=["put"], url_path=r"cases/(?P<position>[0-9]+)/readings")
    def answer(self, request: Request, pk: str, position: str) -> Response:
        session = self._own(pk)
        serializer = ReadingInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        answer = Answer(
            question_key=data["question"],
            value=data["value"],
            confidence=data["confidence"],
            time_ms=data["time_ms"],
            phase=data["phase"],
            ai_shown=data["ai_shown"],
            cam_visible_ms=data["cam_visible_ms"],
        )
        reading, created = _design_call(
            lambda: reading_submit(session=session, position=int(position), answer=answer)
        )
        return Response(
            ReadingOutputSerializer(reading).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(
        responses={200: PredictionOutputSerializer(many=True)},
        description=(
            "The AI for the case where the arm shows it (in a sequential arm only after the first "
            "answers); `cam_url` only in a prediction + CAM arm. 403 in an unaided arm."
        ),
    )
    @action(detail=True, methods=["get"], url_path=r"cases/(?P<position>[0-9]+)/ai", pagination_class=None)
    def ai(self, request: Request, pk: str, position: str) -> Response:
        session = self._own(pk)
        if session.arm.assistance == StudyArm.Assistance.UNAIDED:
            raise PermissionDenied("This arm is read without AI.")
        view = _design_call(lambda: case_view(session=session, position=int(position)))
        predictions = _design_call(lambda: case_predictions(session=session, case=view.case))
        show_cam = session.arm.assistance == StudyArm.Assistance.PREDICTION_AND_CAM
        rows = PredictionOutputSerializer(
            predictions, many=True, context={"request": request, "cam_visible": show_cam}
        ).data
        for row in rows:
            if row["cam_url"]:
                row["cam_url"] = request.build_absolute_uri(
                    f"/api/reading-sessions/{session.pk}/cases/{position}/cam/{row['id']}/"
                )
        return Response(rows)

    @extend_schema(
        responses={(200, "image/png"): OpenApiResponse(OpenApiTypes.BINARY, description="The CAM.")},
        description="The CAM of a prediction shown for the case, in a prediction + CAM arm only.",
    )
    @action(
        detail=True,
        methods=["get"],
        url_path=r"cases/(?P<position>[0-9]+)/cam/(?P<prediction_id>[0-9]+)",
        content_negotiation_class=IgnoreAcceptNegotiation,
    )
    def cam(self, request: Request, pk: str, position: str, prediction_id: str) -> HttpResponseBase:
        session = self._own(pk)
        if session.arm.assistance != StudyArm.Assistance.PREDICTION_AND_CAM:
            raise PermissionDenied("This arm shows no CAM.")
        view = _design_call(lambda: case_view(session=session, position=int(position)))
        if not view.ai_available:
            raise PermissionDenied(view.ai_reason)
        # Only a prediction by a model version the study shows (frozen when it opened).
        shown_versions = StudyQuestion.objects.filter(
            study_id=session.arm.study_id, model_version__isnull=False
        ).values("model_version_id")
        prediction = Prediction.objects.filter(
            pk=prediction_id,
            frame_id__in=[frame.pk for frame in case_frames(view.case)],
            model_version_id__in=shown_versions,
        ).first()
        if prediction is None or not prediction.cam_file:
            raise Http404("No such CAM for this case.")
        return serve_content_addressed(request, prediction.cam_file, f"{Path(prediction.cam_file).stem}-cam")

    @extend_schema(
        request=None,
        responses={
            200: SessionOutputSerializer,
            409: OpenApiResponse(description="Not available yet (earlier period unfinished or washout)."),
        },
        description="Start the session; refused while an earlier period is unfinished or the washout runs.",
    )
    @action(detail=True, methods=["post"])
    def start(self, request: Request, pk: str) -> Response:
        session = self.get_object()
        try:
            started = reading_session_start(session=session)
        except SessionNotAvailable as exc:
            body = {
                "detail": exc.message,
                "available_from": exc.available_from.isoformat() if exc.available_from else None,
            }
            return Response(body, status=status.HTTP_409_CONFLICT)
        return Response(SessionOutputSerializer(self.get_queryset().get(pk=started.pk)).data)
