"""Sensors that keep partitions in step with the config and the data: new models become partitions,
a model whose reference inputs changed gets its reference rebuilt, and days whose labels arrived get
their label-dependent metrics recomputed."""

import datetime as dt
import hashlib
import json

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from monitoring_pipelines.defs.common import WAREHOUSE_POOL
from monitoring_pipelines.defs.partitions import (
    MODELS_PARTITION_NAME,
    Partitions,
    model_day_key,
    model_partitions,
)
from monitoring_pipelines.defs.resources import MonitoringResource
from monitoring_pipelines.defs.run_hygiene import ensure_pools
from monitoring_pipelines.defs.schedules import label_refresh_job, reference_job
from monitoring_pipelines.storage.reference import input_fingerprint, stored_reference
from monitoring_pipelines.storage.sources import SourceError, source_for


@sensor(
    job=reference_job,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description="Adds a partition for every model in the config, and rebuilds a model's reference when what "
    "it is built from changed (config, reference window data, its labels) compared with the stored reference.",
)
def register_models(context: SensorEvaluationContext, monitoring: MonitoringResource):
    config = monitoring.config
    ensure_pools(context.instance, (WAREHOUSE_POOL,))  # before the first reference runs are queued
    known = set(context.instance.get_dynamic_partitions(MODELS_PARTITION_NAME))
    new = [m for m in config.model_names if m not in known]
    run_requests = []
    for model in config.models:
        fingerprint = input_fingerprint(config, model)
        _, stored = stored_reference(monitoring.warehouse, model.name)
        if stored != fingerprint:
            run_requests.append(
                RunRequest(run_key=f"reference|{model.name}|{fingerprint}", partition_key=model.name)
            )
    return SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=[model_partitions.build_add_request(new)] if new else [],
    )


def days_touched_by_labels(
    arrival_days: list[str], label_delay_days: int, first: dt.date, last: dt.date
) -> list[dt.date]:
    """Prediction days whose labels may have changed: up to label_delay_days before each arrival day.
    An arrival day that is not an ISO date is skipped: it names no prediction day, and raising here
    would stop the sensor (and its cursor) for every model."""
    days: set[dt.date] = set()
    for text in arrival_days:
        try:
            arrived = dt.date.fromisoformat(text)
        except ValueError:
            continue
        for back in range(1, label_delay_days + 1):
            day = arrived - dt.timedelta(days=back)
            if first <= day <= last:
                days.add(day)
    return sorted(days)


def label_arrivals_sensor(parts: Partitions) -> SensorDefinition:
    @sensor(
        name="label_arrivals",
        job=label_refresh_job,
        minimum_interval_seconds=300,
        default_status=DefaultSensorStatus.RUNNING,
        description="Watches the label source (folders by arrival day, or the labels table grouped by the day "
        "of label_ts); when labels arrive or change for arrival day A, re-materializes the label-dependent "
        "assets of the model-days A-1 … A-label_delay_days so metrics converge as labels land.",
    )
    def label_arrivals(context: SensorEvaluationContext, monitoring: MonitoringResource):
        config = monitoring.config
        seen: dict[str, dict[str, str]] = json.loads(context.cursor) if context.cursor else {}
        known = set(context.instance.get_dynamic_partitions(MODELS_PARTITION_NAME))
        yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
        run_requests = []
        for model in config.models:
            if model.name not in known:
                continue
            try:
                current = source_for(config, model).label_arrivals(model, parts.start)
            except (SourceError, OSError) as exc:  # this model waits; the others' labels still count
                context.log.warning(f"{model.name}: labels not readable: {exc}")
                continue
            previous = seen.get(model.name)
            seen[model.name] = current
            if previous is None:  # first look: remember, do not re-run history
                continue
            changed = [day for day, fp in current.items() if previous.get(day) != fp]
            tag = hashlib.sha256("|".join(f"{d}:{current[d]}" for d in sorted(changed)).encode()).hexdigest()[
                :12
            ]
            for day in days_touched_by_labels(changed, model.label_delay_days, parts.start, yesterday):
                run_requests.append(
                    RunRequest(
                        run_key=f"labels|{model.name}|{day.isoformat()}|{tag}",
                        partition_key=model_day_key(model.name, day),
                        tags={"monitoring/trigger": "label_arrival"},
                    )
                )
        return SensorResult(run_requests=run_requests, cursor=json.dumps(seen, sort_keys=True))

    return label_arrivals
