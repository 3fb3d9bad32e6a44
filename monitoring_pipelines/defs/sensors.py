"""Sensors that keep partitions in step with the config: new models become partitions, and a model
whose reference definition changed gets its reference profile rebuilt."""

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
from monitoring_pipelines.defs.partitions import MODELS_PARTITION_NAME, model_partitions
from monitoring_pipelines.defs.schedules import reference_job


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
            run_requests.append(RunRequest(run_key=f"reference|{model.name}|{fingerprint}", partition_key=model.name))
            seen[model.name] = fingerprint
    return SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=[model_partitions.build_add_request(new)] if new else [],
        cursor=json.dumps(seen, sort_keys=True),
    )
