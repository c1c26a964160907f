from django.urls import path
from rest_framework.routers import DefaultRouter

from inference.apis import FramePredictionsApi, ModelVersionFlipsApi, ModelVersionViewSet, PredictionCamApi

router = DefaultRouter()
router.register("model-versions", ModelVersionViewSet, basename="model-version")

urlpatterns = [
    path("frames/<int:frame_id>/predictions/", FramePredictionsApi.as_view(), name="frame-predictions"),
    path("predictions/<int:pk>/cam/", PredictionCamApi.as_view(), name="prediction-cam"),
    path("model-versions/<int:pk>/flips/", ModelVersionFlipsApi.as_view(), name="model-version-flips"),
    *router.urls,
]
