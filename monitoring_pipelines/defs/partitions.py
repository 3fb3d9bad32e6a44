"""Partitions: one day × one model. Models are a dynamic dimension so a model added to the config
appears without a code change (the `register_models` sensor and the CLI add its key). The date
dimension starts at the config's first day, so its definition is built from the config when the
definitions are built (definitions.py), never when a module is imported."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

from dagster import (
    DailyPartitionsDefinition,
    DynamicPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionsDefinition,
)

from monitoring_pipelines.config import MonitoringConfig

MODELS_PARTITION_NAME = "models"
model_partitions = DynamicPartitionsDefinition(name=MODELS_PARTITION_NAME)


@dataclass(frozen=True)
class Partitions:
    """The partition definitions of one set of definitions."""

    start: dt.date
    daily: DailyPartitionsDefinition
    model_day: MultiPartitionsDefinition
    models: DynamicPartitionsDefinition = model_partitions

    @classmethod
    def for_start(cls, start: dt.date) -> Partitions:
        daily = DailyPartitionsDefinition(start_date=start.isoformat(), timezone="UTC")
        return cls(start, daily, MultiPartitionsDefinition({"date": daily, "model": model_partitions}))

    @classmethod
    def from_config(cls, config: MonitoringConfig) -> Partitions:
        """From `partitions_start` in the config (MONITORING_PARTITIONS_START overrides), else the
        earliest reference start."""
        override = os.environ.get("MONITORING_PARTITIONS_START")
        return cls.for_start(dt.date.fromisoformat(override) if override else config.start_date)


def model_day_key(model_name: str, day: dt.date) -> MultiPartitionKey:
    return MultiPartitionKey({"date": day.isoformat(), "model": model_name})


def split_key(partition_key: str | MultiPartitionKey) -> tuple[str, dt.date]:
    """(model_name, partition_date) of a date×model partition key ("YYYY-MM-DD|model" as a string)."""
    if isinstance(partition_key, MultiPartitionKey):
        dims = partition_key.keys_by_dimension
        return dims["model"], dt.date.fromisoformat(dims["date"])
    day, _, model = str(partition_key).partition("|")  # dimensions in name order: date, model
    return model, dt.date.fromisoformat(day)
