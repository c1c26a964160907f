"""The Django admin loads for every model and, for non-superuser staff, shows only their projects."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from jobs.models import Job
from records.models import ProjectMembership
from tests.factories import (
    ExaminationFactory,
    FrameFactory,
    MembershipFactory,
    PatientFactory,
    ProjectFactory,
    UserFactory,
    VideoFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser_client() -> Client:
    client = Client()
    client.force_login(UserFactory.create(is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def rows() -> dict[str, object]:
    project = ProjectFactory.create()
    membership = MembershipFactory.create(project=project, role=ProjectMembership.Role.DATA_MANAGER)
    examination = ExaminationFactory.create(patient__project=project)
    video = VideoFactory.create(examination=examination)
    frame = FrameFactory.create(video=video, index_in_video=0, crop_box=[0, 0, 8, 6])
    job = Job.objects.create(kind="records.import", project=project, params={"sources": []})
    return {
        "records_project": project,
        "records_projectmembership": membership,
        "records_patient": examination.patient,
        "records_examination": examination,
        "records_video": video,
        "records_frame": frame,
        "jobs_job": job,
    }


MODELS = [
    "records_project",
    "records_projectmembership",
    "records_patient",
    "records_examination",
    "records_video",
    "records_frame",
    "jobs_job",
]


@pytest.mark.parametrize("model", MODELS)
def test_admin_changelist_loads_for_superuser(superuser_client, rows, model):
    response = superuser_client.get(reverse(f"admin:{model}_changelist"))

    assert response.status_code == 200


@pytest.mark.parametrize("model", MODELS)
def test_admin_change_page_loads_for_superuser(superuser_client, rows, model):
    response = superuser_client.get(reverse(f"admin:{model}_change", args=[rows[model].pk]))

    assert response.status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        {"q": "frame_"},
        {"examination__anatomical_site": "colon"},
        {"examination__device": "pCLE"},
        {"mode": "L"},
    ],
)
def test_frame_changelist_search_and_filters_work(superuser_client, rows, query):
    response = superuser_client.get(reverse("admin:records_frame_changelist"), query)

    assert response.status_code == 200
    assert rows["records_frame"].source_name in response.content.decode()


def test_job_changelist_filters_by_status_and_kind(superuser_client, rows):
    response = superuser_client.get(
        reverse("admin:jobs_job_changelist"), {"status__exact": "queued", "kind": "records.import"}
    )

    assert response.status_code == 200


def test_frame_changelist_shows_thumbnails_served_by_the_admin(superuser_client, rows):
    frame = rows["records_frame"]
    url = reverse("admin:records_frame_preview", args=[frame.pk])

    page = superuser_client.get(reverse("admin:records_frame_changelist")).content.decode()
    thumbnail = superuser_client.get(url)

    assert url in page
    assert thumbnail.status_code == 200
    assert thumbnail["Content-Type"] == "image/jpeg"
    assert thumbnail["X-Content-Type-Options"] == "nosniff"


def test_admin_thumbnail_needs_a_staff_login(rows):
    frame = rows["records_frame"]

    response = Client().get(reverse("admin:records_frame_preview", args=[frame.pk]))

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_frames_and_jobs_cannot_be_added_by_hand(superuser_client, rows):
    assert superuser_client.get(reverse("admin:records_frame_add")).status_code == 403
    assert superuser_client.get(reverse("admin:jobs_job_add")).status_code == 403


def test_frame_file_and_hash_are_read_only_in_the_admin(superuser_client, rows):
    frame = rows["records_frame"]
    sha256 = frame.sha256

    superuser_client.post(
        reverse("admin:records_frame_change", args=[frame.pk]),
        {"reference_label": "healthy", "sha256": "0" * 64, "file": "elsewhere.png"},
    )

    frame.refresh_from_db()
    assert frame.reference_label == "healthy"
    assert (frame.sha256, frame.file) == (sha256, f"frames/{sha256[:2]}/{sha256}.png")


@pytest.fixture
def data_manager_client(rows) -> Client:
    """A staff data manager of the rows' project in the "Data managers" group the migrations create."""
    user = UserFactory.create(is_staff=True)
    MembershipFactory.create(
        project=rows["records_project"], user=user, role=ProjectMembership.Role.DATA_MANAGER
    )
    user.groups.add(Group.objects.get(name="Data managers"))
    client = Client()
    client.force_login(user)
    return client


def test_staff_data_manager_sees_only_own_projects_rows(data_manager_client, rows):
    other_patient = PatientFactory.create()
    other_frame = FrameFactory.create()

    patients = data_manager_client.get(reverse("admin:records_patient_changelist")).content.decode()
    frames = data_manager_client.get(reverse("admin:records_frame_changelist")).content.decode()

    assert rows["records_patient"].pseudonym in patients
    assert other_patient.pseudonym not in patients
    assert rows["records_frame"].source_name in frames
    assert other_frame.source_name not in frames


def test_staff_data_manager_cannot_open_other_projects_rows(data_manager_client):
    other_frame = FrameFactory.create()

    change = data_manager_client.get(reverse("admin:records_frame_change", args=[other_frame.pk]))
    thumbnail = data_manager_client.get(reverse("admin:records_frame_preview", args=[other_frame.pk]))

    assert change.status_code == 302  # the admin redirects a hidden object to its index
    assert thumbnail.status_code == 404


def test_staff_data_manager_sees_own_projects_jobs_only(data_manager_client, rows):
    other = Job.objects.create(kind="records.import", project=ProjectFactory.create())

    response = data_manager_client.get(reverse("admin:jobs_job_changelist"))

    assert response.status_code == 200
    assert reverse("admin:jobs_job_change", args=[rows["jobs_job"].pk]) in response.content.decode()
    assert reverse("admin:jobs_job_change", args=[other.pk]) not in response.content.decode()


@pytest.mark.parametrize(
    "model", ["project", "projectmembership", "patient", "examination", "video", "frame"]
)
def test_data_manager_group_opens_every_records_changelist(data_manager_client, model):
    response = data_manager_client.get(reverse(f"admin:records_{model}_changelist"))

    assert response.status_code == 200
