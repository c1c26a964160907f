"""The container health commands (config/probe.py) against the real Redis of the test run: the
command the compose healthchecks and the Kubernetes exec probes run, in a process of its own."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.test import override_settings

from config import heartbeat, probe

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def prefix() -> Iterator[str]:
    if not heartbeat.uses_redis(settings.CELERY_BROKER_URL):
        pytest.skip("the probe tests need Redis (CELERY_BROKER_URL from ./dev test)")
    key_prefix = f"clear-probe-{uuid.uuid4().hex[:12]}:"
    with override_settings(CLEAR_BROKER_KEY_PREFIX=key_prefix):
        yield key_prefix
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    try:
        client.delete(f"{key_prefix}{heartbeat.HASH_NAME}")
    finally:
        client.close()


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "CELERY_BROKER_URL": settings.CELERY_BROKER_URL, **env}
    return subprocess.run(
        [sys.executable, "-m", "config.probe", *args],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_worker_check_follows_the_heartbeat_age(prefix: str) -> None:
    now = time.time()
    max_age = settings.CLEAR_WORKER_HEARTBEAT_MAX_AGE
    assert probe.check_worker("celery@fresh", now=now) == "no heartbeat from celery@fresh"
    heartbeat.beat("celery@fresh", ("gpu",), at=now - max_age + 1)
    heartbeat.beat("celery@stale", ("cpu",), at=now - max_age - 5)
    assert probe.check_worker("celery@fresh", now=now) is None
    problem = probe.check_worker("celery@stale", now=now)
    assert problem is not None and "old" in problem
    # The default name is Celery's own for a worker started without -n on this host.
    assert probe.default_worker_name() == f"celery@{socket.gethostname()}"


def test_the_command_exits_0_for_a_beating_worker_and_1_otherwise(prefix: str) -> None:
    heartbeat.beat("celery@worker-gpu-0", ("gpu",))
    heartbeat.beat("celery@worker-gpu-1", ("gpu",), at=time.time() - 3600)

    alive = _run("worker", "--worker", "celery@worker-gpu-0", CLEAR_BROKER_KEY_PREFIX=prefix)
    stale = _run("worker", "--worker", "celery@worker-gpu-1", CLEAR_BROKER_KEY_PREFIX=prefix)
    missing = _run("worker", CLEAR_BROKER_KEY_PREFIX=prefix)

    assert (alive.returncode, alive.stderr) == (0, "")
    assert stale.returncode == 1 and "celery@worker-gpu-1" in stale.stderr
    assert missing.returncode == 1 and f"no heartbeat from celery@{socket.gethostname()}" in missing.stderr


def test_broker_check_answers_and_hides_the_address_of_a_dead_broker(prefix: str) -> None:
    assert probe.check_broker() is None
    assert _run("broker").returncode == 0

    port = _closed_port()
    dead = _run("broker", CELERY_BROKER_URL=f"redis://127.0.0.1:{port}/0")
    assert dead.returncode == 1
    assert "ConnectionError" in dead.stderr
    assert str(port) not in dead.stderr


def test_filesystem_broker_needs_its_folder(tmp_path: Path) -> None:
    with override_settings(CELERY_BROKER_URL="filesystem://", CELERY_BROKER_FOLDER=str(tmp_path / "broker")):
        assert probe.check_broker() == "the filesystem broker's folder does not exist"
        (tmp_path / "broker").mkdir()
        assert probe.check_broker() is None
