"""An upload whose client goes away halfway through the body leaves nothing behind: no Job, no
model version, no staged upload, no temporary file. A real gunicorn serves the test database, and a
raw socket sends headers announcing more bytes than it sends, then closes."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.authtoken.models import Token

from inference.models import ModelVersion
from jobs.models import Job
from records.models import Frame
from tests.conftest import REPO_ROOT
from tests.e2e.conftest import _database_url
from tests.factories import LabelTaskFactory, ProjectFactory
from tests.faults.http import Http, multipart
from tests.faults.servers import free_port, wait_for_port
from tests.records.api_support import Role, member_of

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

GUNICORN = REPO_ROOT / ".venv" / "bin" / "gunicorn"
# Above FILE_UPLOAD_MAX_MEMORY_SIZE (8 MiB), so Django spools the file to a temporary file on disk.
BIG = 12 * 1024 * 1024


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    port = free_port()
    spool = tmp_path / "spool"
    spool.mkdir()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": _database_url(),
        "CLEAR_MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "CLEAR_UPLOAD_ROOT": str(settings.CLEAR_UPLOAD_ROOT),
        "DJANGO_DEBUG": "false",
        "TMPDIR": str(spool),  # where Django spools uploads (tempfile's default folder)
    }
    log = (tmp_path / "gunicorn.log").open("wb")
    process = subprocess.Popen(
        [str(GUNICORN), "config.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1", "--timeout", "60"],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, timeout=60)
        yield port, spool
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
        print((tmp_path / "gunicorn.log").read_text(errors="replace"))


def _send_half(port: int, path: str, token: str, body: bytes, content_type: str) -> None:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Token {token}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head + body[: len(body) // 2])
        time.sleep(1.0)  # the server is reading the body when the client goes
    # Give the server time to notice the closed connection and finish the request.
    time.sleep(3.0)


def _leftovers(*folders: Path) -> list[Path]:
    return sorted(path for folder in folders for path in folder.rglob("*") if path.is_file())


def _spool_left_after_the_request(spool: Path, *, within_s: float = 10.0) -> list[Path]:
    """The spooled upload files still there once the server has finished the request. Django
    removes them when the response is closed, which the WSGI server does after sending it: the
    client can read the answer a moment before the file is gone (a CI run saw it still there)."""
    deadline = time.monotonic() + within_s
    while (left := _leftovers(spool)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@pytest.mark.parametrize("endpoint", ["imports", "model-versions"])
def test_an_upload_cut_off_halfway_stores_nothing(endpoint: str, server: tuple[int, Path]) -> None:
    port, spool = server
    project = ProjectFactory.create()
    user = member_of(project, Role.ADMIN)
    token = Token.objects.create(user=user).key
    task = LabelTaskFactory.create(project=project, key="quality")
    payload = os.urandom(BIG)
    if endpoint == "imports":
        path = f"/api/projects/{project.pk}/imports/"
        body, content_type = multipart({}, [("files", "frames.zip", b"PK\x03\x04" + payload)])
    else:
        path = "/api/model-versions/"
        body, content_type = multipart(
            {"project": str(project.pk), "task": str(task.pk), "name": "cut"},
            [("file", "model.safetensors", payload)],
        )
    media_before = _leftovers(Path(settings.MEDIA_ROOT))

    _send_half(port, path, token, body, content_type)

    assert not Job.objects.exists()
    assert not ModelVersion.objects.exists()
    assert not Frame.objects.exists()
    assert _leftovers(Path(settings.CLEAR_UPLOAD_ROOT)) == []
    assert _leftovers(Path(settings.MEDIA_ROOT)) == media_before
    assert _leftovers(spool) == []

    # The same request sent whole reaches the view (so the cut, not a wrong request, stored nothing):
    # the ZIP is accepted for import, the random bytes are refused as a model file.
    answer = Http("127.0.0.1", port, token).request("POST", path, body, content_type)
    if endpoint == "imports":
        assert answer.status == 202, answer.text
        assert Job.objects.count() == 1
    else:
        assert answer.status == 400 and "file" in answer.json(), answer.text
    assert _spool_left_after_the_request(spool) == []
