from rest_framework.routers import DefaultRouter

from exports.apis import ExportSnapshotViewSet

router = DefaultRouter()
router.register("exports", ExportSnapshotViewSet, basename="export")

urlpatterns = router.urls
