"""Alerting in Dagster: the `alerts` and `backlog_items` assets per model-day, the `monitoring_kpis`
report and the outbox sensor.

Alert state of a day builds on the days before it, so these assets take the model-days of their run
in date order. A nightly or UI run holds one model-day; the CLI's backfill runs a model's whole range
in one run (a partition-range run), after computing the metric days in parallel, and each model-day
still gets its own materialization with its own metadata. Thin on purpose: each asset loads through
`alerting_service`, lets a pure core function decide and reports what changed.
"""

import datetime as dt
import warnings
from collections import defaultdict

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    BackfillPolicy,
    BetaWarning,
    DefaultSensorStatus,
    MaterializeResult,
    MetadataValue,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    asset,
    sensor,
)

from monitoring_pipelines import alerting_service as svc
from monitoring_pipelines.core.alerts import SEVERITIES
from monitoring_pipelines.core.formatting import markdown_table
from monitoring_pipelines.core.kpis import kpi_markdown, weekly_volume
from monitoring_pipelines.defs.common import WAREHOUSE_POOL
from monitoring_pipelines.defs.partitions import Partitions, model_day_key, split_key
from monitoring_pipelines.defs.resources import MonitoringResource, TrackerResource
from monitoring_pipelines.delivery import (
    DeliveryBusy,
    DeliveryStats,
    OutboxStatus,
    deliver_pending,
    outbox_status,
)

# The assets whose checks write `check_results`; alerts for a model-day run after them.
CHECKED_ASSETS = (
    "prediction_snapshots",
    "drift_scores",
    "performance_metrics",
    "subgroup_metrics",
    "shadow_comparisons",
    "serving_metrics",
)
WEEKS_SHOWN = 8
# The alerting assets take a backfill's range in one run (BackfillPolicy.single_run), in date order.
warnings.filterwarnings("ignore", category=BetaWarning, message=".*backfill_policy.*")


def _as_of(current: pd.DataFrame | None, day: dt.date) -> pd.DataFrame:
    """The alerts of `current` (a later state) that had started by `day` and not resolved before it."""
    if current is None or current.empty:
        return pd.DataFrame() if current is None else current
    # as timestamps: `.dt.date` of a column that is all NaT stays datetime64 and cannot meet a date
    when = pd.Timestamp(day)
    first = pd.to_datetime(current["first_seen_date"])
    resolved = pd.to_datetime(current["resolved_date"])
    started = first <= when
    still_open = resolved.isna() | (resolved > when)
    # resolved later: it was open that day (an acknowledgement is a person's, kept as it stands now)
    then = current["status"].replace("resolved", "open").where(still_open, "resolved")
    return current[started].assign(status=then[started])


def _alert_metadata(
    context: AssetExecutionContext,
    model_name: str,
    day: dt.date,
    current: pd.DataFrame,
    written: int | None,
    enqueued: int,
    fresh: bool,
    outbox: str | None = None,
) -> None:
    """The model-day's alert metadata: open alerts by severity and incident, the open-alerts table."""
    open_now = current[current["status"] != "resolved"] if len(current) else current
    by_severity = {s: int((open_now["severity"] == s).sum()) if len(open_now) else 0 for s in SEVERITIES}
    incidents = open_now["incident_id"].fillna(open_now["alert_id"]).nunique() if len(open_now) else 0
    context.add_asset_metadata(
        {
            **{f"open_{s}": by_severity[s] for s in SEVERITIES},
            "open_incidents": int(incidents),
            "alerts_changed": written or 0,
            # False: an early day of a range, not evaluated on its own; its state is read from the
            # range's final evaluation
            "evaluated_on_its_own": written is not None,
            "new_notifications": enqueued,
            "notifications_fresh": fresh,
            # the outbox after this day's notifications were queued: whether they can go out at all
            **({"outbox": MetadataValue.text(outbox)} if outbox is not None else {}),
            "open_alerts": MetadataValue.md(svc.alerts_markdown(current)),
            "alerts_per_week_last_8": MetadataValue.md(_weekly_md(weekly_volume(current).tail(WEEKS_SHOWN))),
        },
        partition_key=model_day_key(model_name, day),
    )


