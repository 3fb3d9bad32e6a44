"""Jobs and the nightly schedules: at 02:15 UTC every configured model's previous day, at 02:45 the
dashboard and KPIs."""

import datetime as dt

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    define_asset_job,
    schedule,
)

from monitoring_pipelines.defs.partitions import MODELS_PARTITION_NAME, model_day_key
from monitoring_pipelines.defs.resources import MonitoringResource

MONITORING_GROUPS = ("ingest", "metrics", "alerting")

monitoring_job = define_asset_job(
    "monitoring_job",
    selection=AssetSelection.groups(*MONITORING_GROUPS),
    description="Every monitoring asset and check of one model-day, in dependency order.",
)

metrics_job = define_asset_job(
    "metrics_job",
    selection=AssetSelection.groups("ingest", "metrics"),
    description="The model-day's snapshot, metrics and checks without alerting: a backfill runs these for "
    "many days in parallel, then alerting_job over the range in date order.",
)

alerting_job = define_asset_job(
    "alerting_job",
    selection=AssetSelection.groups("alerting"),
    description="Alerts and backlog items of a model over a range of days, in date order (one run per range).",
)

label_refresh_job = define_asset_job(
    "label_refresh_job",
    selection=AssetSelection.assets(
        "performance_metrics", "subgroup_metrics", "shadow_comparisons"
    ).downstream()
    - AssetSelection.groups("reporting"),
    description="Recompute the label-dependent metrics of a model-day (and the alerts after them) when "
    "new labels arrive.",
)

reference_job = define_asset_job(
    "reference_job",
    selection=AssetSelection.groups("reference"),
    description="Rebuild a model's reference profile and baselines (partitioned by model) when its inputs changed.",
)

dashboard_job = define_asset_job(
    "dashboard_job",
    selection=AssetSelection.groups("reporting"),
    description="Rebuild the static dashboard and the monitoring KPIs.",
)

JOBS = [
    monitoring_job,
    metrics_job,
    alerting_job,
    reference_job,
    label_refresh_job,
    dashboard_job,
]


@schedule(
    cron_schedule="15 2 * * *",
    job=monitoring_job,
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Nightly at 02:15 UTC: the previous UTC day for every configured model.",
)
def nightly_monitoring(context: ScheduleEvaluationContext, monitoring: MonitoringResource):
    day = (context.scheduled_execution_time.astimezone(dt.UTC) - dt.timedelta(days=1)).date()
    known = set(context.instance.get_dynamic_partitions(MODELS_PARTITION_NAME))
    models = [m for m in monitoring.config.model_names if m in known]
    if not models:
        return SkipReason("no model partitions registered yet (the register_models sensor adds them)")
    return [
        RunRequest(
            run_key=f"{model}|{day.isoformat()}",
            partition_key=model_day_key(model, day),
            tags={"monitoring/model": model, "monitoring/date": day.isoformat()},
        )
        for model in models
    ]


@schedule(
    cron_schedule="45 2 * * *",
    job=dashboard_job,
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Nightly at 02:45 UTC, after the monitoring runs: dashboard and KPIs.",
)
def nightly_dashboard(context: ScheduleEvaluationContext):
    return RunRequest(run_key=context.scheduled_execution_time.date().isoformat())


SCHEDULES: list[ScheduleDefinition] = [nightly_monitoring, nightly_dashboard]
