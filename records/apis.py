"""REST API of projects and clinical records: thin views over records.selectors and records.services.

Every queryset comes from a `*_visible_to(user)` selector, so a row of another project is simply not
found (404), never forbidden (403): the API does not confirm that it exists. Roles inside a project
decide what a member may do beyond reading (403).
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable, Iterable
from pathlib import PurePosixPath
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.http import FileResponse, Http404, HttpRequest, HttpResponseBase, HttpResponseNotModified
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.http import parse_etags
from django.views.decorators.csrf import ensure_csrf_cookie
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from jobs.apis import JobOutputSerializer
from records import media
from records.filters import ExaminationFilter, FrameFilter, PatientFilter, VideoFilter
from records.importing.options import ImportOptions
from records.models import Examination, Frame, Patient, Project, ProjectMembership, Video
from records.previews import frame_preview_ensure
from records.selectors import (
    AnyUser,
    examinations_visible_to,
    frames_visible_to,
    patients_visible_to,
    project_members,
    projects_showing_reference_to,
    projects_with_role,
    role_in_project,
    videos_visible_to,
)
from records.services import (
    examination_update,
    import_upload_create,
    patient_update,
    project_create,
    project_update,
)
from records.sniffing import content_problem, read_head

Role = ProjectMembership.Role
EDITOR_ROLES = frozenset({Role.DATA_MANAGER, Role.ADMIN})
MEMBER_MANAGER_ROLES = frozenset({Role.COORDINATOR, Role.ADMIN})


def require_role(user: AnyUser, project: Project, roles: frozenset[str], action: str) -> None:
    """403 unless the user holds one of `roles` in `project` (a superuser counts as admin)."""
    if role_in_project(user, project) not in roles:
        allowed = " or ".join(sorted(Role(role).label for role in roles))
        raise PermissionDenied(f"Only a {allowed} of this project may {action}.")


# --- Auth -----------------------------------------------------------------------------------------


class TokenOutputSerializer(serializers.Serializer[Token]):
    token = serializers.CharField(source="key", read_only=True)


class LoginThrottle(AnonRateThrottle):
    """Slows down password guessing against the token endpoint (keyed by client address)."""

    scope = "login"
    rate = "10/minute"


class TokenObtainApi(APIView):
    """Exchange a username and password for an API token, for scripts (the browser uses its session)."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes = [LoginThrottle]

    @extend_schema(
        operation_id="auth_token_create",
        request=AuthTokenSerializer,
        responses={200: TokenOutputSerializer},
        auth=[],
        tags=["auth"],
    )
    def post(self, request: Request) -> Response:
        serializer = AuthTokenSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        token, _ = Token.objects.get_or_create(user=serializer.validated_data["user"])
        return Response(TokenOutputSerializer(token).data)


class ProjectRoleSerializer(serializers.ModelSerializer[Project]):
    role = serializers.ChoiceField(choices=Role.choices, read_only=True, allow_null=True)

    class Meta:
        model = Project
        fields = ["id", "slug", "name", "role"]
        read_only_fields = fields


class MeOutputSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField(read_only=True)
    username = serializers.CharField(read_only=True)
    first_name = serializers.CharField(read_only=True)
    last_name = serializers.CharField(read_only=True)
    # A CharField: accounts need no email address, and "" is not a valid `format: email` value.
    email = serializers.CharField(read_only=True, help_text="The account's email address, or empty.")
    is_staff = serializers.BooleanField(read_only=True)
    is_superuser = serializers.BooleanField(read_only=True)
    projects = serializers.SerializerMethodField()

    @extend_schema_field(ProjectRoleSerializer(many=True))
    def get_projects(self, user: AnyUser) -> Any:
        return ProjectRoleSerializer(projects_with_role(user), many=True).data


