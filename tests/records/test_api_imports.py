"""POST /api/projects/{id}/imports/: validated uploads are staged and handed to an import job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from rest_framework.exceptions import ValidationError
from rest_framework.test import APIClient

from jobs.models import Job
from records.apis import safe_upload_name
from records.importing.options import ImportOptions
from records.services import IMPORT_JOB_KIND, import_upload_create
from tests.factories import ProjectFactory, UserFactory
from tests.records.api_support import Role, client_for, member_of

pytestmark = pytest.mark.django_db

PNG = b"\x89PNG\r\n\x1a\n" + b"0" * 32


def upload(name: str, data: bytes = PNG) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data)


def staged_entries() -> list[Path]:
    return sorted(Path(settings.CLEAR_UPLOAD_ROOT).rglob("*"))


@pytest.fixture
def project():
    return ProjectFactory.create()


@pytest.fixture
def data_manager(project):
    return member_of(project, Role.DATA_MANAGER)


def post_import(client: APIClient, project, **data) -> Any:
    return client.post(f"/api/projects/{project.pk}/imports/", data, format="multipart")


def test_data_manager_import_answers_202_with_the_queued_job(
    project, data_manager, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post_import(
            client_for(data_manager),
            project,
            files=[
                upload("a.png"),
                upload("b.zip", b"PK\x05\x06" + b"\0" * 18),
                upload("clip.MP4", b"\0\0\0\x18ftypmp42" + b"\0" * 16),
            ],
            metadata=upload("sheet.csv", b"patient,examination\nP1,E1\n"),
            every_nth=5,
            crop="true",
            default_examination="EX9",
            default_patient="HN-007",
            device="pCLE",
            anatomical_site="larynx",
        )

    assert response.status_code == 202, response.content
    job = Job.objects.get()
    assert response.json()["id"] == job.pk
    assert response.json()["status"] == "queued"
    assert response["Location"] == f"/api/jobs/{job.pk}/"
    assert job.kind == IMPORT_JOB_KIND
    assert job.project == project
    assert job.created_by == data_manager
    assert job.params["options"] == {
        "every_nth": 5,
        "crop": True,
        "default_examination": "EX9",
        "default_patient": "HN-007",
        "device": "pCLE",
        "anatomical_site": "larynx",
    }
    sources = [Path(path) for path in job.params["sources"]]
    assert [path.name for path in sources] == ["a.png", "b.zip", "clip.MP4"]
    assert sources[0].read_bytes() == PNG
    metadata = Path(job.params["metadata"])
    assert metadata.read_bytes() == b"patient,examination\nP1,E1\n"
    (folder,) = (Path(path) for path in job.params["cleanup"])
    assert folder.parent == Path(settings.CLEAR_UPLOAD_ROOT)
    assert all(path.is_relative_to(folder) for path in [*sources, metadata])
    assert len(callbacks) == 1  # the job is enqueued only once the transaction commits


def test_import_defaults_apply_when_only_files_are_sent(project, data_manager):
    response = post_import(client_for(data_manager), project, files=[upload("frame.tif")])

    assert response.status_code == 202, response.content
    job = Job.objects.get()
    assert job.params["metadata"] is None
    assert job.params["options"] == {
        "every_nth": 1,
        "crop": False,
        "default_examination": "E1",
        "default_patient": None,
        "device": "",
        "anatomical_site": "",
    }


def test_project_admin_and_superuser_may_import(project):
    admin = member_of(project, Role.ADMIN)
    superuser = UserFactory.create(is_superuser=True)

    assert post_import(client_for(admin), project, files=[upload("a.png")]).status_code == 202
    assert post_import(client_for(superuser), project, files=[upload("b.png")]).status_code == 202


@pytest.mark.parametrize("role", [Role.READER, Role.COORDINATOR])
def test_reader_or_coordinator_import_is_forbidden_and_stores_nothing(project, role):
    user = member_of(project, role)

    response = post_import(client_for(user), project, files=[upload("a.png")])

    assert response.status_code == 403
    assert not Job.objects.exists()
    assert staged_entries() == []


def test_data_manager_of_other_project_gets_404_for_import(data_manager):
    other = ProjectFactory.create()

    response = post_import(client_for(data_manager), other, files=[upload("a.png")])

    assert response.status_code == 404
    assert not Job.objects.exists()
    assert staged_entries() == []


def test_anonymous_import_is_refused(project):
    response = post_import(APIClient(), project, files=[upload("a.png")])

    assert response.status_code in (401, 403)
    assert not Job.objects.exists()


def test_import_without_files_is_a_400(project, data_manager):
    response = post_import(client_for(data_manager), project, every_nth=2)

    assert response.status_code == 400
    assert "files" in response.json()
    assert staged_entries() == []


@pytest.mark.parametrize("name", ["payload.exe", "notes.txt", "script.py", "noextension"])
def test_import_rejects_file_types_outside_the_allow_list(project, data_manager, name):
    response = post_import(client_for(data_manager), project, files=[upload("ok.png"), upload(name)])

    assert response.status_code == 400
    (message,) = response.json()["files"]
    assert name in message and "cannot be imported" in message
    assert not Job.objects.exists()
    assert staged_entries() == []


@override_settings(CLEAR_ALLOWED_VIDEO_EXTENSIONS=[".mpeg"])
def test_video_extensions_come_from_settings(project, data_manager):
    client = client_for(data_manager)

    assert (
        post_import(client, project, files=[upload("clip.mpeg", b"\0\0\x01\xba" + b"\0" * 16)]).status_code
        == 202
    )
    assert (
        post_import(
            client, project, files=[upload("clip.mp4", b"\0\0\0\x18ftypmp42" + b"\0" * 16)]
        ).status_code
        == 400
    )


def test_metadata_must_be_csv_or_xlsx(project, data_manager):
    response = post_import(
        client_for(data_manager), project, files=[upload("a.png")], metadata=upload("sheet.xls", b"x")
    )

    assert response.status_code == 400
    assert "csv" in response.json()["metadata"][0]
    assert staged_entries() == []


def test_import_over_the_size_limit_is_a_400_and_stores_nothing(project, data_manager):
    with override_settings(CLEAR_MAX_UPLOAD_BYTES=60):
        response = post_import(client_for(data_manager), project, files=[upload("a.png"), upload("b.png")])

    assert response.status_code == 400
    assert "limit is 60 bytes" in response.json()["files"][0]
    assert not Job.objects.exists()
    assert staged_entries() == []


def test_import_whose_body_exceeds_the_limit_is_refused_before_parsing(project, data_manager):
    big = upload("big.png", PNG + b"0" * (1024 * 1024 + 100))
    with override_settings(CLEAR_MAX_UPLOAD_BYTES=10):
        response = post_import(client_for(data_manager), project, files=[big])

    assert response.status_code == 400
    assert "limit is 10 bytes" in response.json()["files"][0]
    assert staged_entries() == []


def test_two_files_with_the_same_name_are_a_400(project, data_manager):
    response = post_import(client_for(data_manager), project, files=[upload("a.png"), upload("A.PNG")])

    assert response.status_code == 400
    assert "uploaded twice" in response.json()["files"][0]


def test_empty_file_is_a_400(project, data_manager):
    response = post_import(client_for(data_manager), project, files=[upload("a.png", b"")])

    assert response.status_code == 400
    assert staged_entries() == []


def test_every_nth_below_one_is_a_400(project, data_manager):
    response = post_import(client_for(data_manager), project, files=[upload("a.png")], every_nth=0)

    assert response.status_code == 400
    assert "every_nth" in response.json()


def test_directory_parts_in_a_raw_multipart_file_name_never_leave_the_staging_folder(project, data_manager):
    boundary = "XyZ"
    body = (
        (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="files"; filename="../../..\\..\\escape.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + PNG
        + f"\r\n--{boundary}--\r\n".encode()
    )

    response = client_for(data_manager).generic(
        "POST",
        f"/api/projects/{project.pk}/imports/",
        body,  # type: ignore[arg-type]  # Django accepts a bytes body; its stubs say str
        content_type=f"multipart/form-data; boundary={boundary}",
    )

    assert response.status_code == 202, response.content
    (source,) = (Path(path) for path in Job.objects.get().params["sources"])
    assert source.name == "escape.png"
    assert source.parent.parent == Path(settings.CLEAR_UPLOAD_ROOT)
    assert source.read_bytes() == PNG


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("../../etc/passwd.png", "passwd.png"),
        ("C:\\Users\\me\\frame 1.png", "frame 1.png"),
        ("folder/sub/clip.mp4", "clip.mp4"),
        ("bad\x00name\x1f.png", "badname.png"),
    ],
)
def test_safe_upload_name_strips_folders_and_control_characters(raw, safe):
    assert safe_upload_name(raw) == safe


@pytest.mark.parametrize("raw", ["", "..", "../", ".hidden.png", "dir/.", "x" * 197 + ".png"])
def test_safe_upload_name_refuses_empty_hidden_or_overlong_names(raw):
    with pytest.raises(ValidationError):
        safe_upload_name(raw)


def test_staged_files_are_removed_when_the_job_cannot_be_created(project, data_manager, monkeypatch):
    def broken(**kwargs: Any) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr("records.services.import_job_create", broken)

    with pytest.raises(RuntimeError):
        import_upload_create(
            project=project,
            files=[upload("a.png")],
            metadata=upload("m.csv", b"patient\n"),
            options=ImportOptions(),
            created_by_id=data_manager.pk,
        )

    assert staged_entries() == []
