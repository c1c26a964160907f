"""The workspace's examination context: what a reader may see beside a frame, never the reference."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from records.models import ProjectMembership
from tests.factories import ExaminationFactory, FrameFactory, MembershipFactory, VideoFactory

pytestmark = pytest.mark.django_db


def test_context_of_frames_without_any_reference_standard():
    membership = MembershipFactory.create(role=ProjectMembership.Role.READER)
    examination = ExaminationFactory.create(
        patient__project=membership.project,
        patient__pseudonym="P-0123456789abcdef",
        code="E7",
        anatomical_site="larynx",
        device="pCLE",
        reference_label="neoplastic",
        reference_source="histopathology",
    )
    video = VideoFactory.create(examination=examination, name="seq1")
    in_video = FrameFactory.create(video=video, index_in_video=4, time_s=0.16, reference_label="neoplastic")
    still = FrameFactory.create(examination=examination)
    client = APIClient()
    client.force_login(membership.user)

    response = client.get("/api/label-context/", {"frames": f"{still.pk},{in_video.pk}"})

    assert response.status_code == 200
    frames = response.json()["frames"]
    assert [frame["frame"] for frame in frames] == sorted([still.pk, in_video.pk])
    by_id = {frame["frame"]: frame for frame in frames}
    assert by_id[in_video.pk] == {
        "frame": in_video.pk,
        "patient_pseudonym": "P-0123456789abcdef",
        "examination": examination.pk,
        "examination_code": "E7",
        "anatomical_site": "larynx",
        "device": "pCLE",
        "video": video.pk,
        "video_name": "seq1",
        "index_in_video": 4,
        "time_s": 0.16,
    }
    assert by_id[still.pk]["video_name"] is None
    assert "neoplastic" not in response.content.decode()
    assert "histopathology" not in response.content.decode()


def test_frames_of_another_project_are_left_out():
    membership = MembershipFactory.create()
    mine = FrameFactory.create(examination__patient__project=membership.project)
    other = FrameFactory.create()
    client = APIClient()
    client.force_login(membership.user)

    response = client.get("/api/label-context/", {"frames": f"{mine.pk},{other.pk}"})

    assert [frame["frame"] for frame in response.json()["frames"]] == [mine.pk]


@pytest.mark.parametrize("frames", ["", "a,b", ",".join(str(n) for n in range(1, 102))])
def test_bad_frame_lists_are_400(frames: str):
    client = APIClient()
    client.force_login(MembershipFactory.create().user)
    assert client.get("/api/label-context/", {"frames": frames}).status_code == 400


def test_context_needs_a_signed_in_user():
    assert APIClient().get("/api/label-context/", {"frames": "1"}).status_code == 403