class MeApi(APIView):
    """The signed-in user and their role in each of their projects.

    Also sets the CSRF cookie, so that the browser app can call this first and then send the token
    back in X-CSRFToken with every unsafe request.
    """

    @extend_schema(operation_id="auth_me_retrieve", responses={200: MeOutputSerializer}, tags=["auth"])
    @method_decorator(ensure_csrf_cookie)
    def get(self, request: Request) -> Response:
        return Response(MeOutputSerializer(request.user).data)


# --- Projects -------------------------------------------------------------------------------------


class ProjectOutputSerializer(serializers.ModelSerializer[Project]):
    role = serializers.ChoiceField(
        choices=Role.choices, read_only=True, allow_null=True, help_text="The caller's role here."
    )

    class Meta:
        model = Project
        fields = ["id", "name", "slug", "description", "ai_assistance", "created_at", "role"]
        read_only_fields = fields


class ProjectUpdateInputSerializer(serializers.Serializer[Project]):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    ai_assistance = serializers.ChoiceField(choices=Project.AiAssistance.choices, required=False)


class ProjectCreateInputSerializer(serializers.Serializer[Project]):
    name = serializers.CharField(max_length=200)
    slug = serializers.SlugField(max_length=80)
    description = serializers.CharField(required=False, allow_blank=True, default="")

    def validate_slug(self, value: str) -> str:
        if Project.objects.filter(slug=value).exists():
            raise ValidationError("A project with this slug already exists.")
        return value


class MemberOutputSerializer(serializers.ModelSerializer[ProjectMembership]):
    user = serializers.IntegerField(source="user_id", read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)
    first_name = serializers.CharField(source="user.first_name", read_only=True)
    last_name = serializers.CharField(source="user.last_name", read_only=True)

    class Meta:
        model = ProjectMembership
        fields = ["id", "user", "username", "first_name", "last_name", "role", "created_at"]
        read_only_fields = fields


IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"})
ARCHIVE_EXTENSIONS = frozenset({".zip"})
METADATA_EXTENSIONS = frozenset({".csv", ".xlsx"})


def video_extensions() -> frozenset[str]:
    """Video extensions from settings, normalised to lower case with a leading dot."""
    extensions: list[str] = settings.CLEAR_ALLOWED_VIDEO_EXTENSIONS
    return frozenset(f".{ext.lower().lstrip('.')}" for ext in extensions)


def safe_upload_name(raw: str) -> str:
    """The bare file name of an upload: no folders, no control characters, not hidden, not empty.

    The multipart parser already drops folders; this is the second line of defence, and it also
    rejects names a client could use to confuse the import (".", "..", ".hidden").
    """
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(char for char in name if char.isprintable()).strip()
    if not name or name.startswith(".") or len(name) > 200:
        raise ValidationError(f"{raw!r} is not an acceptable file name.")
    return name


def _extension(name: str) -> str:
    return PurePosixPath(name).suffix.lower()


