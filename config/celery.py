"""The Celery application and the one task decorator every CLEAR task uses.

Rules (docs/architecture.md, "Background work"): JSON only, acks_late with reject_on_worker_lost so
that a killed worker's message is delivered again, time limits from settings, a Redis visibility
timeout above the hard limit (otherwise Redis would hand a still-running task to a second worker),
and job state kept in Postgres (jobs.Job), never only in the broker.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar

from celery import Celery, Task

# Imported for its signal handlers: every worker writes heartbeats that readiness reads (config/health.py).
from config import heartbeat as _heartbeat  # noqa: F401

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("clear")
logger = logging.getLogger(__name__)


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
            # Sends again the messages of jobs that Postgres says are waiting or lost but no broker
            # message will bring back (Redis restarted): jobs.services.jobs_sweep.
            "sweep-jobs": {
                "task": "jobs.sweep",
                "schedule": float(settings.CLEAR_JOB_SWEEP_SECONDS),
                "options": {"queue": "cpu"},
            },
            "retrain-check": {
                "task": "inference.retrain_check",
                "schedule": float(settings.CLEAR_RETRAIN_CHECK_SECONDS),
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

    A delivery that finds the database gone (OperationalError, InterfaceError: a restart, a
    failover) is retried with exponential backoff, up to CLEAR_TASK_DATABASE_RETRIES times, and a
    job it had claimed is resumed by the retry (jobs.services.resume_attempt), not failed.
    """
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}; expected one of {QUEUES}")

    def decorate(func: F) -> Task:
        @functools.wraps(func)
        def run(self: Task, *args: Any, resume_attempt: int | None = None, **kwargs: Any) -> Any:
            return _run_retrying_database_errors(self, func, args, kwargs, resume_attempt)

        task: Task = app.task(
            name=name,
            bind=True,
            queue=queue,
            acks_late=True,
            reject_on_worker_lost=True,
            max_retries=max_retries,
            serializer="json",
            # The wrapper takes the retry's `resume_attempt` on top of the function's own arguments.
            typing=False,
        )(run)
        return task

    return decorate


def _run_retrying_database_errors(
    task: Task, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], resume: int | None
) -> Any:
    from django.conf import settings
    from django.db import connections

    from jobs import services as jobs

    resume_token = jobs.resume_attempt.set(resume)
    claimed_token = jobs.claimed_attempt.set(None)
    try:
        return func(task, *args, **kwargs)
    except jobs.DATABASE_UNAVAILABLE as exc:
        # The broken connection must not be reused by the retry (nor by the next task).
        for conn in connections.all(initialized_only=True):
            # (Inside a transaction, e.g. a test's, the connection is not ours to close.)
            if not conn.in_atomic_block:
                conn.close_if_unusable_or_obsolete()
        retries = task.request.retries
        limit = settings.CLEAR_TASK_DATABASE_RETRIES
        if retries >= limit:
            logger.error("task %s: the database stayed unavailable through %s retries", task.name, limit)
            raise
        claimed = jobs.claimed_attempt.get() or resume
        retry_kwargs = {**kwargs, **({"resume_attempt": claimed} if claimed else {})}
        countdown = min(2**retries, 60)
        logger.warning(
            "task %s: database unavailable (%s); retry in %s s", task.name, type(exc).__name__, countdown
        )
        raise task.retry(
            exc=exc, args=args, kwargs=retry_kwargs, countdown=countdown, max_retries=limit
        ) from exc
    finally:
        jobs.claimed_attempt.reset(claimed_token)
        jobs.resume_attempt.reset(resume_token)


def was_redelivered(task: Task) -> bool:
    """Whether the broker delivered this message before (a worker died while running it)."""
    return bool((task.request.delivery_info or {}).get("redelivered"))
