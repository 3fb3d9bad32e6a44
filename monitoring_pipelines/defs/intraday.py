"""The intraday watch in Dagster: the `intraday_today` asset (the current UTC day so far of one model)
and the `intraday_watch` sensor that materializes it every `intraday.every_minutes`.

Thin: `intraday_service.run_look` reads the day so far once (DuckDB, the nightly row rules),
`core.intraday.look` judges it, the look goes to `intraday_results` and alerting turns it into the same
alerts as the nightly run's. docs/intraday.md describes the rules.
"""

import json

import pandas as pd
from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    AssetSelection,
    DefaultSensorStatus,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    asset,
    define_asset_job,
    sensor,
)

from monitoring_pipelines.core import intraday as core
from monitoring_pipelines.core.formatting import markdown_table
from monitoring_pipelines.defs.common import WAREHOUSE_POOL
from monitoring_pipelines.defs.partitions import MODELS_PARTITION_NAME, model_partitions
from monitoring_pipelines.defs.resources import MonitoringResource
from monitoring_pipelines.intraday_service import clock_now, day_fingerprint, run_look
from monitoring_pipelines.storage.sources import SourceError

LOOK_AT_TAG = "monitoring/look_at"


@asset(
    name="intraday_today",
    partitions_def=model_partitions,
    group_name="intraday",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb", "scipy"},
    deps=[AssetDep(AssetKey("reference_profiles"))],
    description="The current UTC day so far of one model, judged by the label-free checks (serving SLOs, null "
    "spikes, unseen categories, out-of-range values, score / decision-rate and input drift, volume by time of "
    "day) at the look's alpha; materialized by the intraday_watch sensor every intraday.every_minutes. Rows in "
    "monitoring.intraday_results; findings become the same alerts as the nightly run's (docs/intraday.md).",
)
def intraday_today(context: AssetExecutionContext, monitoring: MonitoringResource) -> MaterializeResult:
    config = monitoring.config
    model = config.model(context.partition_key)
    tag = context.run.tags.get(LOOK_AT_TAG)
    look_at = pd.Timestamp(tag) if tag else clock_now(config)
    result, refresh = run_look(config, monitoring.warehouse, model, look_at, context.run_id)
    failing = core.summary_rows(result.results)
    statuses = {f"{asset}.{r.check_name}": r.status for asset, r in result.results}
    return MaterializeResult(
        metadata={
            "day": MetadataValue.text(result.day.isoformat()),
            "look_at": MetadataValue.text(result.look_at.isoformat()),
            "rows_so_far": MetadataValue.int(result.rows_so_far),
            "data_until": MetadataValue.text(
                result.data_until.isoformat() if result.data_until is not None else ""
            ),
            "alpha_per_test": MetadataValue.float(result.alpha),
            "failing_findings": MetadataValue.int(len(failing)),
            "checks": MetadataValue.json(statuses),
            "findings": MetadataValue.md(
                markdown_table(failing, ["check", "subject", "severity", "message"])
                if failing
                else "nothing found"
            ),
            "alerts_written": MetadataValue.int(refresh.written),
            "notifications_enqueued": MetadataValue.int(refresh.enqueued),
        }
    )


intraday_job = define_asset_job(
    "intraday_job", selection=AssetSelection.assets(intraday_today), partitions_def=model_partitions
)


@sensor(
    job=intraday_job,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Every intraday.every_minutes (per model, opt-in): when new prediction files arrived for the "
    "current UTC day, materializes intraday_today for that model with the look's clock (tag monitoring/look_at).",
)
def intraday_watch(context: SensorEvaluationContext, monitoring: MonitoringResource):
    config = monitoring.config
    watched = [m for m in config.models if m.intraday is not None]
    if not watched:
        return SkipReason("no model has intraday: in the config")
    cursor: dict[str, dict[str, str]] = json.loads(context.cursor) if context.cursor else {}
    known = set(context.instance.get_dynamic_partitions(MODELS_PARTITION_NAME))
    now = clock_now(config)
    requests = []
    for model in watched:
        if model.name not in known:
            continue
        seen = cursor.get(model.name, {})
        last = pd.Timestamp(seen["look_at"]) if seen.get("look_at") else None
        slot = core.due_look(last, now, model.intraday.every_minutes)
        if slot is None:
            continue
        try:
            fingerprint = day_fingerprint(config, model, slot.date())
        except (SourceError, OSError) as exc:
            context.log.warning(f"{model.name}: the day's files are not readable: {exc}")
            continue
        if (
            fingerprint
            and fingerprint == seen.get("fingerprint")
            and last is not None
            and last.date() == slot.date()
        ):
            continue  # nothing new arrived: the monitoring_gaps sensor watches for silence
        cursor[model.name] = {"look_at": slot.isoformat(), "fingerprint": fingerprint}
        requests.append(
            RunRequest(
                run_key=f"intraday|{model.name}|{slot.isoformat()}",
                partition_key=model.name,
                tags={LOOK_AT_TAG: slot.isoformat(), "monitoring/trigger": "intraday"},
            )
        )
    return SensorResult(run_requests=requests, cursor=json.dumps(cursor, sort_keys=True))


ASSETS = [intraday_today]
JOBS = [intraday_job]
SENSORS = [intraday_watch]
