"""The executor comes from the config's `execution:` block; in-process stays the default."""

from __future__ import annotations

import pytest

from monitoring_pipelines.config import ConfigError, load_config
from monitoring_pipelines.definitions import build_definitions
from monitoring_pipelines.defs.execution import executor_for

pytestmark = pytest.mark.distributed  # needs the `distributed` extra: runs in .venv-distributed (Makefile)


def _config(write_config, config_dict, execution=None):
    raw = dict(config_dict)
    if execution is not None:
        raw["execution"] = execution
    return load_config(write_config(raw))


def test_in_process_is_the_default_and_every_job_uses_it(write_config, config_dict):
    config = _config(write_config, config_dict)
    assert executor_for(config).name == "in_process"
    defs = build_definitions(config)
    assert defs.resolve_job_def("metrics_job").executor_def.name == "in_process"


def test_celery_from_config_reaches_every_job(write_config, config_dict, monkeypatch):
    monkeypatch.delenv("DAGSTER_CELERY_BROKER_URL", raising=False)
    config = _config(write_config, config_dict, {"executor": "celery", "broker": "redis://127.0.0.1:1/0"})
    defs = build_definitions(config)
    for job in ("metrics_job", "alerting_job", "monitoring_job", "reference_job"):
        executor = defs.resolve_job_def(job).executor_def
        assert executor.name == "celery"


def test_multiprocess_takes_its_limit(write_config, config_dict):
    config = _config(write_config, config_dict, {"executor": "multiprocess", "max_concurrent": 3})
    assert executor_for(config).name == "multiprocess"


def test_celery_without_a_broker_is_a_clear_error(write_config, config_dict, monkeypatch):
    monkeypatch.delenv("DAGSTER_CELERY_BROKER_URL", raising=False)
    config = _config(write_config, config_dict, {"executor": "celery"})
    with pytest.raises(RuntimeError, match="broker"):
        executor_for(config)


def test_an_unknown_executor_is_a_config_error(write_config, config_dict):
    with pytest.raises(ConfigError, match="execution.executor"):
        _config(write_config, config_dict, {"executor": "k8s"})
