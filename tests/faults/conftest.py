"""Fixtures of the fault tests: private servers to restart, and the real worker processes' helpers."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.servers import PrivatePostgres, PrivateRedis, private_postgres_folder


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(folder=tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    folder, user = private_postgres_folder()
    server = PrivatePostgres(folder=folder, user=user)
    try:
        server.init()
        server.start()
        yield server
    finally:
        if server.running():
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)


# The real-worker fixtures of the end-to-end tests (a producer with a Redis key prefix of its own).
from tests.e2e.conftest import celery_broker_prefix  # noqa: E402, F401
