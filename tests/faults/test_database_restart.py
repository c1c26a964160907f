"""PostgreSQL restarted under a real web server and a real worker: requests meanwhile get 503 with
Retry-After (never 500), the first request after the restart succeeds, and a task that met the
outage is retried until its job is done, once, with no duplicate rows.

The database is a private PostgreSQL started for the test (tests/faults/servers.py) so that it can
be stopped; the web server is gunicorn and the worker `celery worker`, both separate processes.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings

from config.celery import app
from tests.conftest import REPO_ROOT
from tests.e2e.conftest import CeleryWorker, wait_for
from tests.faults.http import Answer, Http, multipart
from tests.faults.servers import PrivatePostgres, free_port, wait_for_port

pytestmark = pytest.mark.e2e

PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
GUNICORN = REPO_ROOT / ".venv" / "bin" / "gunicorn"
IMAGES = Path("imesluh_vocalfolds") / "img" / "patient1"

SEED = """
import json
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from jobs.models import Job
from records.importing.options import ImportOptions
from records.models import Project, ProjectMembership
user = get_user_model().objects.create_user("manager", password="not-used-here")
project = Project.objects.create(name="Fault", slug="fault")
ProjectMembership.objects.create(project=project, user=user, role="data_manager")
token = Token.objects.create(user=user)
job = Job.objects.create(kind="records.import", project=project, params={
    "sources": [SOURCE], "metadata": None, "options": ImportOptions().to_json(), "cleanup": []})
print(json.dumps({"token": token.key, "project": project.pk, "job": job.pk}))
"""


@dataclass
class World:
    database: PrivatePostgres
    url: str
    env: dict[str, str]
    token: str
    project: int
    job: int

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url) as conn:
            return conn.execute(sql, params).fetchall()


@pytest.fixture
def world(private_postgres: PrivatePostgres, realdata: Path, tmp_path: Path) -> World:
    private_postgres.createdb("clear")
    url = private_postgres.url("clear")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": url,
        "CLEAR_MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "CLEAR_UPLOAD_ROOT": str(settings.CLEAR_UPLOAD_ROOT),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "DJANGO_DEBUG": "false",
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    subprocess.run(
        [str(PYTHON), "manage.py", "migrate", "--noinput", "-v", "0"], cwd=REPO_ROOT, env=env, check=True
    )
    seed = SEED.replace("SOURCE", repr(str(realdata / IMAGES)))
    out = subprocess.run(
        [str(PYTHON), "manage.py", "shell", "-c", seed],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    ids = json.loads(out.stdout.decode().strip().splitlines()[-1])
    return World(database=private_postgres, url=url, env=env, **ids)


@pytest.fixture
def web(world: World, tmp_path: Path) -> Iterator[Http]:
    port = free_port()
    log = (tmp_path / "gunicorn.log").open("wb")
    server = subprocess.Popen(
        [
            str(GUNICORN),
            "config.wsgi",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            "1",
            "--threads",
            "2",
            "--timeout",
            "60",
        ],
        cwd=REPO_ROOT,
        env=world.env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, timeout=60)
        yield Http("127.0.0.1", port, world.token)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
        print((tmp_path / "gunicorn.log").read_text(errors="replace"))


def _png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (32, 32), 128).save(buffer, format="PNG")
    return buffer.getvalue()


def _assert_unavailable(response: Answer) -> None:
    assert response.status == 503, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert "unavailable" in response.json()["detail"]
    assert int(response.headers["Retry-After"]) > 0


def test_requests_during_a_database_restart_get_503_and_the_first_after_it_succeeds(
    world: World, web: Http
) -> None:
    assert web.get("/api/projects/").status == 200  # a persistent connection is now open

    world.database.stop()
    for path in ("/api/projects/", f"/api/projects/{world.project}/", "/api/jobs/", "/api/auth/me/"):
        _assert_unavailable(web.get(path))
    # An upload meanwhile: refused the same way, and nothing of it is left in the upload folder.
    body, content_type = multipart({}, [("files", "frame.png", _png())])
    upload = web.request("POST", f"/api/projects/{world.project}/imports/", body, content_type)
    _assert_unavailable(upload)
    assert list(Path(settings.CLEAR_UPLOAD_ROOT).iterdir()) == []
    # The probes say so too (readiness is 503, liveness does not need the database).
    assert web.get("/readyz").status == 503
    assert web.get("/healthz").status == 200

    world.database.start()
    # The broken connection was dropped: the very first request after the restart is served.
    response = web.get("/api/projects/")
    assert response.status == 200, response.text
    assert [project["id"] for project in response.json()["results"]] == [world.project]


def test_a_task_that_meets_a_database_restart_is_retried_and_its_job_done_once(
    world: World, celery_broker_prefix: str, realdata: Path, tmp_path: Path
) -> None:
    env = {**world.env, "CLEAR_BROKER_KEY_PREFIX": celery_broker_prefix}
    worker = CeleryWorker(env=env, log_dir=tmp_path)
    worker.start()
    try:
        world.database.stop()
        # The message arrives while the database is gone: the claim fails, and the task is retried
        # (1 s, 2 s, 4 s ...) instead of being dropped or failing the job.
        app.send_task("records.import_job", kwargs={"job_id": world.job}, queue="cpu")
        wait_for(
            lambda: worker.log_text().count("database unavailable") >= 2,
            timeout=60,
            describe="two failed deliveries",
        )
        world.database.start()

        def finished() -> bool:
            try:
                rows = world.query("SELECT status FROM jobs_job WHERE id = %s", world.job)
            except psycopg.OperationalError:
                return False
            return rows[0][0] in {"succeeded", "failed", "cancelled"}

        wait_for(finished, timeout=180, describe=f"import job {world.job} to finish")
    finally:
        worker.stop()
        print(worker.log_text())

    ((status, attempts, error, result),) = world.query(
        "SELECT status, attempts, error, result FROM jobs_job WHERE id = %s", world.job
    )
    assert status == "succeeded", error
    assert attempts == 1  # claimed once, when the database was back
    images = sorted((realdata / IMAGES).rglob("*.png"))
    assert result["frames_created"] == len(images)
    ((frames, distinct),) = world.query("SELECT count(*), count(DISTINCT sha256) FROM records_frame")
    assert frames == distinct == len(images)
    assert world.query("SELECT count(*) FROM jobs_job WHERE kind = 'records.import'") == [(1,)]
