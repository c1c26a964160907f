"""Patients, examinations and videos: scoped reads with filters; corrections by data managers."""

from __future__ import annotations

import datetime

import pytest
from rest_framework.test import APIClient

from records.models import Examination
from records.services import examination_update
from tests.factories import (
    ExaminationFactory,
    PatientFactory,
    ProjectFactory,
    UserFactory,
    VideoFactory,
)
from tests.records.api_support import Role, client_for, ids, member_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def project():
    return ProjectFactory.create()


@pytest.fixture
def reader(project):
    return member_of(project, Role.READER)


@pytest.fixture
def data_manager(project):
    return member_of(project, Role.DATA_MANAGER)


@pytest.fixture
def examination(project):
    return ExaminationFactory.create(patient__project=project)


@pytest.fixture
def other_examination():
    return ExaminationFactory.create()


# --- scoping --------------------------------------------------------------------------------------


def test_reader_lists_only_patients_examinations_and_videos_of_own_projects(
    reader, examination, other_examination
):
    video = VideoFactory.create(examination=examination)
    VideoFactory.create(examination=other_examination)
    client = client_for(reader)

    assert ids(client.get("/api/patients/")) == {examination.patient_id}
    assert ids(client.get("/api/examinations/")) == {examination.pk}
    assert ids(client.get("/api/videos/")) == {video.pk}


@pytest.mark.parametrize("kind", ["patients", "examinations", "videos"])
def test_reader_of_other_project_gets_404_for_record(reader, other_examination, kind):
    pk = {
        "patients": other_examination.patient_id,
        "examinations": other_examination.pk,
        "videos": VideoFactory.create(examination=other_examination).pk,
    }[kind]

    assert client_for(reader).get(f"/api/{kind}/{pk}/").status_code == 404


@pytest.mark.parametrize("kind", ["patients", "examinations", "videos"])
def test_anonymous_cannot_list_records(kind):
    assert APIClient().get(f"/api/{kind}/").status_code in (401, 403)


def test_superuser_sees_records_of_every_project(examination, other_examination):
    superuser = UserFactory.create(is_superuser=True)

    assert ids(client_for(superuser).get("/api/examinations/")) == {examination.pk, other_examination.pk}


def test_examination_detail_names_its_project(reader, examination, project):
    body = client_for(reader).get(f"/api/examinations/{examination.pk}/").json()

    assert body["project"] == project.pk
    assert body["patient"] == examination.patient_id
    assert body["anatomical_site"] == "colon"


# --- filters --------------------------------------------------------------------------------------


def test_patients_filter_by_project_and_cohort(project):
    second = ProjectFactory.create()
    user = member_of(project)
    member_of_second = PatientFactory.create(project=second, cohort="Erlangen")
    user.memberships.create(project=second)
    mine = PatientFactory.create(project=project, cohort="Munich")
    client = client_for(user)

    assert ids(client.get("/api/patients/", {"project": project.pk})) == {mine.pk}
    assert ids(client.get("/api/patients/", {"cohort": "Erlangen"})) == {member_of_second.pk}


def test_examinations_filter_by_patient_site_device_reference_and_date(project, reader):
    patient = PatientFactory.create(project=project)
    larynx = ExaminationFactory.create(
        patient=patient,
        anatomical_site="larynx",
        device="eCLE",
        reference_label="SCC",
        date=datetime.date(2024, 3, 1),
    )
    colon = ExaminationFactory.create(patient__project=project, date=datetime.date(2023, 1, 1))
    client = client_for(reader)

    assert ids(client.get("/api/examinations/", {"patient": patient.pk})) == {larynx.pk}
    assert ids(client.get("/api/examinations/", {"anatomical_site": "colon"})) == {colon.pk}
    assert ids(client.get("/api/examinations/", {"device": "eCLE"})) == {larynx.pk}
    assert ids(client.get("/api/examinations/", {"reference_label": "SCC"})) == {larynx.pk}
    assert ids(client.get("/api/examinations/", {"date_after": "2024-01-01"})) == {larynx.pk}
    assert ids(client.get("/api/examinations/", {"project": project.pk})) == {larynx.pk, colon.pk}


def test_videos_filter_by_examination_patient_site_and_kind(project, reader):
    larynx = ExaminationFactory.create(patient__project=project, anatomical_site="larynx")
    clip = VideoFactory.create(examination=larynx)
    sequence = VideoFactory.create(examination__patient__project=project, kind="images")
    client = client_for(reader)

    assert ids(client.get("/api/videos/", {"examination": larynx.pk})) == {clip.pk}
    assert ids(client.get("/api/videos/", {"patient": larynx.patient_id})) == {clip.pk}
    assert ids(client.get("/api/videos/", {"anatomical_site": "larynx"})) == {clip.pk}
    assert ids(client.get("/api/videos/", {"kind": "images"})) == {sequence.pk}
    assert ids(client.get("/api/videos/", {"project": project.pk})) == {clip.pk, sequence.pk}