class ImportCreateInputSerializer(serializers.Serializer[Any]):
    files = serializers.ListField(
        child=serializers.FileField(allow_empty_file=False, use_url=False),
        allow_empty=False,
        help_text=(
            "Images, ZIP archives (per-patient folders) or videos; repeat the field for several "
            "(at most DATA_UPLOAD_MAX_NUMBER_FILES per request: put many images in a ZIP)."
        ),
    )
    metadata = serializers.FileField(
        required=False, use_url=False, help_text="Optional metadata sheet (.csv or .xlsx)."
    )
    every_nth = serializers.IntegerField(min_value=1, max_value=100_000, default=1)
    crop = serializers.BooleanField(default=False)
    default_examination = serializers.CharField(max_length=100, default="E1")
    default_patient = serializers.CharField(max_length=200, required=False, allow_blank=True)
    device = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    anatomical_site = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")

    def validate_files(self, files: list[Any]) -> list[Any]:
        allowed = IMAGE_EXTENSIONS | ARCHIVE_EXTENSIONS | video_extensions()
        errors: list[str] = []
        seen: set[str] = set()
        for upload in files:
            try:
                name = safe_upload_name(upload.name or "")
            except ValidationError as exc:
                errors.extend(str(detail) for detail in exc.detail)
                continue
            extension = _extension(name)
            if extension not in allowed:
                errors.append(
                    f"{name}: files of type {extension or '(none)'} cannot be imported; "
                    f"accepted: {', '.join(sorted(allowed))}."
                )
            elif name.lower() in seen:
                errors.append(f"{name}: uploaded twice; every file needs a distinct name.")
            elif problem := content_problem(
                name, extension, read_head(upload), video_extensions=video_extensions()
            ):
                # By content, not by name or Content-Type (records/sniffing.py).
                errors.append(problem)
            seen.add(name.lower())
            upload.name = name
        if errors:
            raise ValidationError(errors)
        return files

    def validate_metadata(self, metadata: Any) -> Any:
        name = safe_upload_name(metadata.name or "")
        if _extension(name) not in METADATA_EXTENSIONS:
            raise ValidationError(f"{name}: the metadata sheet must be a .csv or .xlsx file.")
        metadata.name = name
        return metadata

    def validate_default_patient(self, value: str) -> str | None:
        return value.strip() or None

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        uploads = [*attrs["files"], *([attrs["metadata"]] if attrs.get("metadata") else [])]
        total = sum(upload.size or 0 for upload in uploads)
        limit = settings.CLEAR_MAX_UPLOAD_BYTES
        if total > limit:
            raise ValidationError({"files": [f"The upload is {total} bytes; the limit is {limit} bytes."]})
        return attrs


@extend_schema_view(
    list=extend_schema(description="Projects the caller belongs to (all for a superuser), with their role."),
    retrieve=extend_schema(description="One of the caller's projects, with their role."),
)
class ProjectViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Project]):
    serializer_class = ProjectOutputSerializer
    filterset_fields = ["slug"]

    def get_queryset(self) -> QuerySet[Project]:
        return projects_with_role(self.request.user)

    @extend_schema(
        request=ProjectCreateInputSerializer,
        responses={201: ProjectOutputSerializer},
        description="Create a project (staff or superuser); the creator becomes its admin.",
    )
    def create(self, request: Request) -> Response:
        if not (request.user.is_staff or request.user.is_superuser):
            raise PermissionDenied("Only staff may create projects.")
        serializer = ProjectCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        project = project_create(created_by_id=request.user.pk, **serializer.validated_data)
        output = ProjectOutputSerializer(projects_with_role(request.user).get(pk=project.pk))
        return Response(output.data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=ProjectUpdateInputSerializer,
        responses={200: ProjectOutputSerializer},
        description=(
            "Rename a project, edit its description or set what model output its readers see while "
            "labelling (`ai_assistance`; coordinators and admins)."
        ),
    )
    def partial_update(self, request: Request, pk: str) -> Response:
        project = self.get_object()
        require_role(request.user, project, MEMBER_MANAGER_ROLES, "edit the project")
        serializer = ProjectUpdateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        project_update(project=project, **serializer.validated_data)
        return Response(ProjectOutputSerializer(projects_with_role(request.user).get(pk=project.pk)).data)

    @extend_schema(
        responses={200: MemberOutputSerializer(many=True)},
        description="Members of the project and their roles (project admins and coordinators only).",
    )
    @action(detail=True, methods=["get"], filter_backends=[])
    def members(self, request: Request, pk: str) -> Response:
        project = self.get_object()
        require_role(request.user, project, MEMBER_MANAGER_ROLES, "list its members")
        page = self.paginate_queryset(project_members(project))  # type: ignore[arg-type]
        return self.get_paginated_response(MemberOutputSerializer(page, many=True).data)

    @extend_schema(
        request={"multipart/form-data": ImportCreateInputSerializer},
        responses={202: JobOutputSerializer},
        description=(
            "Upload images, ZIP archives or videos (and optionally a metadata sheet) for import into "
            "this project (data managers and admins). Answers 202 with the queued job; follow its "
            "progress at the Location header."
        ),
    )
    @action(
        detail=True,
        methods=["post"],
        url_path="imports",
        parser_classes=[MultiPartParser],
        filter_backends=[],
        pagination_class=None,
    )
    def imports(self, request: Request, pk: str) -> Response:
        project = self.get_object()
        require_role(request.user, project, EDITOR_ROLES, "import data")
        _refuse_oversized_body(request)
        serializer = ImportCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        files = data.pop("files")
        metadata = data.pop("metadata", None)
        job = import_upload_create(
            project=project,
            files=files,
            metadata=metadata,
            options=ImportOptions(**data),
            created_by_id=request.user.pk,
        )
        headers = {"Location": reverse("job-detail", kwargs={"pk": job.pk})}
        return Response(JobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED, headers=headers)


