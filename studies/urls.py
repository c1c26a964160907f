from django.urls import path
from rest_framework.routers import DefaultRouter

from studies.apis import ReaderStudyViewSet, ReadingSessionViewSet
from studies.results_apis import StudyReadingsCsvView, StudyResultsView

router = DefaultRouter()
router.register("studies", ReaderStudyViewSet, basename="reader-study")
router.register("reading-sessions", ReadingSessionViewSet, basename="reading-session")

# Before the router: its format-suffix routes would otherwise take readings.csv as the readings
# action with format=csv.
urlpatterns = [
    path("studies/<int:pk>/results/", StudyResultsView.as_view(), name="reader-study-results"),
    path("studies/<int:pk>/readings.csv", StudyReadingsCsvView.as_view(), name="reader-study-readings-csv"),
    *router.urls,
]
