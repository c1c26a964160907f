"""Celery tasks of the annotations app."""

from __future__ import annotations

from celery import Task

from annotations.services import idempotency_records_purge
from config.celery import clear_task


@clear_task(queue="cpu", name="annotations.purge_idempotency_records")
def purge_idempotency_records(self: Task) -> int:
    """Hourly (config.celery's beat_schedule): forget expired Idempotency-Keys. Idempotent."""
    return idempotency_records_purge()
