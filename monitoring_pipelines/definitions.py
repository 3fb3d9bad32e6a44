"""Assembles the Dagster definitions from the config; no logic lives here.

`defs` is loaded lazily (`@definitions`): importing a module of this package reads no config; Dagster
(`dagster dev`, the workspace, `dg`) calls `defs()` when it loads the code location, and
`build_definitions(config)` is what tests and the CLI call with a config of their own.
"""

import os

os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

import warnings  # noqa: E402

# monitoring_job mixes the metric assets (one run per model-day) with the alerting assets (a backfill of
# alerting alone runs a range in one run, in date order); for the mixed job Dagster falls back to one
# model-day per run, which is what it should do. The notice says exactly that, on every load.
warnings.filterwarnings("ignore", message=r"Asset job \w+ materializes assets with varying BackfillPolicies")

from dagster import Definitions, definitions  # noqa: E402

from monitoring_pipelines.config import MonitoringConfig, load_config  # noqa: E402
from monitoring_pipelines.defs import (  # noqa: E402
    alerting,
    dashboard,
    drift,
    gaps,
    intraday,
    performance,
    reference,
    serving,
    shadow,
    snapshots,
    subgroups,
)
from monitoring_pipelines.defs.execution import executor_for  # noqa: E402
from monitoring_pipelines.defs.partitions import Partitions  # noqa: E402
from monitoring_pipelines.defs.resources import default_resources  # noqa: E402
from monitoring_pipelines.defs.run_hygiene import dead_cli_runs  # noqa: E402
from monitoring_pipelines.defs.schedules import JOBS, SCHEDULES  # noqa: E402
from monitoring_pipelines.defs.sensors import label_arrivals_sensor, register_models  # noqa: E402


def build_definitions(config: MonitoringConfig) -> Definitions:
    """Every asset, check, job, schedule, sensor and resource for this config."""
    parts = Partitions.from_config(config)
    return Definitions(
        assets=[
            snapshots.build(parts),
            reference.build(),
            drift.build(parts),
            performance.build(parts),
            subgroups.build(parts),
            serving.build(parts),
            shadow.build(parts),
            *alerting.build(parts),
            dashboard.dashboard,
            *intraday.ASSETS,
        ],
        jobs=[*JOBS, *intraday.JOBS],
        schedules=SCHEDULES,
        sensors=[
            register_models,
            label_arrivals_sensor(parts),
            dead_cli_runs,
            *alerting.SENSORS,
            *intraday.SENSORS,
            *gaps.SENSORS,
        ],
        resources=default_resources(str(config.config_path) if config.config_path else None),
        executor=executor_for(config),  # in-process unless the config says `execution:` (defs/execution.py)
    )


@definitions
def defs() -> Definitions:
    return build_definitions(load_config())
