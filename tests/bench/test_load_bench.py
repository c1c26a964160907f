"""The load test's harness (bench/load_bench.py) works: a short run with three annotators against a
real gunicorn finishes with no error and no lost label, and its check finds a lost or an
unacknowledged label when there is one. The full run (20 annotators, 2 minutes) is a benchmark,
reported in bench/README.md, not a test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from bench.load_bench import compare, failed
from bench.results import read_results
from tests.conftest import REPO_ROOT


def _admin_url() -> str:
    """The test server's `postgres` database: the bench creates and drops its own database there."""
    database = settings.DATABASES["default"]
    assert "postgresql" in database["ENGINE"], "the load bench needs PostgreSQL"
    user = database.get("USER") or "postgres"
    password = f":{database['PASSWORD']}" if database.get("PASSWORD") else ""
    host = database.get("HOST") or "127.0.0.1"
    port = database.get("PORT") or 5432
    return f"postgresql://{user}{password}@{host}:{port}/postgres"


@pytest.mark.e2e
def test_a_short_run_with_three_annotators_loses_nothing(tmp_path: Path) -> None:
    output = tmp_path / "load.json"
    command = [
        sys.executable,
        str(REPO_ROOT / "bench" / "load_bench.py"),
        *("--users", "3", "--duration", "4", "--frames", "150", "--patients", "2", "--workers", "2"),
        *("--database", f"clear_load_test_{uuid.uuid4().hex[:8]}", "--summary", str(output)),
        *("--json", str(tmp_path / "figures.json")),
    ]
    env = {**os.environ, "BENCH_ADMIN_DATABASE_URL": _admin_url()}
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)

    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads(output.read_text())
    assert summary["errors"] == 0, summary["error_examples"]
    assert summary["lost_labels"] == 0 and summary["unacknowledged_labels"] == 0
    assert summary["acknowledged_labels"] > 0
    assert summary["stored_labels"] == summary["acknowledged_labels"]
    figures = {result.key: result for result in read_results(tmp_path / "figures.json")}
    assert figures["load-errors"].value == 0 and figures["load-lost-labels"].value == 0
    assert figures["load-submit-server-p95"].value > 0
    kinds = summary["kinds"]
    assert kinds["next"]["statuses"] == {"200": kinds["next"]["count"]}
    assert kinds["submit"]["statuses"] == {"201": kinds["submit"]["count"]}
    for kind in ("edit", "retry"):
        assert set(kinds.get(kind, {}).get("statuses", {})) <= {"200", "201"}
    assert set(kinds.get("stale", {}).get("statuses", {})) <= {"409"}
    assert summary["requests"] == sum(figures["count"] for figures in kinds.values())
    assert kinds["submit"]["client_ms"]["p50"] > 0


def test_the_check_finds_lost_changed_and_unacknowledged_labels() -> None:
    results = [
        {
            "username": "a",
            "acknowledged": {"1": ["x", 1], "2": ["y", 2], "3": ["x", 1]},
            "samples": [],
            "errors": [],
        },
    ]
    stored = {
        "a": {1: ("x", 1), 2: ("y", 1), 4: ("x", 1)},  # 2 has an older version, 3 is missing, 4 untold
        "b": {1: ("x", 1)},  # no client is "b"
    }

    check = compare(results, stored)

    assert check["acknowledged"] == 3 and check["stored"] == 4
    assert len(check["lost"]) == 2 and any("frame 2" in line for line in check["lost"])
    assert any("frame 3" in line for line in check["lost"])
    assert sorted(check["unacknowledged"]) == ["a frame 4", "b frame 1"]
    clean = {"errors": 0, "lost_labels": 0, "unacknowledged_labels": 0, "acknowledged_labels": 3}
    assert not failed(clean)
    assert failed({**clean, "lost_labels": 1}) and failed({**clean, "errors": 1})
    assert failed({**clean, "acknowledged_labels": 0})
