from django.urls import path
from rest_framework.routers import DefaultRouter

from annotations.apis import (
    AdjudicationApi,
    AdjudicationViewSet,
    AnnotationApi,
    AnnotationViewSet,
    LabelChoiceViewSet,
    LabelPresetApplyApi,
    LabelPresetListApi,
    LabelTaskViewSet,
    ReviewQueueApi,
    WorkQueueApi,
)
from annotations.statistics_apis import ProjectAgreementApi, RatingsStatisticsApi

router = DefaultRouter()
router.register("label-tasks", LabelTaskViewSet, basename="label-task")
router.register("label-choices", LabelChoiceViewSet, basename="label-choice")
router.register("annotations", AnnotationViewSet, basename="annotation")
router.register("adjudications", AdjudicationViewSet, basename="adjudication")

urlpatterns = [
    path("label-presets/", LabelPresetListApi.as_view(), name="label-presets"),
    path("label-presets/apply/", LabelPresetApplyApi.as_view(), name="label-presets-apply"),
    path(
        "frames/<int:frame_id>/annotations/<int:task_id>/", AnnotationApi.as_view(), name="frame-annotation"
    ),
    path("projects/<int:project_id>/queue/", WorkQueueApi.as_view(), name="project-work-queue"),
    path(
        "frames/<int:frame_id>/adjudications/<int:task_id>/",
        AdjudicationApi.as_view(),
        name="frame-adjudication",
    ),
    path("projects/<int:project_id>/review/", ReviewQueueApi.as_view(), name="project-review-queue"),
    path("statistics/ratings/", RatingsStatisticsApi.as_view(), name="statistics-ratings"),
    path("projects/<int:project_id>/agreement/", ProjectAgreementApi.as_view(), name="project-agreement"),
    *router.urls,
]
