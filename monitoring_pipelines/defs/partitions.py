"""Partitions: one day × one model. Models are a dynamic dimension so a model added to the config
appears without a code change (the `register_models` sensor and the CLI add its key)."""

from __future__ import annotations

import datetime as dt
import os

from dagster import (
    DailyPartitionsDefinition,
    DynamicPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionsDefinition,
)

from monitoring_pipelines.config import load_config

MODELS_PARTITION_NAME = "models"


def _start_date() -> dt.date:
    override = os.environ.get("MONITORING_PARTITIONS_START")
    if override:
        return dt.date.fromisoformat(override)
    return load_config().start_date


PARTITIONS_START = _start_date()

model_partitions = DynamicPartitionsDefinition(name=MODELS_PARTITION_NAME)
daily_partitions = DailyPartitionsDefinition(start_date=PARTITIONS_START.isoformat(), timezone="UTC")
model_day_partitions = MultiPartitionsDefinition({"date": daily_partitions, "model": model_partitions})


def model_day_key(model_name: str, day: dt.date) -> MultiPartitionKey:
    return MultiPartitionKey({"date": day.isoformat(), "model": model_name})


def split_key(partition_key: str | MultiPartitionKey) -> tuple[str, dt.date]:
    """(model_name, partition_date) of a date×model partition key."""
    if not isinstance(partition_key, MultiPartitionKey):
        partition_key = model_day_partitions.get_partition_key_from_str(partition_key)
    dims = partition_key.keys_by_dimension
    return dims["model"], dt.date.fromisoformat(dims["date"])
