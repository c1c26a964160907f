"""Frames API: scoped lists with filters and cursor pages, and authenticated image/preview files."""

from __future__ import annotations

import datetime
from typing import cast

import pytest
from django.http import FileResponse
from django.utils import timezone
from rest_framework.test import APIClient

from records import media
from records.models import Frame
from tests.factories import ExaminationFactory, FrameFactory, ProjectFactory, UserFactory, VideoFactory
from tests.records.api_support import Role, client_for, ids, member_of, results

pytestmark = pytest.mark.django_db


@pytest.fixture
def project():
    return ProjectFactory.create()


@pytest.fixture
def reader(project):
    return member_of(project, Role.READER)


@pytest.fixture
def frame(project):
    return FrameFactory.create(examination=ExaminationFactory.create(patient__project=project))


@pytest.fixture
def other_frame():
    return FrameFactory.create()


def test_reader_lists_only_frames_of_own_projects(reader, frame, other_frame):
    response = client_for(reader).get("/api/frames/")

    assert ids(response) == {frame.pk}


def test_superuser_lists_frames_of_every_project(frame, other_frame):
    admin = UserFactory.create(is_superuser=True, is_staff=True)

    assert ids(client_for(admin).get("/api/frames/")) == {frame.pk, other_frame.pk}


def test_frame_detail_links_image_and_preview(reader, frame):
    body = client_for(reader).get(f"/api/frames/{frame.pk}/").json()

    assert body["sha256"] == frame.sha256
    assert body["image_url"].endswith(f"/api/frames/{frame.pk}/image/")
    assert body["preview_url"].endswith(f"/api/frames/{frame.pk}/preview/")
    assert "file" not in body and "preview_file" not in body


def test_reader_of_other_project_gets_404_for_frame_detail(reader, other_frame):
    assert client_for(reader).get(f"/api/frames/{other_frame.pk}/").status_code == 404


def test_frames_filter_by_video_examination_and_patient(project, reader):
    video = VideoFactory.create(examination__patient__project=project)
    in_video = FrameFactory.create(video=video, index_in_video=0)
    loose = FrameFactory.create(examination=ExaminationFactory.create(patient__project=project))
    client = client_for(reader)

    assert ids(client.get("/api/frames/", {"video": video.pk})) == {in_video.pk}
    assert ids(client.get("/api/frames/", {"examination": loose.examination_id})) == {loose.pk}
    assert ids(client.get("/api/frames/", {"patient": video.examination.patient_id})) == {in_video.pk}
    assert ids(client.get("/api/frames/", {"project": project.pk})) == {in_video.pk, loose.pk}


def test_frames_filter_by_other_projects_id_matches_nothing(reader, frame, other_frame):
    response = client_for(reader).get("/api/frames/", {"project": other_frame.examination.patient.project_id})

    assert results(response) == []


def test_frames_filter_by_site_device_mode_crop_and_reference(project, reader):
    colon = ExaminationFactory.create(
        patient__project=project, anatomical_site="colon", device="pCLE", reference_label="neoplastic"
    )
    larynx = ExaminationFactory.create(patient__project=project, anatomical_site="larynx", device="eCLE")
    cropped = FrameFactory.create(examination=colon, crop_box=[1, 1, 7, 5])
    own_label = FrameFactory.create(examination=colon, reference_label="healthy")
    rgb = FrameFactory.create(examination=larynx, mode="RGB")
    client = client_for(reader)

    assert ids(client.get("/api/frames/", {"anatomical_site": "larynx"})) == {rgb.pk}
    assert ids(client.get("/api/frames/", {"device": "pCLE"})) == {cropped.pk, own_label.pk}
    assert ids(client.get("/api/frames/", {"mode": "RGB"})) == {rgb.pk}
    assert ids(client.get("/api/frames/", {"has_crop": "true"})) == {cropped.pk}
    assert ids(client.get("/api/frames/", {"has_crop": "false"})) == {own_label.pk, rgb.pk}
    # a frame's own label wins over its examination's
    assert ids(client.get("/api/frames/", {"reference_label": "neoplastic"})) == {cropped.pk}
    assert ids(client.get("/api/frames/", {"reference_label": "healthy"})) == {own_label.pk}


def test_frames_filter_by_created_range(project, reader):
    old = FrameFactory.create(examination=ExaminationFactory.create(patient__project=project))
    Frame.objects.filter(pk=old.pk).update(created_at=timezone.now() - datetime.timedelta(days=10))
    new = FrameFactory.create(examination=ExaminationFactory.create(patient__project=project))
    since = (timezone.now() - datetime.timedelta(days=1)).isoformat()

    assert ids(client_for(reader).get("/api/frames/", {"created_after": since})) == {new.pk}
    assert ids(client_for(reader).get("/api/frames/", {"created_before": since})) == {old.pk}


