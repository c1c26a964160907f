"""The Celery application and the one task decorator every CLEAR task uses.

Rules (docs/architecture.md, "Background work"): JSON only, acks_late with reject_on_worker_lost so
that a killed worker's message is delivered again, time limits from settings, a Redis visibility
timeout above the hard limit (otherwise Redis would hand a still-running task to a second worker),
and job state kept in Postgres (jobs.Job), never only in the broker.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

from celery import Celery, Task

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("clear")


def _configure(app: Celery) -> None:
    from django.conf import settings

    broker_url: str = settings.CELERY_BROKER_URL
    transport_options: dict[str, Any] = {"visibility_timeout": settings.CLEAR_BROKER_VISIBILITY_TIMEOUT}
    if settings.CLEAR_BROKER_RESTORE_INTERVAL:
        # kombu sweeps on every n-th tick only (throttle); a configured interval is the whole period.
        transport_options["unacked_restore_interval"] = settings.CLEAR_BROKER_RESTORE_INTERVAL
        transport_options["unacked_restore_throttle"] = 1
    if settings.CLEAR_BROKER_KEY_PREFIX:
        transport_options["global_keyprefix"] = settings.CLEAR_BROKER_KEY_PREFIX
    if broker_url.startswith("filesystem://"):
        folder = settings.CELERY_BROKER_FOLDER
        for sub in ("out", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        transport_options = {
            "data_folder_in": str(folder / "out"),
            "data_folder_out": str(folder / "out"),
            "processed_folder": str(folder / "processed"),
            # Without it kombu keeps its exchange table in ./control, wherever the process started.
            "control_folder": str(folder / "control"),
            "store_processed": False,
        }
    app.conf.update(
        broker_url=broker_url,
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=settings.CELERY_TASK_SOFT_TIME_LIMIT,
        task_time_limit=settings.CELERY_TASK_TIME_LIMIT,
        task_default_queue="cpu",
        task_create_missing_queues=True,
        task_always_eager=settings.CELERY_TASK_ALWAYS_EAGER,
        worker_hijack_root_logger=False,
        timezone="UTC",
        # Housekeeping on a schedule (`celery beat`, or a worker's -B). The plain Scheduler keeps
        # its state in memory: the default PersistentScheduler stores it with shelve, i.e. pickle.
        beat_scheduler="celery.beat:Scheduler",
        beat_schedule={
            "purge-idempotency-records": {
                "task": "annotations.purge_idempotency_records",
                "schedule": 3600.0,
                "options": {"queue": "cpu"},
            },
        },
    )


_configure(app)
app.autodiscover_tasks()

F = TypeVar("F", bound=Callable[..., Any])

QUEUES = ("cpu", "gpu")


def clear_task(*, queue: str, name: str, max_retries: int = 0) -> Callable[[F], Task]:
    """Register a CLEAR task on `queue` with the project's delivery guarantees.

    The task is bound (its first argument is the task, for `redelivered`). Tasks take keyword-only
    primary keys and primitives, re-fetch their rows and call a service;
    they must be idempotent because acks_late means a message can be delivered twice.
    """
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}; expected one of {QUEUES}")

    def decorate(func: F) -> Task:
        task: Task = app.task(
            name=name,
            bind=True,
            queue=queue,
            acks_late=True,
            reject_on_worker_lost=True,
            max_retries=max_retries,
            serializer="json",
        )(func)
        return task

    return decorate


def was_redelivered(task: Task) -> bool:
    """Whether the broker delivered this message before (a worker died while running it)."""
    return bool((task.request.delivery_info or {}).get("redelivered"))
