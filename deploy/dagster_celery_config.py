"""Celery settings the step workers read (dagster-celery imports `dagster_celery_config` when present)."""

import os

broker_url = os.environ["DAGSTER_CELERY_BROKER_URL"]
result_backend = os.environ.get("DAGSTER_CELERY_BACKEND_URL", broker_url)
worker_prefetch_multiplier = 1  # one step at a time
task_acks_late = True  # a worker that dies mid-step gives the step back to the queue