def test_frames_come_in_stable_cursor_pages(project, reader):
    exam = ExaminationFactory.create(patient__project=project)
    frames = FrameFactory.create_batch(5, examination=exam)
    client = client_for(reader)

    first = client.get("/api/frames/", {"page_size": 2}).json()
    second = client.get(first["next"]).json()
    third = client.get(second["next"]).json()

    seen = [row["id"] for page in (first, second, third) for row in page["results"]]
    assert seen == sorted(frame.pk for frame in frames)
    assert third["next"] is None


@pytest.mark.parametrize(
    ("suffix", "content_type", "etag_suffix"),
    [("image", "image/png", ""), ("preview", "image/jpeg", "-preview")],
)
def test_frame_file_is_streamed_with_content_addressed_cache_headers(
    reader, frame, suffix, content_type, etag_suffix
):
    response = client_for(reader).get(f"/api/frames/{frame.pk}/{suffix}/")

    assert response.status_code == 200
    assert response["Content-Type"] == content_type
    assert response["ETag"] == f'"{frame.sha256}{etag_suffix}"'
    assert response["Cache-Control"] == "private, max-age=31536000, immutable"
    assert response["X-Content-Type-Options"] == "nosniff"
    relative = frame.file if suffix == "image" else frame.preview_file
    assert cast(FileResponse, response).getvalue() == media.read_bytes(relative)


def test_image_and_preview_have_distinct_etags(reader, frame):
    client = client_for(reader)

    image = client.get(f"/api/frames/{frame.pk}/image/")
    preview = client.get(f"/api/frames/{frame.pk}/preview/")

    assert image["ETag"] != preview["ETag"]


@pytest.mark.parametrize("suffix", ["image", "preview"])
def test_matching_if_none_match_answers_304_without_body(reader, frame, suffix):
    client = client_for(reader)
    etag = client.get(f"/api/frames/{frame.pk}/{suffix}/")["ETag"]

    response = client.get(f"/api/frames/{frame.pk}/{suffix}/", HTTP_IF_NONE_MATCH=f'"other", W/{etag}')

    assert response.status_code == 304
    assert response.content == b""
    assert response["ETag"] == etag
    assert response["Cache-Control"] == "private, max-age=31536000, immutable"


def test_preview_etag_does_not_revalidate_the_full_image(reader, frame):
    response = client_for(reader).get(
        f"/api/frames/{frame.pk}/image/", HTTP_IF_NONE_MATCH=f'"{frame.sha256}-preview"'
    )

    assert response.status_code == 200


def test_image_is_served_whatever_the_browser_accepts(reader, frame):
    response = client_for(reader).get(
        f"/api/frames/{frame.pk}/preview/", HTTP_ACCEPT="image/avif,image/webp,image/apng,image/*"
    )

    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"


@pytest.mark.parametrize("suffix", ["image", "preview"])
def test_reader_of_other_project_gets_404_for_frame_file(reader, other_frame, suffix):
    response = client_for(reader).get(f"/api/frames/{other_frame.pk}/{suffix}/")

    assert response.status_code == 404


@pytest.mark.parametrize("suffix", ["image", "preview"])
def test_reader_of_other_project_gets_404_even_with_a_matching_etag(reader, other_frame, suffix):
    response = client_for(reader).get(
        f"/api/frames/{other_frame.pk}/{suffix}/", HTTP_IF_NONE_MATCH=f'"{other_frame.sha256}"'
    )

    assert response.status_code == 404


@pytest.mark.parametrize("suffix", ["image", "preview"])
def test_anonymous_cannot_fetch_frame_files(frame, suffix):
    response = APIClient().get(f"/api/frames/{frame.pk}/{suffix}/")

    assert response.status_code in (401, 403)


def test_missing_file_on_disk_is_a_404_not_a_500(reader, frame):
    media.delete(frame.file)

    assert client_for(reader).get(f"/api/frames/{frame.pk}/image/").status_code == 404


def test_frame_file_works_with_token_auth(reader, frame):
    client = APIClient()
    token = client.post("/api/auth/token/", {"username": reader.username, "password": "pw-for-tests"})
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.json()['token']}")

    assert client.get(f"/api/frames/{frame.pk}/image/").status_code == 200


def test_anonymous_cannot_list_frames(frame):
    assert APIClient().get("/api/frames/").status_code in (401, 403)


def test_head_request_gives_the_headers_without_the_file(reader, frame):
    response = client_for(reader).head(f"/api/frames/{frame.pk}/image/")

    assert response.status_code == 200
    assert response["ETag"] == f'"{frame.sha256}"'


def test_frame_list_query_count_does_not_grow_with_the_page(project, reader, django_assert_max_num_queries):
    exam = ExaminationFactory.create(patient__project=project)
    FrameFactory.create_batch(20, examination=exam)
    client = client_for(reader)

    with django_assert_max_num_queries(6):
        assert len(results(client.get("/api/frames/"))) == 20
