"""Celery tasks of the jobs app: the sweeper that re-sends lost job messages (beat, every
CLEAR_JOB_SWEEP_SECONDS)."""

from __future__ import annotations

from celery import Task

from config.celery import clear_task
from jobs.services import jobs_sweep


@clear_task(queue="cpu", name="jobs.sweep")
def sweep(self: Task) -> list[int]:
    """Send again the message of every queued or lost job no broker message will bring back."""
    return jobs_sweep()
