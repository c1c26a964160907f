"""The exports API: who may export, parameter errors, progress, download (exports/apis.py)."""

from __future__ import annotations

import json
import zipfile
from io import BytesIO

import pytest

from exports.models import ExportSnapshot
from exports.tasks import export_job
from jobs.models import Job
from records.models import ProjectMembership
from tests.exports.support import build_dataset, diagnosis_task
from tests.factories import ProjectFactory, UserFactory
from tests.records.api_support import client_for, member_of

pytestmark = pytest.mark.django_db
Role = ProjectMembership.Role
URL = "/api/exports/"


@pytest.fixture
def data():
    return build_dataset(patients=6, frames_per_patient=2)


@pytest.fixture
def queued(monkeypatch):
    """Job ids the API enqueued (run here with `run_jobs` instead of through a broker)."""
    jobs: list[int] = []
    monkeypatch.setattr("exports.services._enqueue_export", jobs.append)
    return jobs


def run_jobs(job_ids: list[int]) -> None:
    for job_id in job_ids:
        export_job.apply(kwargs={"job_id": job_id})


def body(data, **overrides):
    values = {
        "projects": [data.project.pk],
        "task": data.task.key,
        "label_source": "majority",
        "split": {"scheme": "ratio", "train": 0.5, "val": 0.25, "test": 0.25, "seed": 4},
        "format": "imagefolder",
    }
    values.update(overrides)
    return values


@pytest.mark.parametrize("role", [Role.DATA_MANAGER, Role.COORDINATOR, Role.ADMIN])
def test_curators_create_an_export_that_a_cpu_job_builds(
    data, queued, django_capture_on_commit_callbacks, role
):
    user = member_of(data.project, role)
    client = client_for(user)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(URL, body(data), format="json")

    assert response.status_code == 202, response.content
    created = response.json()
    assert response["Location"] == f"/api/exports/{created['id']}/"
    assert created["status"] == "queued" and created["download_url"] is None
    assert created["job"]["kind"] == "exports.export" and created["job"]["status"] == "queued"
    assert created["split"] == {
        "scheme": "ratio",
        "train": 0.5,
        "val": 0.25,
        "test": 0.25,
        "seed": 4,
        "stratify": True,
    }
    assert queued == [created["job"]["id"]]

    run_jobs(queued)

    detail = client.get(response["Location"]).json()
    assert detail["status"] == "ready", detail["error"]
    assert detail["job"]["status"] == "succeeded" and detail["job"]["progress"] == 1.0
    assert detail["counts"]["frames"] == 12 and len(detail["snapshot_hash"]) == 64
    assert detail["job"]["result"]["snapshot_hash"] == detail["snapshot_hash"]
    assert detail["download_url"] == f"/api/exports/{created['id']}/download/"


def test_a_second_delivery_of_the_job_changes_nothing(data, queued, django_capture_on_commit_callbacks):
    client = client_for(member_of(data.project, Role.DATA_MANAGER))
    with django_capture_on_commit_callbacks(execute=True):
        snapshot_id = client.post(URL, body(data), format="json").json()["id"]
    run_jobs(queued)
    snapshot = ExportSnapshot.objects.get(pk=snapshot_id)
    before = (snapshot.file, snapshot.snapshot_hash, snapshot.finished_at)

    run_jobs(queued)

    snapshot.refresh_from_db()
    assert (snapshot.file, snapshot.snapshot_hash, snapshot.finished_at) == before
    assert Job.objects.get(pk=queued[0]).attempts == 1


@pytest.mark.parametrize("role", [Role.READER, Role.REVIEWER])
def test_readers_and_reviewers_may_not_export(data, queued, role):
    response = client_for(member_of(data.project, role)).post(URL, body(data), format="json")

    assert response.status_code == 403
    assert ExportSnapshot.objects.count() == 0 and queued == []


def test_a_project_of_which_the_caller_is_no_member_is_an_unknown_id(data, queued):
    other = build_dataset(patients=1, frames_per_patient=1)
    client = client_for(member_of(data.project, Role.DATA_MANAGER))

    response = client.post(URL, body(data, projects=[data.project.pk, other.project.pk]), format="json")
    missing = client.post(URL, body(data, projects=[999_999]), format="json")

    assert response.status_code == 400 and "projects" in response.json()
    assert missing.status_code == 400 and response.json()["projects"][0].replace(
        str(other.project.pk), "N"
    ) == (missing.json()["projects"][0].replace("999999", "N"))
    assert ExportSnapshot.objects.count() == 0


