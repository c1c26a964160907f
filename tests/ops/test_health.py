"""Liveness and readiness probes against the real PostgreSQL and Redis (config/health.py)."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.test import Client, override_settings

from config import heartbeat

BOTH_QUEUES = ("cpu", "gpu")


@pytest.fixture
def heartbeat_prefix() -> Iterator[str]:
    """Heartbeats of this test only: a key prefix of its own on the test Redis, removed afterwards."""
    if not heartbeat.uses_redis(settings.CELERY_BROKER_URL):
        pytest.skip("readiness tests need Redis (CELERY_BROKER_URL from ./dev test)")
    prefix = f"clear-test-{uuid.uuid4().hex[:12]}:"
    with override_settings(CLEAR_BROKER_KEY_PREFIX=prefix):
        yield prefix
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    try:
        client.delete(f"{prefix}{heartbeat.HASH_NAME}")
    finally:
        client.close()


def _closed_port() -> int:
    """A local port on which nothing listens (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _readyz() -> tuple[int, dict[str, Any]]:
    response = Client().get("/readyz")
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"]
    return response.status_code, response.json()


def test_liveness_answers_without_touching_the_database_or_broker() -> None:
    # No django_db mark: any database access here would raise instead of answering.
    with override_settings(
        CELERY_BROKER_URL=f"redis://127.0.0.1:{_closed_port()}/0", MEDIA_ROOT="/nonexistent"
    ):
        response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_probes_refuse_writes() -> None:
    assert Client().post("/healthz").status_code == 405
    assert Client().post("/readyz").status_code == 405


@pytest.mark.django_db
def test_ready_when_database_redis_storage_and_a_worker_per_queue_are_there(heartbeat_prefix: str) -> None:
    heartbeat.beat("cpu-worker@host", ("cpu",))
    heartbeat.beat("gpu-worker@host", ("gpu",), at=time.time() - 5)

    status, body = _readyz()

    assert status == 200, body
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "broker", "storage", "worker"}
    for name, check in body["checks"].items():
        assert check["ok"] is True, name
        assert "error" not in check
        assert isinstance(check["latency_ms"], float | int) and check["latency_ms"] >= 0
    worker = body["checks"]["worker"]
    assert worker["workers"] == 2
    # The first request of a process imports every app (seconds): compare the two ages, not the clock.
    ages = worker["heartbeat_age_s"]
    assert ages["gpu"] - ages["cpu"] == pytest.approx(5, abs=0.3)
    assert ages["gpu"] < 60


@pytest.mark.django_db
def test_not_ready_without_a_worker_on_a_required_queue(heartbeat_prefix: str) -> None:
    heartbeat.beat("cpu-worker@host", ("cpu",))

    status, body = _readyz()

    assert status == 503
    assert body["status"] == "unavailable"
    worker = body["checks"]["worker"]
    assert worker["ok"] is False
    assert worker["error"] == "no worker heartbeat within 60 s on queue gpu"
    assert worker["heartbeat_age_s"]["gpu"] is None
    assert all(body["checks"][name]["ok"] for name in ("database", "broker", "storage"))


@pytest.mark.django_db
def test_a_stale_heartbeat_is_not_a_live_worker(heartbeat_prefix: str) -> None:
    heartbeat.beat("busy@host", BOTH_QUEUES, at=time.time() - 61)

    status, body = _readyz()

    assert status == 503
    assert body["checks"]["worker"]["workers"] == 0
    assert body["checks"]["worker"]["heartbeat_age_s"]["cpu"] > 60


@pytest.mark.django_db
@override_settings(CLEAR_READYZ_WORKER_QUEUES=[])
def test_the_worker_check_is_informational_when_no_queue_is_required(heartbeat_prefix: str) -> None:
    status, body = _readyz()

    assert status == 200
    assert body["checks"]["worker"] == {
        "ok": True,
        "required": False,
        "latency_ms": body["checks"]["worker"]["latency_ms"],
        "workers": 0,
        "max_age_s": 60,
        "heartbeat_age_s": {},
    }


