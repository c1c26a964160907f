"""A real `celery worker` process beats while it runs and says goodbye when it stops (config/heartbeat.py)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client, override_settings

from tests.e2e.conftest import CeleryWorker, wait_for

pytestmark = pytest.mark.e2e


def _worker_check() -> dict[str, Any]:
    return dict(Client().get("/readyz").json()["checks"]["worker"])


def test_readiness_follows_a_real_worker(
    celery_worker_process: CeleryWorker, celery_broker_prefix: str
) -> None:
    with override_settings(CLEAR_BROKER_KEY_PREFIX=celery_broker_prefix):
        wait_for(lambda: _worker_check()["ok"], timeout=30, describe="the worker's first heartbeat")
        live = _worker_check()
        assert live["workers"] == 1
        assert set(live["heartbeat_age_s"]) == {"cpu", "gpu"}
        assert Client().get("/readyz").status_code == 200

        celery_worker_process.stop()

        gone = _worker_check()
        assert gone["ok"] is False
        assert gone["heartbeat_age_s"] == {"cpu": None, "gpu": None}
        assert Client().get("/readyz").status_code == 503