def model_days(context: AssetExecutionContext, monitoring: MonitoringResource) -> list[tuple[str, dt.date]]:
    """The run's model-days, each model's in date order (one for a nightly run, a range for a backfill).
    In a range, a day whose log was unusable is left out, as its blocking check stops a one-day run."""
    by_model: dict[str, list[dt.date]] = defaultdict(list)
    for key in context.partition_keys:
        model_name, day = split_key(key)
        by_model[model_name].append(day)
    out = []
    for model_name in sorted(by_model):
        days = sorted(by_model[model_name])
        blocked = (
            svc.unusable_days(monitoring.warehouse, model_name, days[0], days[-1]) if len(days) > 1 else set()
        )
        out += [(model_name, d) for d in days if d not in blocked]
    return out


def build(parts: Partitions) -> list[AssetsDefinition]:
    @asset(
        partitions_def=parts.model_day,
        group_name="alerting",
        pool=WAREHOUSE_POOL,
        kinds={"duckdb"},
        deps=[AssetKey(name) for name in CHECKED_ASSETS],
        backfill_policy=BackfillPolicy.single_run(),
        description="One row per alert episode (contract §3): every failed check finding of the model up to "
        "this day, deduplicated by model + check + subject, with hysteresis, escalation, auto-resolution and "
        "re-opening, grouped into incidents (alerts that started together; docs/alerting.md). New "
        "notifications, one per incident, go to the outbox; the deliver_notifications sensor sends them.",
    )
    def alerts(context: AssetExecutionContext, monitoring: MonitoringResource) -> None:
        by_model: dict[str, list[dt.date]] = defaultdict(list)
        for model_name, day in model_days(context, monitoring):
            by_model[model_name].append(day)
        max_age = monitoring.config.alerting.notify_max_age_days
        for model_name, days in by_model.items():
            # The check history does not change while this step runs: read once per model, not per day.
            history = svc.load_history(monitoring.warehouse, model_name)
            # Every evaluation replays the whole history, so the state after the range's last day does
            # not depend on the days before it; only days within the notify window can send anything.
            # Those are evaluated one by one, in date order; earlier days of a range (a backfill) are
            # not, which kept a 120-day backfill's alerting quadratic in its length.
            evaluated = [d for d in days if d >= days[-1] - dt.timedelta(days=max_age)]
            current = None
            for day in evaluated:
                with monitoring.warehouse.session():  # one open of the file for the day's loads and writes
                    result = svc.refresh_alerts(
                        monitoring.warehouse, monitoring.config, model_name, day, history=history
                    )
                current = result.decision.current
                if not result.decision.fresh:
                    context.log.info(
                        f"{model_name} {day} is older than the newest checked day by more than the notify "
                        "window: no messages"
                    )
                _alert_metadata(
                    context,
                    model_name,
                    day,
                    current,
                    result.written,
                    result.enqueued,
                    result.decision.fresh,
                    outbox_status(monitoring.warehouse).describe() if day == evaluated[-1] else None,
                )
            for day in days[: len(days) - len(evaluated)]:
                # as of that day, from the run's final state (`first_seen` .. `resolved`)
                _alert_metadata(context, model_name, day, _as_of(current, day), None, 0, False)

    @asset(
        partitions_def=parts.model_day,
        group_name="alerting",
        pool=WAREHOUSE_POOL,
        kinds={"duckdb"},
        deps=[alerts],
        backfill_policy=BackfillPolicy.single_run(),
        description="One tracked item per incident that passed noise control, with its lineage (alert ids, assets, "
        "failing partitions, runs, evidence, Dagster UI links). Also writes data/backlog.md and, when the "
        "`tracker` resource is configured, mirrors items to GitHub Issues.",
    )
    def backlog_items(
        context: AssetExecutionContext, monitoring: MonitoringResource, tracker: TrackerResource
    ) -> None:
        warehouse = monitoring.warehouse
        days = model_days(context, monitoring)
        last = {model_name: day for model_name, day in days}
        client = tracker.client()
        built: dict[str, tuple[object, object]] = {}
        for model_name, day in days:
            # Items are built from the model's alerts as they stand after the alerts step (every day of
            # the run at once), so one build per model serves all its days; the days share its counts.
            first = model_name not in built
            if first:
                with warehouse.session():
                    decision = svc.refresh_backlog(warehouse, monitoring.config, model_name)
                export = svc.export_to_tracker(warehouse, client, model_name)
                for error in export.errors:
                    context.log.warning(f"tracker: {error}")
                built[model_name] = (decision, export)
            decision, export = built[model_name]
            metadata: dict[str, object] = {}
            if day == last[model_name]:  # the file shows the current items: written once per run
                path = svc.write_backlog_markdown(warehouse, monitoring.config)
                metadata["backlog_file"] = MetadataValue.path(str(path))
            current = decision.current
            counts = {
                s: int((current["status"] == s).sum()) if len(current) else 0
                for s in ("open", "in_progress", "resolved")
            }
            context.add_asset_metadata(
                {
                    **{f"items_{s}": n for s, n in counts.items()},
                    "items_changed": len(decision.items) if first else 0,
                    "tracker_created": export.created if first else 0,
                    "tracker_closed": export.closed if first else 0,
                    "tracker_errors": len(export.errors) if first else 0,
                    **metadata,
                },
                partition_key=model_day_key(model_name, day),
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

    return [alerts, backlog_items, monitoring_kpis]


class NotificationsNotDelivered(Exception):
    """Raised by the sensor so its tick shows as failed (red in the UI, with this message) while
    notifications wait for channel settings or were given up on this tick: a person must act."""


@sensor(
    minimum_interval_seconds=180,
    default_status=DefaultSensorStatus.RUNNING,
    description="Sends pending notifications from the outbox (retries with backoff); launches no run. "
    "Its tick fails, saying how many notifications wait for which channel setting, while a channel is not "
    "configured or when it gave notifications up; otherwise the tick is skipped with the outbox's state "
    "(waiting, next retry, failed) as its reason.",
)
def deliver_notifications(context: SensorEvaluationContext, monitoring: MonitoringResource) -> SkipReason:
    cfg = monitoring.config.alerting
    try:
        stats = deliver_pending(
            monitoring.warehouse, max_attempts=cfg.max_attempts, retry_base_seconds=cfg.retry_base_seconds
        )
    except DeliveryBusy as exc:  # a hand-run `deliver` is sending: this tick has nothing to do
        context.log.info(str(exc))
        return SkipReason(f"outbox: {exc}")
    for error in stats.errors:
        context.log.warning(error)
    status = outbox_status(monitoring.warehouse)
    text = tick_text(stats, status)
    if status.waiting_for_settings or stats.failed:
        # A skipped tick reads "0 runs requested" in the UI with its reason only on hover.
        raise NotificationsNotDelivered(text)
    return SkipReason(text)


def tick_text(stats: DeliveryStats, status: OutboxStatus) -> str:
    """The tick's text: the outbox's state first (what an operator must know and do), then what this
    tick did."""
    text = f"outbox: {status.describe()}."
    if status.waiting_for_settings:
        text += " Set the missing settings where the Dagster daemon runs: the next tick sends them."
    done = f"{stats.delivered} delivered, {stats.retried} failed and will retry, {stats.failed} given up"
    return f"{text} This tick: {done}."


SENSORS: list[SensorDefinition] = [deliver_notifications]


def _weekly_md(weekly: pd.DataFrame) -> str:
    if weekly.empty:
        return "No alerts yet."
    return markdown_table(
        weekly.to_dict("records"), ["week", "alerts", "detected", "notified", "critical", "warning", "info"]
    )
