"""Jobs API: progress of the caller's jobs; another project's job is a 404."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from jobs.models import Job
from tests.factories import ProjectFactory, UserFactory
from tests.records.api_support import Role, client_for, ids, member_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def project():
    return ProjectFactory.create()


@pytest.fixture
def reader(project):
    return member_of(project, Role.READER)


def make_job(**fields) -> Job:
    fields.setdefault("kind", "records.import")
    return Job.objects.create(**fields)


def test_member_sees_jobs_of_own_projects_and_own_projectless_jobs(project, reader):
    mine = make_job(project=project)
    own_projectless = make_job(kind="inference.score", created_by=reader)
    make_job(project=ProjectFactory.create())
    make_job(kind="inference.score", created_by=UserFactory.create())

    assert ids(client_for(reader).get("/api/jobs/")) == {mine.pk, own_projectless.pk}


def test_superuser_sees_every_job():
    jobs = [make_job(project=ProjectFactory.create()), make_job(created_by=UserFactory.create())]
    superuser = UserFactory.create(is_superuser=True)

    assert ids(client_for(superuser).get("/api/jobs/")) == {job.pk for job in jobs}


def test_job_detail_reports_progress(project, reader):
    job = make_job(project=project, status=Job.Status.RUNNING, progress_done=25, progress_total=100)

    body = client_for(reader).get(f"/api/jobs/{job.pk}/").json()

    assert body["status"] == "running"
    assert body["progress"] == 0.25
    assert (body["progress_done"], body["progress_total"]) == (25, 100)
    assert "params" not in body  # server paths of staged uploads stay on the server


def test_job_progress_is_null_while_the_total_is_unknown(project, reader):
    job = make_job(project=project, status=Job.Status.RUNNING, progress_done=3)

    assert client_for(reader).get(f"/api/jobs/{job.pk}/").json()["progress"] is None


def test_member_of_other_project_gets_404_for_job(reader):
    other = make_job(project=ProjectFactory.create())

    assert client_for(reader).get(f"/api/jobs/{other.pk}/").status_code == 404


def test_other_users_projectless_job_is_a_404(reader):
    other = make_job(created_by=UserFactory.create())

    assert client_for(reader).get(f"/api/jobs/{other.pk}/").status_code == 404


def test_jobs_filter_by_status_kind_and_project(project, reader):
    second = ProjectFactory.create()
    reader.memberships.create(project=second)
    failed = make_job(project=project, status=Job.Status.FAILED)
    scoring = make_job(project=second, kind="inference.score")
    client = client_for(reader)

    assert ids(client.get("/api/jobs/", {"status": "failed"})) == {failed.pk}
    assert ids(client.get("/api/jobs/", {"kind": "inference.score"})) == {scoring.pk}
    assert ids(client.get("/api/jobs/", {"project": second.pk})) == {scoring.pk}


def test_jobs_list_newest_first(project, reader):
    jobs = [make_job(project=project) for _ in range(3)]

    rows = client_for(reader).get("/api/jobs/").json()["results"]

    assert [row["id"] for row in rows] == [job.pk for job in reversed(jobs)]


def test_jobs_are_read_only(project):
    admin = member_of(project, Role.ADMIN)
    job = make_job(project=project)
    client = client_for(admin)

    assert client.post("/api/jobs/", {"kind": "x"}, format="json").status_code == 405
    assert client.delete(f"/api/jobs/{job.pk}/").status_code == 405


def test_anonymous_cannot_read_jobs(project):
    job = make_job(project=project)

    assert APIClient().get("/api/jobs/").status_code in (401, 403)
    assert APIClient().get(f"/api/jobs/{job.pk}/").status_code in (401, 403)


def test_a_job_is_stopped_by_its_starter_or_a_coordinator_and_not_once_finished(project, reader):
    coordinator = member_of(project, Role.COORDINATOR)
    queued = make_job(project=project)
    running = make_job(project=project, status=Job.Status.RUNNING, created_by=reader)
    finished = make_job(project=project, status=Job.Status.SUCCEEDED, created_by=reader)

    assert client_for(reader).post(f"/api/jobs/{queued.pk}/cancel/").status_code == 403
    other = client_for(member_of(ProjectFactory.create(), Role.COORDINATOR))
    assert other.post(f"/api/jobs/{queued.pk}/cancel/").status_code == 404

    stopped = client_for(coordinator).post(f"/api/jobs/{queued.pk}/cancel/")
    assert stopped.status_code == 200 and stopped.json()["status"] == "cancelled"
    asked = client_for(reader).post(f"/api/jobs/{running.pk}/cancel/")  # their own job
    assert asked.status_code == 200
    assert asked.json()["status"] == "running" and asked.json()["cancel_requested_at"] is not None
    assert client_for(reader).post(f"/api/jobs/{finished.pk}/cancel/").status_code == 409
    assert Job.objects.get(pk=finished.pk).cancel_requested_at is None


def test_a_running_job_that_is_asked_to_stop_ends_cancelled(project):
    from jobs.services import CancelCheck, job_cancel, job_run

    job = make_job(project=project)
    seen = []

    def work(job, progress):
        Job.objects.filter(pk=job.pk).update(cancel_requested_at=job.created_at)
        check = CancelCheck(job.pk, interval=0.0)
        seen.append(check.requested())
        check.check()
        return {"never": "reached"}

    assert job_run(job_id=job.pk, work=work) is True
    job.refresh_from_db()
    assert seen == [True] and job.status == Job.Status.CANCELLED and job.result == {}
    with pytest.raises(Exception, match="cancelled already"):
        job_cancel(job_id=job.pk)
