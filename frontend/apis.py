"""Endpoints that only the browser app needs: session login/logout and the labelling context.

The app signs in with Django's session (same origin, CSRF token in X-CSRFToken); scripts keep using
the token endpoint. Another project's frame is simply absent from the context, as everywhere in
CLEAR: the API never confirms that it exists.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import authenticate, login, logout
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle, BaseThrottle
from rest_framework.views import APIView

from inference.apis import PredictionOutputSerializer
from inference.models import ModelVersion, Prediction
from inference.selectors import AiVisibility, ai_visibility, with_prediction_details
from records.apis import MeOutputSerializer
from records.models import Frame
from records.selectors import frames_visible_to

# --- Session login --------------------------------------------------------------------------------


class SessionLoginThrottle(AnonRateThrottle):
    """Slows down password guessing through the app's login (keyed by client address)."""

    scope = "session-login"
    rate = "20/minute"


class SessionLoginInputSerializer(serializers.Serializer[Any]):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False, style={"input_type": "password"})


WRONG_CREDENTIALS = "Wrong username or password."


class SessionApi(APIView):
    """Sign in (POST) or out (DELETE) with a Django session, for the browser app."""

    authentication_classes = [SessionAuthentication]
    permission_classes = [AllowAny]

    def get_throttles(self) -> list[BaseThrottle]:
        return [SessionLoginThrottle()] if self.request.method == "POST" else []

    @extend_schema(
        operation_id="auth_session_create",
        request=SessionLoginInputSerializer,
        responses={
            200: MeOutputSerializer,
            400: OpenApiResponse(description="Wrong username or password (or a field missing)."),
            403: OpenApiResponse(description="The CSRF token is missing or wrong."),
        },
        description=(
            "Sign in with username and password: starts a session (cookie) and answers the user as "
            "/api/auth/me/ does. Send the csrftoken cookie's value in X-CSRFToken (the app page and "
            "/api/auth/me/ set it); the CSRF token changes on sign-in."
        ),
        auth=[],
        tags=["auth"],
    )
    def post(self, request: Request) -> Response:
        # DRF checks CSRF only for a request already signed in; a login form needs it too (login CSRF).
        SessionAuthentication().enforce_csrf(request)
        serializer = SessionLoginInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = authenticate(
            request._request,
            username=serializer.validated_data["username"],
            password=serializer.validated_data["password"],
        )
        if user is None:
            raise ValidationError({"detail": WRONG_CREDENTIALS})
        login(request._request, user)
        return Response(MeOutputSerializer(user).data)

    @extend_schema(
        operation_id="auth_session_destroy",
        request=None,
        responses={204: None},
        description="Sign out: ends the session. Answers 204 also when no one was signed in.",
        tags=["auth"],
    )
    def delete(self, request: Request) -> Response:
        logout(request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Labelling context ----------------------------------------------------------------------------

CONTEXT_MAX_FRAMES = 100


class LabelContextQuerySerializer(serializers.Serializer[Any]):
    frames = serializers.CharField(
        help_text=f"Comma-separated frame ids, at most {CONTEXT_MAX_FRAMES}.", max_length=2000
    )

    def validate_frames(self, raw: str) -> list[int]:
        try:
            ids = sorted({int(part) for part in raw.split(",") if part.strip()})
        except ValueError:
            raise ValidationError("Frame ids are integers separated by commas.") from None
        if not ids:
            raise ValidationError("Give at least one frame id.")
        if len(ids) > CONTEXT_MAX_FRAMES:
            raise ValidationError(f"At most {CONTEXT_MAX_FRAMES} frames per request.")
        return ids


class AiVisibilitySerializer(serializers.Serializer[Any]):
    prediction = serializers.BooleanField(help_text="Whether the caller may see model predictions here.")
    cam = serializers.BooleanField(help_text="Whether the caller may also see CAMs here.")


class FrameContextSerializer(serializers.Serializer[Any]):
    """One frame's context. Works with the view's `ai` ({project id: AiVisibility}), `predictions`
    ({frame id: [Prediction]}) and `active_model_tasks` ({project id: [task key]}) in its context."""

    frame = serializers.IntegerField(source="id")
    patient_pseudonym = serializers.CharField(source="examination.patient.pseudonym")
    examination = serializers.IntegerField(source="examination_id")
    examination_code = serializers.CharField(source="examination.code")
    anatomical_site = serializers.CharField(source="examination.anatomical_site")
    device = serializers.CharField(source="examination.device")
    video = serializers.IntegerField(source="video_id", allow_null=True)
    video_name = serializers.SerializerMethodField()
    index_in_video = serializers.IntegerField(allow_null=True)
    time_s = serializers.FloatField(allow_null=True)

    ai = serializers.SerializerMethodField(
        help_text="What model output the caller may see in the frame's project (selectors.ai_visibility)."
    )
    predictions = serializers.SerializerMethodField(
        help_text=(
            "The frame's predictions by the active model version of each task, as "
            "/api/frames/{id}/predictions/ gives them (cam_url null where CAMs are hidden); empty "
            "where predictions are hidden from the caller."
        )
    )
    active_model_tasks = serializers.SerializerMethodField(
        help_text=(
            "Keys of the project's tasks that have an active model version (empty where predictions "
            "are hidden): a task listed here without a prediction can be predicted on demand."
        )
    )

    def get_video_name(self, frame: Any) -> str | None:
        return frame.video.name if frame.video_id is not None else None

    def _visibility(self, frame: Frame) -> AiVisibility:
        return self.context["ai"][frame.examination.patient.project_id]

    @extend_schema_field(AiVisibilitySerializer)
    def get_ai(self, frame: Frame) -> dict[str, bool]:
        visibility = self._visibility(frame)
        return {"prediction": visibility.prediction, "cam": visibility.cam}

    @extend_schema_field(PredictionOutputSerializer(many=True))
    def get_predictions(self, frame: Frame) -> list[dict[str, Any]]:
        visibility = self._visibility(frame)
        if not visibility.prediction:
            return []
        rows = self.context["predictions"].get(frame.pk, [])
        context = {"request": self.context.get("request"), "cam_visible": visibility.cam}
        return list(PredictionOutputSerializer(rows, many=True, context=context).data)

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_active_model_tasks(self, frame: Frame) -> list[str]:
        if not self._visibility(frame).prediction:
            return []
        return list(self.context["active_model_tasks"].get(frame.examination.patient.project_id, []))


class LabelContextOutputSerializer(serializers.Serializer[Any]):
    frames = FrameContextSerializer(many=True)


class LabelContextApi(APIView):
    """What a reader sees beside a frame: patient pseudonym, examination, site, device, video, index,
    and the model's output where the caller may see it.

    Never a reference standard: the examinations API carries the histopathology, so the app reads the
    context here instead. Queries: one for the frames, one per distinct project for the caller's AI
    visibility (a queue page is one project), and, where predictions are visible, one for the active
    predictions of every frame and one for the tasks with an active model, whatever the number of
    frames. Predictions never leave the server for a caller they are hidden from: they are not even
    read."""

    @extend_schema(
        operation_id="label_context",
        parameters=[
            OpenApiParameter(
                "frames",
                OpenApiTypes.STR,
                OpenApiParameter.QUERY,
                required=True,
                description=f"Comma-separated frame ids, at most {CONTEXT_MAX_FRAMES}.",
            )
        ],
        responses={200: LabelContextOutputSerializer},
        description=(
            "Examination context of frames for the labelling workspace: patient pseudonym, examination "
            "code, anatomical site, device, video name and index, plus what model output the caller may "
            "see there (`ai`), the active model versions' predictions (`predictions`, empty where hidden) "
            "and the tasks that have an active model (`active_model_tasks`). Frames outside the caller's "
            "projects are left out. No reference standard is included."
        ),
        tags=["annotations"],
    )
    def get(self, request: Request) -> Response:
        query = LabelContextQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        frames = list(
            frames_visible_to(request.user)
            .filter(pk__in=query.validated_data["frames"])
            .select_related("examination__patient__project", "video")
            .order_by("pk")
        )
        visibility: dict[int, AiVisibility] = {}
        for frame in frames:
            project = frame.examination.patient.project
            if project.pk not in visibility:
                visibility[project.pk] = ai_visibility(request.user, project)
        shown_projects = [pk for pk, seen in visibility.items() if seen.prediction]
        predictions: dict[int, list[Prediction]] = {}
        active_tasks: dict[int, list[str]] = {}
        if shown_projects:
            shown_frames = [f.pk for f in frames if f.examination.patient.project_id in shown_projects]
            # As inference.selectors.frame_active_predictions, for a page of frames in one query.
            rows = with_prediction_details(
                Prediction.objects.filter(
                    frame_id__in=shown_frames, model_version__status=ModelVersion.Status.ACTIVE
                )
            ).order_by("frame_id", "task__order", "task_id")
            for row in rows:
                predictions.setdefault(row.frame_id, []).append(row)
            for project_id, key in (
                ModelVersion.objects.filter(project_id__in=shown_projects, status=ModelVersion.Status.ACTIVE)
                .order_by("task__order", "task_id")
                .values_list("project_id", "task__key")
            ):
                active_tasks.setdefault(project_id, []).append(key)
        context = {
            "request": request,
            "ai": visibility,
            "predictions": predictions,
            "active_model_tasks": active_tasks,
        }
        return Response(LabelContextOutputSerializer({"frames": frames}, context=context).data)