def test_exporting_several_projects_needs_the_role_in_each(data, queued):
    other = build_dataset(patients=2, frames_per_patient=1)
    user = member_of(data.project, Role.DATA_MANAGER)
    ProjectMembership.objects.create(project=other.project, user=user, role=Role.READER)
    client = client_for(user)

    assert (
        client.post(URL, body(data, projects=[data.project.pk, other.project.pk]), format="json").status_code
        == 403
    )

    ProjectMembership.objects.filter(project=other.project, user=user).update(role=Role.COORDINATOR)
    response = client.post(URL, body(data, projects=[data.project.pk, other.project.pk]), format="json")
    assert response.status_code == 202, response.content
    assert sorted(response.json()["projects"]) == sorted([data.project.pk, other.project.pk])


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({"format": "zip"}, "format", "not a valid choice"),
        ({"label_source": "votes"}, "label_source", "not a valid choice"),
        ({"task": "organ"}, "task", "No task 'organ'"),
        ({"split": {"scheme": "kfold", "k": 1}}, "split", "from 2"),
        ({"split": {"scheme": "ratio", "train": 0.9, "val": 0.2, "test": 0}}, "split", "must be 1"),
        ({"split": "ratio"}, "split", "An object"),
        ({"label_source": "every_annotator"}, "label_source", "one label per image"),
        ({"format": "hf", "include_images": False}, "include_images", "made of the images"),
        ({"filters": {"quality_task": "quality", "quality_values": ["fine"]}}, "filters", "Not choices"),
        ({"filters": {"quality_task": "quality"}}, "filters", "together"),
        ({"filters": {"label_state": "done"}}, "filters", "not a valid choice"),
        ({"filters": {"date_from": "2024-05-01", "date_to": "2024-01-01"}}, "filters", "before the start"),
        ({"near_duplicate_distance": 65}, "near_duplicate_distance", "less than or equal"),
        ({"shard_size": 0}, "shard_size", "greater than or equal"),
    ],
)
def test_bad_parameters_are_a_400_naming_the_field_and_store_nothing(
    data, queued, overrides, field, fragment
):
    client = client_for(member_of(data.project, Role.DATA_MANAGER))

    response = client.post(URL, body(data, **overrides), format="json")

    assert response.status_code == 400
    errors = response.json()
    assert set(errors) == {field}, errors
    assert fragment in json.dumps(errors[field])
    assert ExportSnapshot.objects.count() == 0 and Job.objects.count() == 0 and queued == []


def test_a_task_missing_from_one_of_the_projects_is_refused(data, queued):
    other = ProjectFactory.create()
    diagnosis_task(other, key="other")
    user = member_of(data.project, Role.ADMIN)
    ProjectMembership.objects.create(project=other, user=user, role=Role.ADMIN)

    response = client_for(user).post(URL, body(data, projects=[data.project.pk, other.pk]), format="json")

    assert response.status_code == 400
    assert response.json()["task"] == [f"No task 'diagnosis' in project(s) {other.slug}."]


def test_snapshots_are_listed_for_curators_of_all_their_projects_only(
    data, queued, django_capture_on_commit_callbacks
):
    manager = member_of(data.project, Role.DATA_MANAGER)
    reader = member_of(data.project, Role.READER)
    outsider = UserFactory.create()
    with django_capture_on_commit_callbacks(execute=True):
        snapshot_id = client_for(manager).post(URL, body(data), format="json").json()["id"]
    run_jobs(queued)
    detail = f"{URL}{snapshot_id}/"

    assert [row["id"] for row in client_for(manager).get(URL).json()["results"]] == [snapshot_id]
    assert client_for(manager).get(URL, {"project": data.project.pk + 1000}).json()["results"] == []
    for user in (reader, outsider):
        assert client_for(user).get(URL).json()["results"] == []
        assert client_for(user).get(detail).status_code == 404
        assert client_for(user).get(f"{detail}download/").status_code == 404


def test_download_streams_the_archive_as_an_attachment(data, queued, django_capture_on_commit_callbacks):
    client = client_for(member_of(data.project, Role.COORDINATOR))
    with django_capture_on_commit_callbacks(execute=True):
        snapshot_id = client.post(URL, body(data), format="json").json()["id"]
    download = f"{URL}{snapshot_id}/download/"

    early = client.get(download)
    assert early.status_code == 409 and early.json()["status"] == "queued"

    run_jobs(queued)
    response = client.get(download, HTTP_ACCEPT="text/html")

    snapshot = ExportSnapshot.objects.get(pk=snapshot_id)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == f'attachment; filename="{snapshot.download_name}"'
    assert response["ETag"] == f'"{snapshot.snapshot_hash}"'
    content = b"".join(response.streaming_content)  # type: ignore[attr-defined]
    assert len(content) == snapshot.file_bytes
    with zipfile.ZipFile(BytesIO(content)) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest["snapshot_hash"] == snapshot.snapshot_hash


def test_download_without_a_login_is_refused(data):
    assert client_for_anonymous().get(f"{URL}1/download/").status_code in (401, 403)


def client_for_anonymous():
    from rest_framework.test import APIClient

    return APIClient()


def test_the_schema_documents_the_exports_endpoints():
    client = client_for(UserFactory.create())
    schema = client.get("/api/schema/", {"format": "json"}).json()

    assert "post" in schema["paths"]["/api/exports/"]
    assert "202" in schema["paths"]["/api/exports/"]["post"]["responses"]
    download = schema["paths"]["/api/exports/{id}/download/"]["get"]["responses"]
    assert "application/zip" in download["200"]["content"]


def test_a_project_named_twice_counts_once(data, queued):
    client = client_for(member_of(data.project, Role.DATA_MANAGER))

    response = client.post(URL, body(data, projects=[data.project.pk, data.project.pk]), format="json")

    assert response.status_code == 202, response.content
    assert response.json()["projects"] == [data.project.pk]
