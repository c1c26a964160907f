"""Liveness (`GET /healthz`) and readiness (`GET /readyz`) for load balancers and monitoring.

Liveness touches nothing but the process: a restart cures what it reports. Readiness checks what a
request or a job needs: the database answers a query, the broker's Redis answers PING, the media
storage (through its API: the local folder or the bucket) and the upload folder take a file, and a
Celery worker has beaten recently on each queue named in `CLEAR_READYZ_WORKER_QUEUES`
(config/heartbeat.py). The answer is 200 when every required check
passes and 503 otherwise, with each check's result and latency in a JSON body.

No login is needed, so the body says nothing an outsider could use: errors are reported by their
exception class only (the full error goes to the log), never with hosts, paths or URLs.
"""

from __future__ import annotations

import logging
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from config import heartbeat

logger = logging.getLogger(__name__)


class CheckFailed(Exception):
    """A check's own finding (not an exception from a dependency): its message is safe to show."""

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.details = details or {}


@dataclass
class CheckResult:
    ok: bool
    latency_ms: float
    required: bool = True
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": self.ok, "required": self.required, "latency_ms": self.latency_ms}
        if self.error is not None:
            body["error"] = self.error
        body.update(self.details)
        return body


def _run(name: str, check: Callable[[], dict[str, Any] | None], *, required: bool = True) -> CheckResult:
    start = time.perf_counter()
    try:
        details = check() or {}
        error = None
    except CheckFailed as exc:
        details, error = exc.details, str(exc)
    except Exception as exc:
        # A dependency's message can name hosts, users or paths: log it, show only its kind.
        logger.warning("readiness check %s failed", name, exc_info=True)
        details, error = {}, type(exc).__name__
    latency_ms = round((time.perf_counter() - start) * 1000, 2)
    return CheckResult(
        ok=error is None, latency_ms=latency_ms, required=required, error=error, details=details
    )


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def check_broker() -> None:
    if heartbeat.uses_redis(settings.CELERY_BROKER_URL):
        client = heartbeat.redis_client()
        try:
            client.ping()
        finally:
            client.close()
        return
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        _probe_writable(Path(settings.CELERY_BROKER_FOLDER))
        return
    raise CheckFailed("unsupported broker transport")


def _probe_writable(folder: Path) -> None:
    """Create, write, read back and remove a small file in `folder` (creating the folder if needed)."""
    folder.mkdir(parents=True, exist_ok=True)
    payload = b"clear readiness probe"
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".tmp-readyz-") as probe:
        probe.write(payload)
        probe.flush()
        probe.seek(0)
        if probe.read() != payload:
            raise CheckFailed("storage returned different bytes")


def _probe_media_storage() -> None:
    """Store, read back and delete a small object through the media storage API (local folder or
    bucket alike), under a name of its own per probe so that concurrent probes do not meet; a
    `.tmp-` name at the top, which backups skip and which leaves no folder behind."""
    from records import media

    payload = b"clear readiness probe"
    name = f".tmp-readyz-{uuid.uuid4().hex}"
    media.save_bytes(name, payload)
    try:
        if media.read_bytes(name) != payload:
            raise CheckFailed("storage returned different bytes")
    finally:
        media.delete(name)


def check_storage() -> None:
    _probe_media_storage()
    _probe_writable(Path(settings.CLEAR_UPLOAD_ROOT))


def check_workers() -> dict[str, Any]:
    """The age of the freshest heartbeat per queue; failing when a required queue has none recent."""
    now = time.time()
    max_age = settings.CLEAR_WORKER_HEARTBEAT_MAX_AGE
    freshest: dict[str, float] = {}
    live_workers = 0
    for beat in heartbeat.read_all():
        age = max(0.0, now - beat.at)
        if age <= max_age:
            live_workers += 1
        for queue in beat.queues:
            freshest[queue] = min(age, freshest.get(queue, age))
    required = list(settings.CLEAR_READYZ_WORKER_QUEUES)
    queues: dict[str, float | None] = {queue: round(age, 1) for queue, age in sorted(freshest.items())}
    for queue in required:
        queues.setdefault(queue, None)
    details = {"workers": live_workers, "max_age_s": max_age, "heartbeat_age_s": queues}
    missing = [queue for queue in required if queue not in freshest or freshest[queue] > max_age]
    if missing:
        raise CheckFailed(f"no worker heartbeat within {max_age} s on queue {', '.join(missing)}", details)
    return details


@require_safe
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Nothing else is checked, so a database outage never restarts it."""
    return JsonResponse({"status": "ok"})


@require_safe
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    checks = {
        "database": _run("database", check_database),
        "broker": _run("broker", check_broker),
        "storage": _run("storage", check_storage),
        "worker": _run("worker", check_workers, required=bool(settings.CLEAR_READYZ_WORKER_QUEUES)),
    }
    ready = all(result.ok for result in checks.values() if result.required)
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": {k: v.as_json() for k, v in checks.items()}},
        status=200 if ready else 503,
    )
