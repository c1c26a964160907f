"""Worker heartbeats: each running Celery worker says every few seconds that it is alive, and on which
queues, so that readiness (config/health.py) can tell in one cheap read whether work will be done.

Why not `app.control.inspect().ping()`: it broadcasts to every worker and waits out its whole timeout
(a second or more) on every probe, and a solo-pool worker in the middle of a training epoch does
not answer it at all. Here a daemon thread of the worker's main process writes the time, so a worker
busy with a long task keeps beating, and a worker that is killed simply stops: its entry ages and
readiness reports it stale after `CLEAR_WORKER_HEARTBEAT_MAX_AGE` seconds.

Where the beats live follows the broker, so no other store is needed: with Redis, one hash
(`<CLEAR_BROKER_KEY_PREFIX>clear:worker-heartbeats`, a field per worker hostname, JSON value); with
kombu's filesystem broker (the demo), one small JSON file per worker in the broker folder.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from celery.signals import worker_ready, worker_shutdown
from django.conf import settings

logger = logging.getLogger(__name__)

HASH_NAME = "clear:worker-heartbeats"
# Redis calls made for heartbeats and readiness give up after this long instead of hanging a probe.
REDIS_TIMEOUT_S = 2.0
# Without any beat for this long, the whole hash expires (every worker gone), so it never lingers.
HASH_TTL_S = 24 * 3600


@dataclass(frozen=True)
class Heartbeat:
    """One worker's last beat: when (Unix time) and the queues it consumes."""

    worker: str
    at: float
    queues: tuple[str, ...]


def uses_redis(broker_url: str) -> bool:
    return broker_url.startswith(("redis://", "rediss://"))


def redis_client() -> redis.Redis:
    """A client on the broker's Redis that fails within REDIS_TIMEOUT_S instead of waiting."""
    return redis.Redis.from_url(
        settings.CELERY_BROKER_URL, socket_connect_timeout=REDIS_TIMEOUT_S, socket_timeout=REDIS_TIMEOUT_S
    )


def _hash_key() -> str:
    return f"{settings.CLEAR_BROKER_KEY_PREFIX}{HASH_NAME}"


def _heartbeat_folder() -> Path:
    return Path(settings.CELERY_BROKER_FOLDER) / "heartbeats"


def _file_name(worker: str) -> str:
    # Hostnames are like "celery@host"; keep the file name to safe characters.
    return "".join(c if c.isalnum() or c in "-_.@" else "_" for c in worker) + ".json"


def beat(worker: str, queues: tuple[str, ...], *, at: float | None = None) -> None:
    """Record that `worker` is alive now (or at `at`, for tests) and consumes `queues`."""
    value = json.dumps({"at": time.time() if at is None else at, "queues": sorted(queues)})
    if uses_redis(settings.CELERY_BROKER_URL):
        client = redis_client()
        try:
            with client.pipeline() as pipe:
                pipe.hset(_hash_key(), worker, value)
                pipe.expire(_hash_key(), HASH_TTL_S)
                pipe.execute()
        finally:
            client.close()
        return
    folder = _heartbeat_folder()
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(value)
        os.replace(tmp, folder / _file_name(worker))
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def forget(worker: str) -> None:
    """Remove `worker`'s entry: it is shutting down and will do no more work."""
    if uses_redis(settings.CELERY_BROKER_URL):
        client = redis_client()
        try:
            client.hdel(_hash_key(), worker)
        finally:
            client.close()
        return
    (_heartbeat_folder() / _file_name(worker)).unlink(missing_ok=True)


def _parse(worker: str, raw: str | bytes) -> Heartbeat | None:
    try:
        data = json.loads(raw)
        return Heartbeat(worker=worker, at=float(data["at"]), queues=tuple(str(q) for q in data["queues"]))
    except (ValueError, KeyError, TypeError):
        return None


def read_all() -> list[Heartbeat]:
    """Every worker's last beat (stale ones included; the caller judges their age)."""
    if uses_redis(settings.CELERY_BROKER_URL):
        client = redis_client()
        try:
            entries: dict[Any, Any] = client.hgetall(_hash_key())
        finally:
            client.close()
        parsed = (_parse(k.decode(errors="replace"), v) for k, v in entries.items())
    else:
        folder = _heartbeat_folder()
        files = sorted(folder.glob("*.json")) if folder.is_dir() else []
        parsed = (_parse(path.stem, path.read_bytes()) for path in files)
    return [heartbeat for heartbeat in parsed if heartbeat is not None]


class HeartbeatThread(threading.Thread):
    """Beats every `interval` seconds until stopped; a failed beat is logged and tried again."""

    def __init__(self, worker: str, queues: tuple[str, ...], interval: float) -> None:
        super().__init__(name="clear-heartbeat", daemon=True)
        self.worker = worker
        self.queues = queues
        self.interval = interval
        self._stopped = threading.Event()
        self._failing = False

    def run(self) -> None:
        while True:
            self._beat_once()
            if self._stopped.wait(self.interval):
                return

    def _beat_once(self) -> None:
        try:
            beat(self.worker, self.queues)
        except Exception:
            if not self._failing:  # once per outage, not every few seconds
                logger.warning("worker heartbeat could not be written", exc_info=True)
            self._failing = True
        else:
            if self._failing:
                logger.info("worker heartbeat written again")
            self._failing = False

    def stop(self) -> None:
        self._stopped.set()
        self.join(timeout=REDIS_TIMEOUT_S * 2)
        try:
            forget(self.worker)
        except Exception:
            logger.warning("worker heartbeat could not be removed", exc_info=True)


_running: HeartbeatThread | None = None


@worker_ready.connect
def _start_beating(sender: Any, **_: Any) -> None:
    """Sent once the worker consumes from its queues (`sender` is its consumer)."""
    global _running
    if _running is not None:
        return
    queues = tuple(sorted(sender.app.amqp.queues.consume_from))
    _running = HeartbeatThread(sender.hostname, queues, float(settings.CLEAR_WORKER_HEARTBEAT_SECONDS))
    _running.start()


@worker_shutdown.connect
def _stop_beating(**_: Any) -> None:
    global _running
    if _running is not None:
        _running.stop()
        _running = None