# Multipart framing (boundaries, part headers) on top of the files themselves.
_MULTIPART_SLACK_BYTES = 1024 * 1024


def _refuse_oversized_body(request: Request) -> None:
    """Refuse an oversized upload by its Content-Length before the serializer reads the files.

    (A session request's CSRF check may already have parsed the form; Django spools large files to
    temporary files that it deletes after the request, and the reverse proxy caps the body too.)
    """
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    limit = settings.CLEAR_MAX_UPLOAD_BYTES
    if length > limit + _MULTIPART_SLACK_BYTES:
        raise ValidationError({"files": [f"The upload is {length} bytes; the limit is {limit} bytes."]})


# --- Patients and examinations --------------------------------------------------------------------


SEX_CHOICES = [("", "unknown"), ("F", "female"), ("M", "male"), ("X", "other")]


class PatientOutputSerializer(serializers.ModelSerializer[Patient]):
    # Declared so that the schema admits "" (unknown): DRF's read-only model field drops allow_blank.
    sex = serializers.ChoiceField(choices=SEX_CHOICES, allow_blank=True, read_only=True)

    class Meta:
        model = Patient
        fields = ["id", "project", "pseudonym", "cohort", "sex", "birth_year", "created_at"]
        read_only_fields = fields


class PatientUpdateInputSerializer(serializers.Serializer[Patient]):
    cohort = serializers.CharField(max_length=100, allow_blank=True, required=False)
    sex = serializers.ChoiceField(choices=SEX_CHOICES, required=False)
    birth_year = serializers.IntegerField(min_value=1900, max_value=2100, allow_null=True, required=False)


class PatientViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Patient]):
    serializer_class = PatientOutputSerializer
    filterset_class = PatientFilter

    def get_queryset(self) -> QuerySet[Patient]:
        return patients_visible_to(self.request.user)

    @extend_schema(
        request=PatientUpdateInputSerializer,
        responses={200: PatientOutputSerializer},
        description="Correct a patient's cohort, sex or birth year (data managers and admins).",
    )
    def partial_update(self, request: Request, pk: str) -> Response:
        patient = self.get_object()
        require_role(request.user, patient.project, EDITOR_ROLES, "edit patients")
        serializer = PatientUpdateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        patient = patient_update(patient=patient, **serializer.validated_data)
        return Response(PatientOutputSerializer(patient).data)


class HidesReferenceFromReaders:
    """Blanks `reference_label` / `reference_source` unless the object's project is in the
    serializer context's `reference_projects` (records.selectors.projects_showing_reference_to)."""

    reference_fields = ("reference_label", "reference_source")

    def hide_reference(self, data: dict[str, Any], project_id: Callable[[], int]) -> dict[str, Any]:
        # `project_id` is only called where hiding was asked for: serializers reused without the
        # context (e.g. the work queue's frames, which carry no reference) cost no extra query.
        allowed = getattr(self, "context", {}).get("reference_projects")
        if allowed is not None and project_id() not in allowed:
            for name in self.reference_fields:
                if name in data:
                    data[name] = ""
        return data


