"""Resources: the config, the warehouse and the prediction sources, chosen once at definitions load."""

from __future__ import annotations

from functools import cached_property

from dagster import ConfigurableResource

from monitoring_pipelines.config import MonitoringConfig, config_path_from_env, load_config
from monitoring_pipelines.storage.warehouse import Warehouse


class MonitoringResource(ConfigurableResource):
    """The validated config and the warehouse it names. `config_path` empty = MONITORING_CONFIG/demo."""

    config_path: str = ""

    @cached_property
    def config(self) -> MonitoringConfig:
        return load_config(self.config_path or None)

    @cached_property
    def warehouse(self) -> Warehouse:
        return Warehouse(self.config.warehouse)


def default_resources() -> dict[str, object]:
    return {"monitoring": MonitoringResource(config_path=str(config_path_from_env()))}
