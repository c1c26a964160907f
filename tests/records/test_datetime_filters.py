"""Date-time filters (`created_after` / `created_before`) read any ISO 8601 offset Python reads.

Found by the schema fuzzer: an offset beyond PostgreSQL's +-15:59 ("+21:00") reached the query as
given and failed there (a 500). The filters now compare in UTC; an instant that leaves Python's
years once shifted to UTC is a 400.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from rest_framework.test import APIClient

from records.models import ProjectMembership
from tests.factories import ExaminationFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db


def _client_with_examination() -> APIClient:
    project = ProjectFactory.create()
    user = UserFactory.create()
    ProjectMembership.objects.create(project=project, user=user, role=ProjectMembership.Role.READER)
    ExaminationFactory.create(patient__project=project)
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.mark.parametrize(
    "path", ["/api/patients/", "/api/examinations/", "/api/videos/", "/api/frames/", "/api/jobs/"]
)
def test_an_offset_beyond_postgresql_range_is_compared_in_utc(path: str) -> None:
    client = _client_with_examination()

    before = client.get(path, {"created_before": "2999-01-01T00:00:00+21:00"})
    after = client.get(path, {"created_after": "2999-01-01T00:00:00-23:30"})

    assert before.status_code == 200, before.content
    assert after.status_code == 200 and after.json()["results"] == []


def test_the_offset_counts() -> None:
    client = _client_with_examination()
    created = client.get("/api/examinations/").json()["results"][0]["created_at"]
    # The same instant written with +21:00: only the notation differs, so it is still "after".
    instant = datetime.fromisoformat(created).astimezone(UTC)
    shifted = instant.astimezone(timezone(timedelta(hours=21))).isoformat()

    assert len(client.get("/api/examinations/", {"created_after": shifted}).json()["results"]) == 1
    later = (instant + timedelta(seconds=1)).astimezone(timezone(timedelta(hours=21))).isoformat()
    assert client.get("/api/examinations/", {"created_after": later}).json()["results"] == []


def test_an_instant_outside_python_years_once_in_utc_is_a_400() -> None:
    client = _client_with_examination()

    response = client.get("/api/examinations/", {"created_after": "0001-01-01T00:00:00+05:00"})

    assert response.status_code == 400
    assert "created" in str(response.json())
