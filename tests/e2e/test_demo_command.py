"""`./dev demo`, the README's first command, run as a user runs it: embedded SQLite, the filesystem
broker, a real worker process and the web server; then the demo data is checked through the API."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.e2e
START_TIMEOUT_S = 240.0
IMPORT_TIMEOUT_S = 240.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _request(
    url: str,
    *,
    token: str | None = None,
    data: bytes | None = None,
    method: str | None = None,
    json_body: Any = None,
) -> tuple[int, bytes, Any]:
    if json_body is not None:
        data = json.dumps(json_body).encode()
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (http on loopback only)
    if json_body is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Token {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers


def _wait_for(check: Any, timeout: float, what: str, log: Path) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(1)
    pytest.fail(f"timed out waiting for {what}; ./dev demo printed:\n{log.read_text()[-4000:]}")


def test_dev_demo_serves_the_imported_demo_frames(tmp_path: Path) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        "CELERY_BROKER_URL": "filesystem://",
        "CLEAR_BROKER_FOLDER": str(tmp_path / "broker"),
        "CLEAR_MEDIA_ROOT": str(tmp_path / "media"),
        "CLEAR_UPLOAD_ROOT": str(tmp_path / "uploads"),
        "CLEAR_PORT": str(port),
    }
    env.pop("CLEAR_BROKER_KEY_PREFIX", None)
    log = tmp_path / "demo.log"
    with log.open("w") as output:
        demo = subprocess.Popen(
            ["./dev", "demo"],
            cwd=REPO_ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        credentials = b"username=reader1&password=clear-demo"

        def token() -> str | None:
            if demo.poll() is not None:
                pytest.fail(f"./dev demo exited with {demo.returncode}:\n{log.read_text()[-4000:]}")
            try:
                status, body, _ = _request(f"{base}/api/auth/token/", data=credentials)
            except OSError:
                return None
            return str(json.loads(body)["token"]) if status == 200 else None

        reader_token = _wait_for(token, START_TIMEOUT_S, "the web server", log)

        def finished(kind: str) -> dict[str, Any] | None:
            _, body, _ = _request(f"{base}/api/jobs/", token=reader_token)
            jobs = [job for job in json.loads(body)["results"] if job["kind"] == kind]
            return jobs[0] if jobs and jobs[0]["status"] in {"succeeded", "failed"} else None

        job = _wait_for(lambda: finished("records.import"), IMPORT_TIMEOUT_S, "the demo import job", log)
        assert job["status"] == "succeeded", job
        assert job["result"]["frames_created"] == 48 and job["result"]["errors"] == []
        # The import queued the previews job, which the same worker runs next.
        previews = _wait_for(lambda: finished("records.previews"), IMPORT_TIMEOUT_S, "the previews job", log)
        assert previews["status"] == "succeeded" and previews["result"]["previews_rendered"] == 48, previews

        _, body, _ = _request(f"{base}/api/frames/?page_size=100", token=reader_token)
        frames = json.loads(body)["results"]
        assert len(frames) == 48
        assert {frame["mode"] for frame in frames} == {"L"}
        assert all(frame["crop_box"] is not None for frame in frames)
        status, preview, headers = _request(frames[0]["preview_url"], token=reader_token)
        assert status == 200 and headers["Content-Type"] == "image/jpeg" and preview
        assert _request(frames[0]["preview_url"])[0] in {401, 403}  # no public media
        assert "demo logins" in log.read_text().lower()

        # The labelling loop on the demo's SQLite database: the work queue's and the submit's
        # hand-written SQL (annotations/selectors.py) run there as on PostgreSQL.
        _, body, _ = _request(f"{base}/api/label-tasks/", token=reader_token)
        task = json.loads(body)["results"][0]
        queue_url = f"{base}/api/projects/{task['project']}/queue/?task={task['id']}&limit=2"
        _, body, _ = _request(queue_url, token=reader_token)
        queue = json.loads(body)
        first, second = queue["frames"]
        assert queue["total"] == 48 and queue["remaining"] == 48
        status, body, _ = _request(
            f"{base}/api/frames/{first['id']}/annotations/{task['id']}/",
            token=reader_token,
            method="PUT",
            json_body={"value": task["choices"][0]["value"], "confidence": 4},
        )
        assert status == 201, body
        _, body, _ = _request(f"{queue_url}&after={first['cursor']}", token=reader_token)
        after = json.loads(body)
        assert after["frames"][0]["id"] == second["id"] and after["remaining"] == 47
    finally:
        _stop_group(demo)


def _stop_group(demo: subprocess.Popen[bytes]) -> None:
    """Stop the script, its web server and its worker (one process group), waiting for all of them."""
    os.killpg(demo.pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        demo.poll()
        try:
            os.killpg(demo.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.5)
    os.killpg(demo.pid, signal.SIGKILL)
    demo.wait()
