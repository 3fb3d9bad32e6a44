"""Sensors that keep partitions in step with the config: new models become partitions, and a model
whose reference definition changed gets its reference profile rebuilt."""

import datetime as dt
import hashlib
import json

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from monitoring_pipelines.config import ModelConfig, load_config
from monitoring_pipelines.defs.partitions import (
    MODELS_PARTITION_NAME,
    PARTITIONS_START,
    model_day_key,
    model_partitions,
)
from monitoring_pipelines.defs.schedules import label_refresh_job, reference_job
from monitoring_pipelines.storage.sources import source_for


def reference_fingerprint(model: ModelConfig) -> str:
    """What the reference profile depends on in the config (window, features, binning)."""
    drift = model.thresholds.drift
    payload = {
        "window": [model.reference.start.isoformat(), model.reference.end.isoformat(), model.reference.path],
        "features": model.features.model_dump(),
        "segments": model.segments,
        "bins": drift.bins,
        "top_k": drift.top_k,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


@sensor(
    job=reference_job,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description="Adds a partition for every model in the config and rebuilds a model's reference "
    "profile when its reference window, features or binning change.",
)
def register_models(context: SensorEvaluationContext):
    config = load_config()
    known = set(context.instance.get_dynamic_partitions(MODELS_PARTITION_NAME))
    new = [m for m in config.model_names if m not in known]
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    run_requests = []
    for model in config.models:
        fingerprint = reference_fingerprint(model)
        if seen.get(model.name) != fingerprint:
            run_requests.append(
                RunRequest(run_key=f"reference|{model.name}|{fingerprint}", partition_key=model.name)
            )
            seen[model.name] = fingerprint
    return SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=[model_partitions.build_add_request(new)] if new else [],
        cursor=json.dumps(seen, sort_keys=True),
    )


def days_touched_by_labels(
    arrival_days: list[str], label_delay_days: int, first: dt.date, last: dt.date
) -> list[dt.date]:
    """Prediction days whose labels may have changed: up to label_delay_days before each arrival day."""
    days: set[dt.date] = set()
    for text in arrival_days:
        arrived = dt.date.fromisoformat(text)
        for back in range(1, label_delay_days + 1):
            day = arrived - dt.timedelta(days=back)
            if first <= day <= last:
                days.add(day)
    return sorted(days)


@sensor(
    job=label_refresh_job,
    minimum_interval_seconds=300,
    default_status=DefaultSensorStatus.RUNNING,
    description="Watches the label source (folders by arrival day, or the labels table grouped by the day of "
    "label_ts); when labels arrive or change for arrival day A, re-materializes "
    "the label-dependent assets of the model-days A-1 … A-label_delay_days so metrics converge as labels land.",
)
def label_arrivals(context: SensorEvaluationContext):
    config = load_config()
    seen: dict[str, dict[str, str]] = json.loads(context.cursor) if context.cursor else {}
    known = set(context.instance.get_dynamic_partitions(MODELS_PARTITION_NAME))
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    run_requests = []
    for model in config.models:
        if model.name not in known:
            continue
        current = source_for(config, model).label_arrivals(model, PARTITIONS_START)
        previous = seen.get(model.name)
        seen[model.name] = current
        if previous is None:  # first look: remember, do not re-run history
            continue
        changed = [day for day, fp in current.items() if previous.get(day) != fp]
        for day in days_touched_by_labels(changed, model.label_delay_days, PARTITIONS_START, yesterday):
            tag = hashlib.sha256("|".join(f"{d}:{current[d]}" for d in sorted(changed)).encode()).hexdigest()[
                :12
            ]
            run_requests.append(
                RunRequest(
                    run_key=f"labels|{model.name}|{day.isoformat()}|{tag}",
                    partition_key=model_day_key(model.name, day),
                    tags={"monitoring/trigger": "label_arrival"},
                )
            )
    return SensorResult(run_requests=run_requests, cursor=json.dumps(seen, sort_keys=True))