class ExaminationOutputSerializer(HidesReferenceFromReaders, serializers.ModelSerializer[Examination]):
    project = serializers.IntegerField(source="patient.project_id", read_only=True)

    def to_representation(self, instance: Examination) -> dict[str, Any]:
        data = dict(super().to_representation(instance))
        return self.hide_reference(data, lambda: instance.patient.project_id)

    class Meta:
        model = Examination
        fields = [
            "id",
            "project",
            "patient",
            "code",
            "date",
            "device",
            "anatomical_site",
            "reference_label",
            "reference_source",
            "created_at",
        ]
        read_only_fields = fields


class ExaminationUpdateInputSerializer(serializers.Serializer[Examination]):
    date = serializers.DateField(allow_null=True, required=False)
    device = serializers.CharField(max_length=100, allow_blank=True, required=False)
    anatomical_site = serializers.CharField(max_length=100, allow_blank=True, required=False)
    reference_label = serializers.CharField(max_length=100, allow_blank=True, required=False)
    reference_source = serializers.CharField(max_length=100, allow_blank=True, required=False)


class ExaminationViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Examination]
):
    serializer_class = ExaminationOutputSerializer
    filterset_class = ExaminationFilter

    def get_queryset(self) -> QuerySet[Examination]:
        return examinations_visible_to(self.request.user).select_related("patient")

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()
        context["reference_projects"] = projects_showing_reference_to(self.request.user)
        return context

    @extend_schema(
        request=ExaminationUpdateInputSerializer,
        responses={200: ExaminationOutputSerializer},
        description=(
            "Correct an examination's date, device, anatomical site or reference standard "
            "(data managers and admins)."
        ),
    )
    def partial_update(self, request: Request, pk: str) -> Response:
        examination = self.get_object()
        require_role(request.user, examination.patient.project, EDITOR_ROLES, "edit examinations")
        serializer = ExaminationUpdateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        examination = examination_update(examination=examination, **serializer.validated_data)
        return Response(ExaminationOutputSerializer(examination).data)


# --- Videos and frames ----------------------------------------------------------------------------


class VideoOutputSerializer(serializers.ModelSerializer[Video]):
    class Meta:
        model = Video
        fields = [
            "id",
            "examination",
            "name",
            "kind",
            "source_sha256",
            "codec",
            "frame_rate",
            "frame_count",
            "duration_s",
            "width",
            "height",
            "every_nth",
            "created_at",
        ]
        read_only_fields = fields


class VideoViewSet(viewsets.ReadOnlyModelViewSet[Video]):
    serializer_class = VideoOutputSerializer
    filterset_class = VideoFilter

    def get_queryset(self) -> QuerySet[Video]:
        return videos_visible_to(self.request.user)


class FrameOutputSerializer(HidesReferenceFromReaders, serializers.ModelSerializer[Frame]):
    crop_box = serializers.ListField(
        child=serializers.IntegerField(),
        min_length=4,
        max_length=4,
        allow_null=True,
        read_only=True,
        help_text="[left, top, right, bottom] of the field of view, or null.",
    )
    image_url = serializers.HyperlinkedIdentityField(view_name="frame-image", read_only=True)
    preview_url = serializers.HyperlinkedIdentityField(view_name="frame-preview", read_only=True)

    def to_representation(self, instance: Frame) -> dict[str, Any]:
        data = dict(super().to_representation(instance))
        return self.hide_reference(data, lambda: instance.examination.patient.project_id)

    class Meta:
        model = Frame
        fields = [
            "id",
            "examination",
            "video",
            "index_in_video",
            "time_s",
            "source_name",
            "sha256",
            "file_bytes",
            "width",
            "height",
            "mode",
            "preview_width",
            "preview_height",
            "crop_box",
            "reference_label",
            "created_at",
            "image_url",
            "preview_url",
        ]
        read_only_fields = fields


