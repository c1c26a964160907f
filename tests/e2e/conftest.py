"""A real Celery worker process for end-to-end tests.

The worker is a separate interpreter (`celery -A config worker`), so it sees none of pytest's
in-process state. Everything it needs comes through the environment:

- DATABASE_URL names pytest-django's *test* database (read from the live connection), so that the
  worker reads the rows the test committed (the tests use transactional_db: nothing is hidden in an
  open transaction);
- CLEAR_MEDIA_ROOT / CLEAR_UPLOAD_ROOT are the test's own folders (the autouse `media_root` fixture);
- CLEAR_BROKER_KEY_PREFIX gives this worker, and this test process's producer, Redis keys of their
  own: a concurrent test run on the same Redis database can neither steal nor feed its messages;
- CLEAR_BROKER_VISIBILITY_TIMEOUT and CLEAR_BROKER_RESTORE_INTERVAL are short, so that a message
  left unacknowledged by a killed worker comes back within seconds instead of hours. That is safe
  here because a solo-pool worker does not poll the broker while it runs a task, so it never hands
  its own running message out again; production keeps the timeout above the hard time limit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis
from django.conf import settings
from django.db import connection

from config.celery import QUEUES, app
from tests.conftest import REPO_ROOT

CELERY = REPO_ROOT / ".venv" / "bin" / "celery"
READY_TIMEOUT_S = 120.0
# Short enough that test (b) sees the killed worker's message within seconds, long enough that a
# healthy worker is not handed its own message in the middle of a normal test import.
E2E_VISIBILITY_TIMEOUT_S = 8
E2E_RESTORE_INTERVAL_S = 2


def _database_url() -> str:
    """The URL of the database this test is using (pytest-django's test database)."""
    conf = connection.settings_dict
    if conf["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("the end-to-end worker tests need PostgreSQL (DATABASE_URL from ./dev test)")
    user = quote(conf.get("USER") or "", safe="")
    password = quote(conf.get("PASSWORD") or "", safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = conf.get("HOST") or "127.0.0.1"
    port = f":{conf['PORT']}" if conf.get("PORT") else ""
    return f"postgres://{auth}{host}{port}/{quote(conf['NAME'], safe='')}"


@dataclass
class CeleryWorker:
    """One `celery worker` subprocess at a time; `start` again after `kill` for a fresh worker."""

    env: dict[str, str]
    log_dir: Path
    process: subprocess.Popen[bytes] | None = None
    logs: list[Path] = field(default_factory=list)
    # More `celery worker` options, e.g. ["--beat"] for a worker that also sends the schedule.
    extra_args: list[str] = field(default_factory=list)

    @property
    def log(self) -> Path:
        return self.logs[-1]

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "a worker is already running"
        log = self.log_dir / f"worker-{len(self.logs) + 1}.log"
        self.logs.append(log)
        name = f"e2e-{uuid.uuid4().hex[:8]}@%h"
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [
                    str(CELERY),
                    "-A",
                    "config",
                    "worker",
                    "-Q",
                    ",".join(QUEUES),
                    "--pool=solo",
                    "-c",
                    "1",
                    "--loglevel=INFO",
                    "--without-gossip",
                    "--without-mingle",
                    "-n",
                    name,
                    *self.extra_args,
                ],
                cwd=REPO_ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        # Watching the log rather than `celery inspect ping`: no second broker client to configure,
        # and the line appears only once the worker consumes from its queues.
        deadline = time.monotonic() + READY_TIMEOUT_S
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the worker exited with {self.process.returncode}:\n{self.log_text()}")
            if " ready." in self.log.read_text(errors="replace"):
                return
            time.sleep(0.2)
        raise RuntimeError(f"the worker was not ready after {READY_TIMEOUT_S:.0f} s:\n{self.log_text()}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL: the worker gets no chance to acknowledge, reject or clean up anything."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (warm shutdown: the current task finishes), then SIGKILL if it takes too long."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_text(self) -> str:
        return "\n".join(
            f"----- {path.name} -----\n{path.read_text(errors='replace')}"
            for path in self.logs
            if path.exists()
        )


def _use_transport_options(options: dict[str, Any]) -> None:
    """Make this process's producer publish with `options` from the next message on.

    Celery caches a connection pool and a producer pool built with the old options; `app.close()`
    would drop only the first (and deregister the app), so both are reset the way Celery itself does
    after a fork.
    """
    app.conf.broker_transport_options = options
    pool = app.__dict__.get("_pool")
    if pool is not None:
        pool.force_close_all()
    app._pool = None  # type: ignore[attr-defined]
    app.amqp._producer_pool = None  # type: ignore[attr-defined]


def _purge(queues: tuple[str, ...]) -> None:
    with app.connection_for_write() as conn:
        channel: Any = conn.default_channel  # the kombu stubs' StdChannel lacks queue_purge
        for queue in queues:
            channel.queue_purge(queue)


@pytest.fixture
def celery_broker_prefix() -> Iterator[str]:
    """Point this process's Celery producer at a key prefix of its own; restore it afterwards."""
    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        pytest.skip("the end-to-end worker tests need Redis (CELERY_BROKER_URL from ./dev test)")
    prefix = f"clear-e2e-{uuid.uuid4().hex[:12]}:"
    saved: dict[str, Any] = dict(app.conf.broker_transport_options or {})
    _use_transport_options({**saved, "global_keyprefix": prefix})
    try:
        _purge(QUEUES)
        yield prefix
    finally:
        _use_transport_options(saved)
        # Queues, bindings and unacked bookkeeping of this test: nothing of it is needed any more.
        client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
        try:
            keys = list(client.scan_iter(match=f"{prefix}*"))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


@pytest.fixture
def celery_worker_process(
    transactional_db: None,
    media_root: Path,
    celery_broker_prefix: str,
    tmp_path: Path,
) -> Iterator[CeleryWorker]:
    """A started worker on queues cpu and gpu, reading the test database and the test's media folder.

    The log is printed at teardown; pytest shows it only for a failing test (or with -s / -rA).
    """
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CLEAR_BROKER_KEY_PREFIX": celery_broker_prefix,
        "CLEAR_BROKER_VISIBILITY_TIMEOUT": str(E2E_VISIBILITY_TIMEOUT_S),
        "CLEAR_BROKER_RESTORE_INTERVAL": str(E2E_RESTORE_INTERVAL_S),
        "CLEAR_MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "CLEAR_UPLOAD_ROOT": str(settings.CLEAR_UPLOAD_ROOT),
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    worker = CeleryWorker(env=env, log_dir=tmp_path)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()
        header = f"===== Celery worker log ({len(worker.logs)} worker(s) in this test) ====="
        print(f"\n{header}\n{worker.log_text()}")


def wait_for(
    condition: Callable[[], bool], *, timeout: float, interval: float = 0.25, describe: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {describe}")
