from django.urls import path
from rest_framework.routers import DefaultRouter

from annotations.apis import (
    AnnotationApi,
    AnnotationViewSet,
    LabelChoiceViewSet,
    LabelPresetApplyApi,
    LabelPresetListApi,
    LabelTaskViewSet,
    WorkQueueApi,
)

router = DefaultRouter()
router.register("label-tasks", LabelTaskViewSet, basename="label-task")
router.register("label-choices", LabelChoiceViewSet, basename="label-choice")
router.register("annotations", AnnotationViewSet, basename="annotation")

urlpatterns = [
    path("label-presets/", LabelPresetListApi.as_view(), name="label-presets"),
    path("label-presets/apply/", LabelPresetApplyApi.as_view(), name="label-presets-apply"),
    path(
        "frames/<int:frame_id>/annotations/<int:task_id>/", AnnotationApi.as_view(), name="frame-annotation"
    ),
    path("projects/<int:project_id>/queue/", WorkQueueApi.as_view(), name="project-work-queue"),
    *router.urls,
]
