"""Health commands for the processes that serve no HTTP (container healthchecks, Kubernetes exec
probes): `python -m config.probe worker` and `python -m config.probe broker`.

`worker` exits 0 when the Celery worker of this host (`celery@<hostname>`, Celery's default node
name; `--worker` names another) has written a heartbeat (config/heartbeat.py) within
`CLEAR_WORKER_HEARTBEAT_MAX_AGE` seconds. A heartbeat and not `celery inspect ping`: a solo-pool GPU
worker in the middle of a training epoch does not answer a ping, but its heartbeat thread keeps
beating, so a busy worker is never taken for a dead one. `broker` exits 0 when the broker answers
(Redis PING with the heartbeat module's 2 s timeouts; the demo's filesystem broker: its folder
exists). Anything else exits 1 with one line on stderr saying why.

Only the settings are loaded (no `django.setup()`, no model or torch import), so a probe costs a
fraction of a second every few seconds beside a worker that may be busy with a whole GPU.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from pathlib import Path

from django.conf import settings

from config import heartbeat

# Django's settings are lazy: naming the module before the first access is enough.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def default_worker_name() -> str:
    """Celery's default node name for a worker started on this host without `-n`."""
    return f"celery@{socket.gethostname()}"


def check_worker(worker: str, *, now: float | None = None) -> str | None:
    """None when `worker` beat recently enough; otherwise why not."""
    max_age = float(settings.CLEAR_WORKER_HEARTBEAT_MAX_AGE)
    beats = {beat.worker: beat for beat in heartbeat.read_all()}
    beat = beats.get(worker)
    if beat is None:
        return f"no heartbeat from {worker}"
    age = (time.time() if now is None else now) - beat.at
    if age > max_age:
        return f"the last heartbeat from {worker} is {age:.0f} s old (more than {max_age:.0f} s)"
    return None


def check_broker() -> str | None:
    """None when the broker answers; otherwise why not."""
    url = settings.CELERY_BROKER_URL
    if heartbeat.uses_redis(url):
        client = heartbeat.redis_client()
        try:
            client.ping()
        except Exception as exc:
            # The exception's text can name the host; the kind is enough for a healthcheck's log.
            return f"the broker did not answer PING ({type(exc).__name__})"
        finally:
            client.close()
        return None
    if url.startswith("filesystem://"):
        folder = Path(settings.CELERY_BROKER_FOLDER)
        return None if folder.is_dir() else "the filesystem broker's folder does not exist"
    return "unsupported broker transport"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m config.probe", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    worker = sub.add_parser("worker", help="this host's Celery worker has beaten recently")
    worker.add_argument("--worker", default=None, help="node name (default: celery@<hostname>)")
    sub.add_parser("broker", help="the broker answers")
    args = parser.parse_args(argv)
    try:
        problem = (
            check_worker(args.worker or default_worker_name()) if args.what == "worker" else check_broker()
        )
    except Exception as exc:
        problem = f"{args.what} check failed ({type(exc).__name__})"
    if problem is not None:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
