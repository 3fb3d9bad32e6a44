"""The executor of every job, chosen by the config's `execution:` block instead of a code edit.

* `in_process` (default): a run's steps one after another in the run's process, sharing the model-day's
  snapshot and the background writer (the fastest for one machine: no process start per step);
* `multiprocess`: a process per step on the run's host (`max_concurrent` at once);
* `celery`: steps as tasks on a broker (Redis, RabbitMQ); `dagster-celery` workers on any host execute
  them (`celery -A dagster_celery.app worker`, docs/scaling.md).

The distributed ones need what every step process needs: the package, the config (MONITORING_CONFIG),
an instance they share (PostgreSQL: dagster_home/postgres/) and a warehouse that takes writers from
several processes (a DuckLake). A step of another process reads its model-day from the warehouse again
(MonitoringResource.snapshot), so each step costs a read the in-process executor shares.
"""

from __future__ import annotations

import os
from typing import Any

from dagster import ExecutorDefinition, in_process_executor, multiprocess_executor

from monitoring_pipelines.config import ExecutionConfig, MonitoringConfig


def executor_for(config: MonitoringConfig | ExecutionConfig | None) -> ExecutorDefinition:
    """The executor the config asks for (the in-process one when it says nothing)."""
    execution = config.execution if isinstance(config, MonitoringConfig) else config
    if execution is None or execution.executor == "in_process":
        return in_process_executor
    if execution.executor == "multiprocess":
        settings: dict[str, Any] = {}
        if execution.max_concurrent:
            settings["max_concurrent"] = execution.max_concurrent
        return multiprocess_executor.configured(settings, name="multiprocess")
    return _celery(execution)


def _celery(execution: ExecutionConfig) -> ExecutorDefinition:
    try:
        from dagster_celery import celery_executor
    except ImportError as exc:  # an optional part: say which package to install
        raise RuntimeError(
            "execution.executor: celery needs dagster-celery (pip install 'monitoring_pipelines[distributed]')"
        ) from exc
    broker = execution.broker or os.environ.get("DAGSTER_CELERY_BROKER_URL")
    if not broker:
        raise RuntimeError("execution.executor: celery needs execution.broker or DAGSTER_CELERY_BROKER_URL")
    settings = {
        "broker": broker,
        "backend": execution.backend or os.environ.get("DAGSTER_CELERY_BACKEND_URL") or broker,
        # a worker takes one step at a time and acknowledges it when done: a worker that dies mid-step
        # gives the step back to the queue instead of losing it
        "config_source": {"worker_prefetch_multiplier": 1, "task_acks_late": True},
    }
    return celery_executor.configured(settings, name="celery")
