"""Every endpoint that answers with a file (issue 9 item 1: nothing a user uploaded is ever served
to be rendered or sniffed): `X-Content-Type-Options: nosniff`, the file's real Content-Type (never
HTML, SVG or a guess from a name), and `Content-Disposition: attachment` for downloads.

The endpoints come from the OpenAPI schema: every operation whose 200 answer is not JSON must be in
FILE_ENDPOINTS, so a new file endpoint cannot be added without being checked here. The world is the
permission matrix's (tests/security/permission_world.py), which holds a frame, a stored prediction
with its CAM, an open reader study with a CAM arm and a ready export.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client, override_settings
from django.urls import reverse
from drf_spectacular.generators import SchemaGenerator
from pytest_django import DjangoDbBlocker
from rest_framework.test import APIClient

from tests.security.permission_world import World, build_world

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class FileEndpoint:
    template: str  # the schema's path
    url: str  # with the world's placeholders
    role: str  # who may fetch it
    content_type: str
    attachment: bool  # a download (saved, never displayed by the browser)
    magic: bytes = b""  # how the body starts


FILE_ENDPOINTS = [
    FileEndpoint(
        "/api/frames/{id}/image/", "/api/frames/{frame}/image/", "reader", "image/png", False, b"\x89PNG"
    ),
    FileEndpoint(
        "/api/frames/{id}/preview/",
        "/api/frames/{frame}/preview/",
        "reader",
        "image/jpeg",
        False,
        b"\xff\xd8\xff",
    ),
    FileEndpoint(
        "/api/predictions/{id}/cam/",
        "/api/predictions/{prediction}/cam/",
        "coordinator",
        "image/png",
        False,
        b"\x89PNG",
    ),
    FileEndpoint(
        "/api/reading-sessions/{id}/cases/{position}/cam/{prediction_id}/",
        "/api/reading-sessions/{session_cam}/cases/{position}/cam/{study_prediction}/",
        "reader",
        "image/png",
        False,
        b"\x89PNG",
    ),
    FileEndpoint(
        "/api/exports/{id}/download/",
        "/api/exports/{export}/download/",
        "data_manager",
        "application/zip",
        True,
        b"PK",
    ),
    FileEndpoint(
        "/api/studies/{id}/readings.csv",
        "/api/studies/{study}/readings.csv",
        "coordinator",
        "text/csv; charset=utf-8",
        True,
    ),
]


@pytest.fixture(scope="module", autouse=True)
def media_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("files-media")
    uploads = tmp_path_factory.mktemp("files-uploads")
    with override_settings(MEDIA_ROOT=root, CLEAR_UPLOAD_ROOT=uploads):
        yield root


@pytest.fixture(scope="module")
def world(
    django_db_setup: None,
    django_db_blocker: DjangoDbBlocker,
    media_root: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[World]:
    with django_db_blocker.unblock(), transaction.atomic():
        built = build_world(tmp_path_factory.mktemp("files-models"))
        built.ids["position"] = 0
        yield built
        transaction.set_rollback(True)


def test_every_file_endpoint_of_the_schema_is_checked_here() -> None:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    files = set()
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            ok = operation.get("responses", {}).get("200", {})
            media_types = set(ok.get("content", {}))
            if media_types and not media_types <= {"application/json"}:
                files.add((method.upper(), path))
    assert files == {("GET", endpoint.template) for endpoint in FILE_ENDPOINTS}


@pytest.mark.parametrize("endpoint", FILE_ENDPOINTS, ids=[endpoint.template for endpoint in FILE_ENDPOINTS])
def test_a_file_is_served_with_nosniff_its_real_type_and_downloads_as_attachments(
    endpoint: FileEndpoint, world: World
) -> None:
    client = APIClient()
    client.force_authenticate(world.user(endpoint.role))
    # A browser's <img> or link asks for anything, HTML first: the answer is the file's own type.
    response = client.get(endpoint.url.format(**world.ids), HTTP_ACCEPT="text/html,*/*")

    assert response.status_code == 200, getattr(response, "content", b"")[:300]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Type"] == endpoint.content_type
    body = b"".join(cast(Any, response).streaming_content) if response.streaming else response.content
    assert body.startswith(endpoint.magic) and body
    disposition = response.get("Content-Disposition", "")
    if endpoint.attachment:
        assert disposition.startswith("attachment; filename="), disposition
    else:
        assert not disposition.startswith("attachment"), disposition
        assert "html" not in response["Content-Type"] and "svg" not in response["Content-Type"]


def test_the_admins_frame_preview_is_served_the_same_way(world: World) -> None:
    """The one file view outside the API (the admin's thumbnails)."""
    client = Client()
    client.force_login(User.objects.create_superuser("files-admin", password="x"))

    response = client.get(reverse("admin:records_frame_preview", args=[world.ids["frame"]]))
    assert response.status_code == 200
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Type"] == "image/jpeg"
