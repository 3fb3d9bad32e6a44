"""Alerting in Dagster: the `alerts` and `backlog_items` assets per model-day, the `monitoring_kpis`
report, the outbox sensor and the optional issue-tracker resource.

Thin on purpose: each asset loads through `alerting_service`, lets a pure core function decide and
reports what changed. No `from __future__ import annotations` here: Dagster reads the context and
resource annotations at definition time.
"""

import os

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetKey,
    ConfigurableResource,
    DefaultSensorStatus,
    EnvVar,
    MaterializeResult,
    MetadataValue,
    SensorEvaluationContext,
    SkipReason,
    asset,
    sensor,
)
from pydantic import Field

from monitoring_pipelines import alerting_service as svc
from monitoring_pipelines.core.alerts import SEVERITIES
from monitoring_pipelines.core.kpis import kpi_markdown, weekly_volume
from monitoring_pipelines.defs.common import WAREHOUSE_POOL
from monitoring_pipelines.defs.partitions import model_day_partitions, split_key
from monitoring_pipelines.defs.resources import MonitoringResource
from monitoring_pipelines.delivery import deliver_pending

# The assets whose checks write `check_results` (defs/checks.py); alerts for a model-day run after them.
CHECKED_ASSETS = (
    "prediction_snapshots",
    "drift_scores",
    "performance_metrics",
    "subgroup_metrics",
    "shadow_comparisons",
    "serving_metrics",
)
GITHUB_API_URL = "https://api.github.com"


# --------------------------------------------------------------------------- tracker resource


class TrackerResource(ConfigurableResource):
    """No external tracker: backlog items live in the warehouse and data/backlog.md only."""

    def client(self) -> svc.TrackerClient | None:
        return None


class GitHubTrackerResource(TrackerResource):
    """Mirror backlog items to GitHub Issues (open an issue per item, close it when the item resolves)."""

    repo: str = Field(description="owner/name of the repository the issues go to")
    token: str = Field(description="a token allowed to write issues; pass EnvVar('MONITORING_GITHUB_TOKEN')")
    api_url: str = Field(default=GITHUB_API_URL, description="REST API root (GitHub Enterprise, tests)")
    labels: list[str] = Field(default_factory=lambda: ["model-monitoring"])
    timeout_seconds: float = 10.0

    def client(self) -> svc.TrackerClient | None:
        return svc.GitHubIssuesClient(
            repo=self.repo,
            token=self.token,
            api_url=self.api_url,
            labels=self.labels,
            timeout=self.timeout_seconds,
        )


def alerting_resources() -> dict[str, TrackerResource]:
    """The `tracker` resource, chosen by environment: GitHub Issues when MONITORING_GITHUB_REPO is set
    (token from MONITORING_GITHUB_TOKEN, API root from MONITORING_GITHUB_API_URL), otherwise none."""
    repo = os.environ.get("MONITORING_GITHUB_REPO")
    if not repo:
        return {"tracker": TrackerResource()}
    return {
        "tracker": GitHubTrackerResource(
            repo=repo,
            token=EnvVar("MONITORING_GITHUB_TOKEN"),
            api_url=os.environ.get("MONITORING_GITHUB_API_URL") or GITHUB_API_URL,
        )
    }


# --------------------------------------------------------------------------- assets


@asset(
    partitions_def=model_day_partitions,
    group_name="alerting",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb"},
    deps=[AssetKey(name) for name in CHECKED_ASSETS],
    description="One row per alert episode (contract §3): every failed check finding of the model up to this "
    "day, deduplicated by model + check + subject, with hysteresis, escalation and auto-resolution "
    "(docs/alerting.md). New notifications go to the outbox; the deliver_notifications sensor sends them.",
)
def alerts(context: AssetExecutionContext, monitoring: MonitoringResource) -> MaterializeResult:
    model_name, day = split_key(context.partition_key)
    result = svc.refresh_alerts(monitoring.warehouse, monitoring.config, model_name, day)
    current = result.decision.current
    open_now = current[current["status"] != "resolved"] if len(current) else current
    by_severity = {s: int((open_now["severity"] == s).sum()) if len(open_now) else 0 for s in SEVERITIES}
    weekly = weekly_volume(current)
    if not result.decision.fresh:
        context.log.info(
            f"{day} is older than the newest checked day by more than the notify window: no messages"
        )
    return MaterializeResult(
        metadata={
            **{f"open_{s}": by_severity[s] for s in SEVERITIES},
            "alerts_changed": result.written,
            "new_notifications": result.enqueued,
            "notifications_fresh": result.decision.fresh,
            "open_alerts": MetadataValue.md(svc.alerts_markdown(current)),
            "alerts_per_week_last_8": MetadataValue.md(_weekly_md(weekly.tail(8))),
        }
    )