# --- updates --------------------------------------------------------------------------------------


def test_data_manager_corrects_examination_site_device_date_and_reference(data_manager, examination):
    response = client_for(data_manager).patch(
        f"/api/examinations/{examination.pk}/",
        {
            "anatomical_site": "vocal fold",
            "device": "eCLE",
            "date": "2024-05-06",
            "reference_label": "neoplastic",
            "reference_source": "histopathology",
        },
        format="json",
    )

    assert response.status_code == 200, response.content
    examination.refresh_from_db()
    assert examination.anatomical_site == "vocal fold"
    assert examination.device == "eCLE"
    assert examination.date == datetime.date(2024, 5, 6)
    assert (examination.reference_label, examination.reference_source) == ("neoplastic", "histopathology")
    assert response.json()["anatomical_site"] == "vocal fold"


def test_project_admin_may_correct_examination(project, examination):
    admin = member_of(project, Role.ADMIN)

    response = client_for(admin).patch(f"/api/examinations/{examination.pk}/", {"date": None}, format="json")

    assert response.status_code == 200


@pytest.mark.parametrize("role", [Role.READER, Role.COORDINATOR])
def test_reader_or_coordinator_cannot_edit_examination(project, examination, role):
    user = member_of(project, role)

    response = client_for(user).patch(f"/api/examinations/{examination.pk}/", {"device": "x"}, format="json")

    assert response.status_code == 403
    examination.refresh_from_db()
    assert examination.device == "pCLE"


def test_data_manager_of_other_project_gets_404_for_examination_edit(data_manager, other_examination):
    response = client_for(data_manager).patch(
        f"/api/examinations/{other_examination.pk}/", {"device": "x"}, format="json"
    )

    assert response.status_code == 404


def test_examination_code_and_patient_cannot_be_changed_through_the_api(data_manager, examination):
    code, patient = examination.code, examination.patient_id

    client_for(data_manager).patch(
        f"/api/examinations/{examination.pk}/", {"code": "NEW", "patient": 999}, format="json"
    )

    examination.refresh_from_db()
    assert (examination.code, examination.patient_id) == (code, patient)


def test_examination_update_with_too_long_site_is_a_400(data_manager, examination):
    response = client_for(data_manager).patch(
        f"/api/examinations/{examination.pk}/", {"anatomical_site": "x" * 101}, format="json"
    )

    assert response.status_code == 400


def test_examination_put_is_not_offered(data_manager, examination):
    response = client_for(data_manager).put(
        f"/api/examinations/{examination.pk}/", {"device": "x"}, format="json"
    )

    assert response.status_code == 405


def test_data_manager_corrects_patient_cohort_sex_and_birth_year(project, data_manager):
    patient = PatientFactory.create(project=project)

    response = client_for(data_manager).patch(
        f"/api/patients/{patient.pk}/", {"cohort": "Erlangen", "sex": "F", "birth_year": 1960}, format="json"
    )

    assert response.status_code == 200, response.content
    patient.refresh_from_db()
    assert (patient.cohort, patient.sex, patient.birth_year) == ("Erlangen", "F", 1960)


def test_patient_pseudonym_cannot_be_changed(project, data_manager):
    patient = PatientFactory.create(project=project)
    pseudonym = patient.pseudonym

    client_for(data_manager).patch(f"/api/patients/{patient.pk}/", {"pseudonym": "Alice"}, format="json")

    patient.refresh_from_db()
    assert patient.pseudonym == pseudonym


def test_reader_cannot_edit_patient(project, reader):
    patient = PatientFactory.create(project=project)

    response = client_for(reader).patch(f"/api/patients/{patient.pk}/", {"cohort": "x"}, format="json")

    assert response.status_code == 403


def test_data_manager_of_other_project_gets_404_for_patient_edit(data_manager, other_examination):
    response = client_for(data_manager).patch(
        f"/api/patients/{other_examination.patient_id}/", {"cohort": "x"}, format="json"
    )

    assert response.status_code == 404


def test_videos_are_read_only(project, data_manager):
    video = VideoFactory.create(examination__patient__project=project)

    response = client_for(data_manager).patch(f"/api/videos/{video.pk}/", {"name": "x"}, format="json")

    assert response.status_code == 405


# --- examination_update service ---------------------------------------------------------------------


def test_examination_update_writes_only_the_fields_it_is_given(examination):
    Examination.objects.filter(pk=examination.pk).update(device="changed elsewhere")

    updated = examination_update(examination=examination, anatomical_site="larynx")

    assert updated.anatomical_site == "larynx"
    assert updated.device == "changed elsewhere"  # the stale in-memory value was not written back


def test_examination_update_can_clear_the_date(examination):
    examination_update(examination=examination, date=datetime.date(2024, 1, 1))

    updated = examination_update(examination=examination, date=None)

    assert updated.date is None
    examination.refresh_from_db()
    assert examination.date is None
