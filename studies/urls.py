from rest_framework.routers import DefaultRouter

from studies.apis import ReaderStudyViewSet, ReadingSessionViewSet

router = DefaultRouter()
router.register("studies", ReaderStudyViewSet, basename="reader-study")
router.register("reading-sessions", ReadingSessionViewSet, basename="reading-session")

urlpatterns = router.urls