class IgnoreAcceptNegotiation(BaseContentNegotiation):
    """File endpoints answer with the file whatever the Accept header says (an <img> asks for
    image/avif, image/webp, ...); errors still come back as JSON."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser | None:
        return next(iter(parsers), None)

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


IMMUTABLE = "private, max-age=31536000, immutable"
_CONTENT_TYPES = {".png": "image/png", ".webp": "image/webp", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


def _etag_matches(request: Request | HttpRequest, etag: str) -> bool:
    """Weak comparison as RFC 9110 asks for If-None-Match (W/"x" matches "x")."""
    wanted = parse_etags(request.headers.get("If-None-Match", ""))
    return "*" in wanted or any(tag.removeprefix("W/") == etag for tag in wanted)


def serve_content_addressed(
    request: Request | HttpRequest, relative: str, etag_value: str
) -> HttpResponseBase:
    """Stream a content-addressed media file; its name never changes content, so clients may cache
    it for good and revalidate with the ETag."""
    etag = f'"{etag_value}"'
    response: HttpResponseBase
    if _etag_matches(request, etag):
        response = HttpResponseNotModified()
    else:
        try:
            handle = media.open_file(relative)
        except (OSError, ValueError) as exc:
            raise Http404("The image file is missing.") from exc
        suffix = PurePosixPath(relative).suffix.lower()
        content_type = _CONTENT_TYPES.get(suffix) or mimetypes.guess_type(relative)[0]
        response = FileResponse(handle, content_type=content_type or "application/octet-stream")
    response["ETag"] = etag
    response["Cache-Control"] = IMMUTABLE
    response["X-Content-Type-Options"] = "nosniff"
    return response


def serve_frame_preview(request: Request | HttpRequest, frame: Frame) -> HttpResponseBase:
    """The frame's preview, rendered first if the previews job has not reached the frame yet."""
    try:
        frame_preview_ensure(frame=frame)
    except OSError as exc:
        raise Http404("The image file is missing.") from exc
    return serve_content_addressed(request, frame.preview_file, f"{frame.sha256}-preview")


_FILE_ACTION: dict[str, Any] = {
    "detail": True,
    "methods": ["get"],
    "filter_backends": [],
    "pagination_class": None,
    "content_negotiation_class": IgnoreAcceptNegotiation,
}


def _image_schema(content_type: str, what: str) -> Any:
    return extend_schema(
        description=(
            f"The frame's {what} ({content_type}). Content-addressed: ETag is its sha256, "
            "Cache-Control is immutable, If-None-Match answers 304."
        ),
        responses={
            (200, content_type): OpenApiResponse(OpenApiTypes.BINARY, description=f"The {what}."),
            304: OpenApiResponse(description="Not modified (If-None-Match matched the ETag)."),
            404: OpenApiResponse(description="No such frame in the caller's projects."),
        },
    )


class FrameViewSet(viewsets.ReadOnlyModelViewSet[Frame]):
    serializer_class = FrameOutputSerializer
    filterset_class = FrameFilter

    def get_queryset(self) -> QuerySet[Frame]:
        return frames_visible_to(self.request.user).select_related("examination__patient")

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()
        context["reference_projects"] = projects_showing_reference_to(self.request.user)
        return context

    @_image_schema("image/png", "full-resolution image")
    @action(**_FILE_ACTION)
    def image(self, request: Request, pk: str) -> HttpResponseBase:
        frame = self.get_object()
        return serve_content_addressed(request, frame.file, frame.sha256)

    @_image_schema("image/jpeg", "preview")
    @action(**_FILE_ACTION)
    def preview(self, request: Request, pk: str) -> HttpResponseBase:
        return serve_frame_preview(request, self.get_object())
