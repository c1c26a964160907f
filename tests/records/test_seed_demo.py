"""`manage.py seed_demo` is safe to run on every `./dev demo`."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from PIL import Image

from annotations.models import LabelTask
from jobs.models import Job
from records.demo import (
    DEMO_EXAMINATIONS,
    FRAME_HEIGHT,
    FRAME_WIDTH,
    HEALTHY,
    NEOPLASTIC,
    demo_frame,
    write_demo_source,
)
from records.models import Project, ProjectMembership
from records.services import IMPORT_JOB_KIND

pytestmark = pytest.mark.django_db

DEMO_USERNAMES = {"admin", "coordinator", "datamanager", "reader1", "reader2", "reviewer"}


@pytest.fixture(scope="module")
def demo_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated once for the module (a few seconds of image synthesis); later seeds reuse the files."""
    root = tmp_path_factory.mktemp("demo-source")
    write_demo_source(root)
    return root


def _seed(source: Path) -> str:
    out = io.StringIO()
    call_command("seed_demo", "--source", str(source), stdout=out)
    return out.getvalue()


def test_seed_demo_twice_creates_users_project_and_one_import_job_once(tmp_path: Path) -> None:
    first = _seed(tmp_path)
    files = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    second = _seed(tmp_path)

    users = get_user_model().objects.filter(username__in=DEMO_USERNAMES)
    assert users.count() == len(DEMO_USERNAMES)
    assert all(user.check_password("clear-demo") for user in users)
    admin = users.get(username="admin")
    assert admin.is_superuser and admin.is_staff
    assert not users.get(username="reader1").is_staff

    project = Project.objects.get()
    assert project.name == "Demo CLE"
    roles = dict(ProjectMembership.objects.filter(project=project).values_list("user__username", "role"))
    assert roles == {
        "admin": ProjectMembership.Role.ADMIN,
        "coordinator": ProjectMembership.Role.COORDINATOR,
        "datamanager": ProjectMembership.Role.DATA_MANAGER,
        "reader1": ProjectMembership.Role.READER,
        "reader2": ProjectMembership.Role.READER,
        "reviewer": ProjectMembership.Role.REVIEWER,
    }
    # Something to label: quality and diagnosis tasks from their presets, created once.
    tasks = LabelTask.objects.filter(project=project)
    assert sorted(tasks.values_list("key", flat=True)) == ["diagnosis_neoplasia", "quality"]
    assert all(task.choices.filter(is_active=True).exclude(hotkey="").exists() for task in tasks)
    assert "label task quality: created from its preset" in first
    assert "label task quality: already there" in second

    job = Job.objects.get()
    assert (job.kind, job.project_id, job.status) == (IMPORT_JOB_KIND, project.pk, Job.Status.QUEUED)
    assert job.params["sources"] == [str(tmp_path.resolve())]
    assert job.params["metadata"] == str(tmp_path.resolve() / "metadata.csv")

    # The second run rewrites nothing, and a lost frame comes back byte for byte (seeded synthesis).
    assert {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()} == files
    assert len(files) == sum(exam.frames for exam in DEMO_EXAMINATIONS) + 1
    assert "queued job" in first
    assert "(0 written" in second and "already there" in second and "dispatched it again" in second
    lost = sorted(files)[0]
    lost.unlink()
    _seed(tmp_path)
    assert lost.read_bytes() == files[lost]
    assert Job.objects.count() == 1


def test_seed_demo_queues_nothing_once_the_import_succeeded(demo_source: Path) -> None:
    _seed(demo_source)
    Job.objects.update(status=Job.Status.SUCCEEDED)
    output = _seed(demo_source)
    assert Job.objects.count() == 1
    assert "already succeeded" in output


def test_seed_demo_queues_a_new_import_after_a_failed_one(demo_source: Path) -> None:
    _seed(demo_source)
    Job.objects.update(status=Job.Status.FAILED, error="the worker ran out of disk")
    _seed(demo_source)
    assert list(Job.objects.order_by("id").values_list("status", flat=True)) == [
        Job.Status.FAILED,
        Job.Status.QUEUED,
    ]


def test_seed_demo_keeps_a_changed_password(demo_source: Path) -> None:
    _seed(demo_source)
    reader = get_user_model().objects.get(username="reader1")
    reader.set_password("changed-by-the-reader")
    reader.save()
    _seed(demo_source)
    reader.refresh_from_db()
    assert reader.check_password("changed-by-the-reader")


def test_demo_frames_look_like_cle_frames() -> None:
    healthy = demo_frame(patient="patient01", examination="E1", label=HEALTHY, index=0)
    assert (healthy.mode, healthy.size) == ("L", (FRAME_WIDTH, FRAME_HEIGHT))
    pixels = np.asarray(healthy)
    # Black outside the round field of view, tissue inside it.
    assert pixels[:5, :5].max() == 0 and pixels[-5:, -5:].max() == 0
    centre = pixels[
        FRAME_HEIGHT // 2 - 100 : FRAME_HEIGHT // 2 + 100, FRAME_WIDTH // 2 - 100 : FRAME_WIDTH // 2 + 100
    ]
    assert centre.mean() > 20 and centre.std() > 10

    again = demo_frame(patient="patient01", examination="E1", label=HEALTHY, index=0)
    assert again.tobytes() == healthy.tobytes()
    others = [
        demo_frame(patient="patient01", examination="E1", label=HEALTHY, index=1),
        demo_frame(patient="patient02", examination="E1", label=HEALTHY, index=0),
        demo_frame(patient="patient01", examination="E1", label=NEOPLASTIC, index=0),
    ]
    assert all(other.tobytes() != healthy.tobytes() for other in others)


def test_demo_frames_are_valid_png_files(demo_source: Path) -> None:
    _seed(demo_source)
    for path in sorted(demo_source.rglob("*.png"))[:3]:
        with Image.open(path) as image:
            image.verify()


def test_demo_data_manager_can_use_the_admin_and_readers_cannot(demo_source: Path) -> None:
    _seed(demo_source)
    users = get_user_model().objects
    data_manager = users.get(username="datamanager")
    assert data_manager.is_staff and not data_manager.is_superuser
    assert data_manager.has_perm("records.change_examination")
    assert data_manager.has_perm("jobs.view_job")
    assert not data_manager.has_perm("jobs.change_job")
    assert not users.get(username="reader1").is_staff