@pytest.mark.django_db
def test_an_unreachable_broker_makes_it_unavailable_without_leaking_the_url(heartbeat_prefix: str) -> None:
    broker = f"redis://:hunter2-secret@127.0.0.1:{_closed_port()}/3"
    with override_settings(CELERY_BROKER_URL=broker):
        response = Client().get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["broker"] == {
        "ok": False,
        "required": True,
        "latency_ms": body["checks"]["broker"]["latency_ms"],
        "error": "ConnectionError",
    }
    assert body["checks"]["worker"]["ok"] is False  # its heartbeats live on the same Redis
    assert body["checks"]["database"]["ok"] is True
    text = response.content.decode()
    assert "hunter2" not in text and "127.0.0.1" not in text and "redis://" not in text


@pytest.mark.django_db
def test_unwritable_media_storage_makes_it_unavailable_without_leaking_the_path(
    heartbeat_prefix: str, tmp_path: Path
) -> None:
    heartbeat.beat("worker@host", BOTH_QUEUES)
    not_a_folder = tmp_path / "media-is-a-file"
    not_a_folder.write_bytes(b"")

    with override_settings(MEDIA_ROOT=not_a_folder / "media"):
        response = Client().get("/readyz")

    assert response.status_code == 503
    storage = response.json()["checks"]["storage"]
    assert storage["ok"] is False
    assert storage["error"] in {"NotADirectoryError", "FileExistsError"}
    assert str(tmp_path) not in response.content.decode()


def test_the_storage_probe_leaves_no_file_behind(media_root: Path) -> None:
    from config.health import check_storage

    check_storage()

    assert list(media_root.iterdir()) == []


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_database_makes_it_unavailable(
    heartbeat_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    heartbeat.beat("worker@host", BOTH_QUEUES)
    connection.close()
    monkeypatch.setitem(connection.settings_dict, "HOST", "127.0.0.1")
    monkeypatch.setitem(connection.settings_dict, "PORT", str(_closed_port()))
    try:
        response = Client().get("/readyz")
    finally:
        connection.close()
        monkeypatch.undo()

    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["database"]["ok"] is False
    assert body["checks"]["database"]["error"] == "OperationalError"
    assert body["checks"]["broker"]["ok"] is True
    assert settings.DATABASES["default"]["NAME"] not in response.content.decode()


def test_a_worker_thread_beats_until_it_stops(heartbeat_prefix: str) -> None:
    thread = heartbeat.HeartbeatThread("threaded@host", BOTH_QUEUES, interval=0.05)
    thread.start()
    try:
        deadline = time.monotonic() + 5
        seen: list[float] = []
        while time.monotonic() < deadline and len(set(seen)) < 3:
            seen += [beat.at for beat in heartbeat.read_all() if beat.worker == "threaded@host"]
            time.sleep(0.02)
        assert len(set(seen)) >= 3, "the thread should beat again and again"
    finally:
        thread.stop()

    assert heartbeat.read_all() == []  # a worker that stops says so at once


def test_filesystem_broker_keeps_heartbeats_in_its_folder(tmp_path: Path) -> None:
    with override_settings(CELERY_BROKER_URL="filesystem://", CELERY_BROKER_FOLDER=tmp_path):
        heartbeat.beat("demo@host", BOTH_QUEUES, at=1234.5)
        beats = heartbeat.read_all()
        files = sorted(p.name for p in (tmp_path / "heartbeats").iterdir())
        heartbeat.forget("demo@host")
        after = heartbeat.read_all()

    assert beats == [heartbeat.Heartbeat(worker="demo@host", at=1234.5, queues=BOTH_QUEUES)]
    assert files == ["demo@host.json"]
    assert after == []


@pytest.mark.django_db
def test_the_demo_setup_is_ready_with_its_filesystem_broker(tmp_path: Path) -> None:
    with override_settings(CELERY_BROKER_URL="filesystem://", CELERY_BROKER_FOLDER=tmp_path):
        heartbeat.beat("demo@host", BOTH_QUEUES)
        status, body = _readyz()

    assert status == 200, body
    assert body["checks"]["broker"]["ok"] is True