@asset(
    partitions_def=model_day_partitions,
    group_name="alerting",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb"},
    deps=[alerts],
    description="One tracked item per alert that passed noise control, with its lineage (alert ids, assets, "
    "failing partitions, runs, evidence, Dagster UI links). Also writes data/backlog.md and, when the "
    "`tracker` resource is configured, mirrors items to GitHub Issues.",
)
def backlog_items(
    context: AssetExecutionContext, monitoring: MonitoringResource, tracker: TrackerResource
) -> MaterializeResult:
    model_name, _ = split_key(context.partition_key)
    warehouse = monitoring.warehouse
    decision = svc.refresh_backlog(warehouse, monitoring.config, model_name)
    export = svc.export_to_tracker(warehouse, tracker.client(), model_name)
    for error in export.errors:
        context.log.warning(f"tracker: {error}")
    path = svc.write_backlog_markdown(warehouse, monitoring.config)
    current = decision.current
    counts = {
        s: int((current["status"] == s).sum()) if len(current) else 0
        for s in ("open", "in_progress", "resolved")
    }
    return MaterializeResult(
        metadata={
            **{f"items_{s}": n for s, n in counts.items()},
            "items_changed": len(decision.items),
            "tracker_created": export.created,
            "tracker_closed": export.closed,
            "tracker_errors": len(export.errors),
            "backlog_file": MetadataValue.path(str(path)),
        }
    )


@asset(
    group_name="reporting",
    kinds={"duckdb"},
    deps=[alerts, backlog_items],
    description="Monitoring KPIs over all models: mean time to detect / acknowledge / resolve, alerts per "
    "model-week (the noise budget), share of alerts acknowledged, of findings with a backlog item and of "
    "incidents detected by monitoring first. Written to monitoring.monitoring_kpis, "
    "monitoring.alert_volume_weekly and data/kpis.json.",
)
def monitoring_kpis(context: AssetExecutionContext, monitoring: MonitoringResource) -> MaterializeResult:
    kpis, path = svc.compute_kpis(monitoring.warehouse, monitoring.config)
    numbers = {k: v for k, v in kpis.values.items() if v is not None}
    return MaterializeResult(
        metadata={
            **numbers,
            "kpis": MetadataValue.md(kpi_markdown(kpis)),
            "kpis_file": MetadataValue.path(str(path)),
        }
    )


# --------------------------------------------------------------------------- sensor


@sensor(
    minimum_interval_seconds=180,
    default_status=DefaultSensorStatus.RUNNING,
    description="Sends pending notifications from the outbox (retries with backoff); launches no run.",
)
def deliver_notifications(context: SensorEvaluationContext, monitoring: MonitoringResource) -> SkipReason:
    cfg = monitoring.config.alerting
    stats = deliver_pending(
        monitoring.warehouse, max_attempts=cfg.max_attempts, retry_base_seconds=cfg.retry_base_seconds
    )
    for error in stats.errors:
        context.log.warning(error)
    return SkipReason(
        f"outbox: {stats.delivered} delivered, {stats.retried} to retry, {stats.failed} failed, "
        f"{stats.skipped_unconfigured} waiting for channel settings, {stats.pending_left} pending"
    )


def _weekly_md(weekly: pd.DataFrame) -> str:
    if weekly.empty:
        return "No alerts yet."
    lines = [
        "| week | alerts | detected | notified | critical | warning | info |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in weekly.itertuples(index=False):
        lines.append(
            f"| {r.week} | {r.alerts} | {r.detected} | {r.notified} | {r.critical} | {r.warning} | {r.info} |"
        )
    return "\n".join(lines)


ALERTING_ASSETS = [alerts, backlog_items, monitoring_kpis]
ALERTING_SENSORS = [deliver_notifications]
