from django.urls import path
from rest_framework.routers import DefaultRouter

from inference.apis import (
    FramePredictApi,
    FramePredictionsApi,
    ModelVersionFlipsApi,
    ModelVersionViewSet,
    PredictionCamApi,
    ProjectClassifyApi,
    TaskGateViewSet,
)
from inference.training_apis import PretrainedWeightsApi, RetrainPolicyViewSet, TrainingRunViewSet

router = DefaultRouter()
router.register("model-versions", ModelVersionViewSet, basename="model-version")
router.register("task-gates", TaskGateViewSet, basename="task-gate")
router.register("training-runs", TrainingRunViewSet, basename="training-run")
router.register("retrain-policies", RetrainPolicyViewSet, basename="retrain-policy")

urlpatterns = [
    path("frames/<int:frame_id>/predictions/", FramePredictionsApi.as_view(), name="frame-predictions"),
    path("frames/<int:frame_id>/predict/", FramePredictApi.as_view(), name="frame-predict"),
    path("projects/<int:pk>/classify/", ProjectClassifyApi.as_view(), name="project-classify"),
    path("predictions/<int:pk>/cam/", PredictionCamApi.as_view(), name="prediction-cam"),
    path("model-versions/<int:pk>/flips/", ModelVersionFlipsApi.as_view(), name="model-version-flips"),
    path("pretrained-weights/", PretrainedWeightsApi.as_view(), name="pretrained-weights"),
    *router.urls,
]
