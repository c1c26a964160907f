from django.urls import path
from rest_framework.routers import DefaultRouter

from records.apis import (
    ExaminationViewSet,
    FrameViewSet,
    MeApi,
    PatientViewSet,
    ProjectViewSet,
    TokenObtainApi,
    VideoViewSet,
)

router = DefaultRouter()
router.register("projects", ProjectViewSet, basename="project")
router.register("patients", PatientViewSet, basename="patient")
router.register("examinations", ExaminationViewSet, basename="examination")
router.register("videos", VideoViewSet, basename="video")
router.register("frames", FrameViewSet, basename="frame")

urlpatterns = [
    path("auth/token/", TokenObtainApi.as_view(), name="auth-token"),
    path("auth/me/", MeApi.as_view(), name="auth-me"),
    *router.urls,
]
