# The real-worker fixtures of the end-to-end tests, for the heartbeat test here.
from tests.e2e.conftest import celery_broker_prefix, celery_worker_process  # noqa: F401
