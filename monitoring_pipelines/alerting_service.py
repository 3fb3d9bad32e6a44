"""Alerting against the warehouse: the one small module that reads `check_results`.

The Dagster assets (defs/alerting.py) and the CLI (`alerts`, `items`) both come through here, so a
person acknowledging an alert and the nightly run see the same rules. The decisions themselves are pure
functions in core/alerts.py, core/backlog.py and core/kpis.py; this module loads their inputs, writes
their outputs in one transaction per table and talks to the external tracker.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from monitoring_pipelines.config import MonitoringConfig
from monitoring_pipelines.core import alerts as core_alerts
from monitoring_pipelines.core import backlog as core_backlog
from monitoring_pipelines.core import kpis as core_kpis
from monitoring_pipelines.core.alerts import AlertDecision
from monitoring_pipelines.core.backlog import BacklogDecision
from monitoring_pipelines.core.formatting import fmt, markdown_table
from monitoring_pipelines.delivery import enqueue
from monitoring_pipelines.storage.warehouse import TABLES, Warehouse, qualified

# GitHubIssuesClient and TrackerClient stay importable from here for defs/alerting.py
# (svc.GitHubIssuesClient, svc.TrackerClient) until it imports monitoring_pipelines.trackers.
from monitoring_pipelines.trackers import GitHubIssuesClient as GitHubIssuesClient
from monitoring_pipelines.trackers import TrackerClient, TrackerError

BACKLOG_FILE = "backlog.md"
KPIS_FILE = "kpis.json"


# --------------------------------------------------------------------------- reads and writes


def load_history(warehouse: Warehouse, model_name: str) -> pd.DataFrame:
    """The model's check results, every day: the only read of `check_results` in alerting."""
    return warehouse.table("check_results", "model_name = ?", [model_name])


def unusable_days(warehouse: Warehouse, model_name: str, start: dt.date, end: dt.date) -> set[dt.date]:
    """Days of [start, end] whose prediction log could not be used (their blocking check failed)."""
    frame = warehouse.query(
        "SELECT DISTINCT partition_date FROM monitoring.check_results WHERE model_name = ? AND "
        "partition_date BETWEEN ? AND ? AND check_name = 'snapshot_usable' AND NOT passed",
        [model_name, start, end],
    )
    return set() if frame.empty else {pd.Timestamp(d).date() for d in frame["partition_date"]}


def load_alerts(warehouse: Warehouse, model_name: str | None = None) -> pd.DataFrame:
    if model_name is None:
        return warehouse.table("alerts")
    return warehouse.table("alerts", "model_name = ?", [model_name])


def load_items(warehouse: Warehouse, model_name: str | None = None) -> pd.DataFrame:
    if model_name is None:
        return warehouse.table("backlog_items")
    return warehouse.table("backlog_items", "model_name = ?", [model_name])


def upsert(warehouse: Warehouse, table: str, frame: pd.DataFrame, key: str) -> int:
    """Replace the rows whose `key` is in `frame` and insert `frame`, in one transaction."""
    if frame is None or frame.empty:
        return 0
    ids = [str(v) for v in frame[key]]
    return warehouse.replace_where(table, _for_insert(frame), f"list_contains(?, {key})", [ids])


def _for_insert(frame: pd.DataFrame) -> pd.DataFrame:
    """Plain object columns: DuckDB infers DATE/TIMESTAMP/LIST from the Python values themselves."""
    out = frame.astype(object).where(frame.notna(), None) if len(frame) else frame
    for col in ("alert_ids", "asset_keys", "partitions", "run_ids"):
        if col in out.columns:
            out[col] = [list(v) if isinstance(v, list | tuple) else v for v in frame[col]]
    return out


# --------------------------------------------------------------------------- alerts


@dataclass(frozen=True)
class AlertRefresh:
    decision: AlertDecision
    enqueued: int  # notifications new to the outbox
    written: int  # alert rows inserted or changed


def refresh_alerts(
    warehouse: Warehouse,
    config: MonitoringConfig,
    model_name: str,
    as_of: dt.date,
    now: pd.Timestamp | None = None,
) -> AlertRefresh:
    """Evaluate the model's alerts as of `as_of`, enqueue what must be said, upsert the alerts.

    Notifications go to the outbox first: if the alert write then fails, the re-run enqueues the
    same ids again (ignored) instead of forgetting that a message was due.
    """
    decision = core_alerts.evaluate(
        load_history(warehouse, model_name),
        load_alerts(warehouse, model_name),
        config.alerting,
        owner=_owner(config, model_name),
        as_of=as_of,
        now=now,
    )
    enqueued = enqueue(warehouse, decision.notifications) if len(decision.notifications) else 0
    written = upsert(warehouse, "alerts", decision.alerts, "alert_id")
    return AlertRefresh(decision=decision, enqueued=enqueued, written=written)


def list_alerts(
    config: MonitoringConfig, status: str | None = None, model: str | None = None
) -> pd.DataFrame:
    """Alerts newest first, worst first; `status` and `model` filter."""
    frame = load_alerts(Warehouse(config.warehouse), model)
    if status:
        frame = frame[frame["status"] == status]
    if frame.empty:
        return frame.reset_index(drop=True)
    rank = frame["severity"].map(core_alerts.level_of)
    return (
        frame.assign(_rank=rank)
        .sort_values(["partition_date", "_rank"], ascending=False)
        .drop(columns="_rank")
        .reset_index(drop=True)
    )


def set_alert_status(
    config: MonitoringConfig, alert_id: str, status: str, by: str = "user", now: pd.Timestamp | None = None
) -> dict[str, Any]:
    """A person acknowledges or resolves an alert; its backlog item follows.

    Resolving a paged (critical) alert enqueues the 'resolve' message at once, so the page closes
    now rather than after the next nightly run.
    """
    if status not in ("acknowledged", "resolved"):
        raise ValueError(f"status must be 'acknowledged' or 'resolved', not {status!r}")
    warehouse = Warehouse(config.warehouse)
    now = _now(now)
    row = _one(
        core_alerts.normalize_alerts(warehouse.table("alerts", "alert_id = ?", [alert_id])), "alert", alert_id
    )
    if status == "acknowledged":
        row = core_alerts.acknowledge(row, now)
    else:
        row = core_alerts.resolve_by_person(row, now, by=by)
        notes = core_alerts.resolve_notifications(
            row, config.alerting, _owner(config, row["model_name"]), now
        )
        if notes:
            enqueue(warehouse, pd.DataFrame(notes, columns=core_alerts.NOTIFICATION_COLUMNS))
    upsert(warehouse, "alerts", core_alerts.alerts_frame([row]), "alert_id")
    _follow_alert(warehouse, row, now)
    return row


def _follow_alert(warehouse: Warehouse, alert: Mapping[str, Any], now: pd.Timestamp) -> None:
    """The item tracking this alert: in progress once acknowledged, resolved once all its alerts are."""
    items = core_backlog.normalize_items(
        warehouse.table("backlog_items", "list_contains(alert_ids, ?)", [alert["alert_id"]])
    )
    for item in items:
        if item["status"] == "resolved":
            continue
        if alert["status"] == "resolved":
            ids = item["alert_ids"]
            states = warehouse.table("alerts", "list_contains(?, alert_id)", [ids])["status"].tolist()
            if states and all(s == "resolved" for s in states):
                item.update(status="resolved", resolved_at=now, updated_at=now)
        elif item["status"] == "open":
            item.update(status="in_progress", updated_at=now)
        else:
            continue
        upsert(warehouse, "backlog_items", core_backlog.items_frame([item]), "item_id")


# --------------------------------------------------------------------------- backlog


def refresh_backlog(
    warehouse: Warehouse, config: MonitoringConfig, model_name: str, now: pd.Timestamp | None = None
) -> BacklogDecision:
    """Open or update the model's backlog items from its alerts; lineage from its check history."""
    decision = core_backlog.build_items(
        load_alerts(warehouse, model_name),
        core_alerts.finding_rows(load_history(warehouse, model_name)),
        load_items(warehouse, model_name),
        config.alerting.ui_base_url,
        now=now,
    )
    upsert(warehouse, "backlog_items", decision.items, "item_id")
    return decision


def list_items(config: MonitoringConfig, status: str | None = None, model: str | None = None) -> pd.DataFrame:
    frame = load_items(Warehouse(config.warehouse), model)
    if status:
        frame = frame[frame["status"] == status]
    cols = [
        "item_id",
        "status",
        "severity",
        "model_name",
        "title",
        "reported_by",
        "created_at",
        "external_ref",
    ]
    frame = frame.sort_values("created_at", ascending=False) if len(frame) else frame
    return frame[[c for c in cols if c in frame.columns]].reset_index(drop=True)


def open_item(
    config: MonitoringConfig,
    model_name: str,
    title: str,
    severity: str = "warning",
    reported_by: str = "user",
    dedup_key: str | None = None,
    description: str | None = None,
    now: pd.Timestamp | None = None,
) -> str:
    """A backlog item a person opens (e.g. a user reported bad predictions before any alert).

    Pass the alert's `dedup_key` (see `alerts list`) to have a later alert for the same check and
    subject join this item instead of opening its own.
    """
    config.model(model_name)  # KeyError naming the known models
    item = core_backlog.new_item(
        model_name=model_name,
        title=title,
        severity=severity,
        reported_by=reported_by,
        now=_now(now),
        dedup_key=dedup_key,
        description=description,
    )
    upsert(Warehouse(config.warehouse), "backlog_items", core_backlog.items_frame([item]), "item_id")
    return str(item["item_id"])


def set_item_status(
    config: MonitoringConfig, item_id: str, status: str, by: str = "user", now: pd.Timestamp | None = None
) -> dict[str, Any]:
    """Move an item: open (re-open), in_progress, or resolved. Resolving it resolves its alerts too
    (a later failure then opens a new alert and item); re-opening keeps it open until a person
    resolves it or a new alert attached to it resolves."""
    if status not in core_backlog.ITEM_STATUSES:
        raise ValueError(f"status must be one of {core_backlog.ITEM_STATUSES}, not {status!r}")
    warehouse = Warehouse(config.warehouse)
    now = _now(now)
    item = _one(
        core_backlog.normalize_items(warehouse.table("backlog_items", "item_id = ?", [item_id])),
        "backlog item",
        item_id,
    )
    item.update(status=status, updated_at=now, resolved_at=now if status == "resolved" else None)
    if status == "resolved" and item["alert_ids"]:
        open_alerts = [
            a
            for a in core_alerts.normalize_alerts(
                warehouse.table("alerts", "list_contains(?, alert_id)", [item["alert_ids"]])
            )
            if a["status"] != "resolved"
        ]
        for alert in open_alerts:
            set_alert_status(config, alert["alert_id"], "resolved", by=by, now=now)
    upsert(warehouse, "backlog_items", core_backlog.items_frame([item]), "item_id")
    return item


def write_backlog_markdown(
    warehouse: Warehouse, config: MonitoringConfig, now: pd.Timestamp | None = None
) -> Path:
    """data/backlog.md: every item of every model, readable without any tool."""
    text = core_backlog.render_backlog_markdown(load_items(warehouse), generated_at=_now(now))
    return _write_atomic(Path(config.data_dir) / BACKLOG_FILE, text)


# --------------------------------------------------------------------------- external tracker


@dataclass(frozen=True)
class TrackerExport:
    created: int = 0
    closed: int = 0
    reopened: int = 0
    errors: tuple[str, ...] = field(default=())


def export_to_tracker(
    warehouse: Warehouse, client: TrackerClient | None, model_name: str | None = None
) -> TrackerExport:
    """Mirror items to the tracker: open an issue for each unresolved item without one, close the
    issue of a resolved item, re-open it if a person re-opened the item. A failure is reported and
    retried on the next run; it never loses an item."""
    if client is None:
        return TrackerExport()
    created = closed = reopened = 0
    errors: list[str] = []
    changed = []
    for item in core_backlog.normalize_items(load_items(warehouse, model_name)):
        external = dict((item["links"] or {}).get("external") or {})
        want_open = item["status"] != "resolved"
        try:
            if not external:
                if not want_open:
                    continue
                issue = client.create_issue(
                    item["title"], _issue_body(item), [item["severity"], item["model_name"]]
                )
                external = {
                    "number": issue["number"],
                    "url": issue.get("html_url"),
                    "state": issue.get("state", "open"),
                }
                item["external_ref"] = issue.get("html_url") or f"#{issue['number']}"
                created += 1
            elif want_open != (external.get("state") == "open"):
                state = "open" if want_open else "closed"
                client.set_state(int(external["number"]), state)
                external["state"] = state
                closed += state == "closed"
                reopened += state == "open"
            else:
                continue
        except (TrackerError, KeyError, TypeError, ValueError) as exc:
            errors.append(f"{item['item_id']}: {exc}")
            continue
        item["links"] = {**(item["links"] or {}), "external": external}
        changed.append(item)
    upsert(warehouse, "backlog_items", core_backlog.items_frame(changed), "item_id")
    return TrackerExport(created=created, closed=closed, reopened=reopened, errors=tuple(errors))


def _issue_body(item: Mapping[str, Any]) -> str:
    return (
        f"{core_backlog.render_item_markdown(item)}\n\n"
        f"_Opened by monitoring_pipelines for backlog item `{item['item_id']}`._\n"
    )


# --------------------------------------------------------------------------- KPIs


def monitoring_coverage(warehouse: Warehouse) -> pd.DataFrame:
    """First and last monitored day per model (quiet weeks count in alerts per model-week)."""
    frame = warehouse.query(
        f"SELECT model_name, min(partition_date) AS first_date, max(partition_date) AS last_date "
        f"FROM {qualified('check_results')} GROUP BY model_name ORDER BY model_name"
    )
    return frame if len(frame) else pd.DataFrame(columns=["model_name", "first_date", "last_date"])


def compute_kpis(warehouse: Warehouse, config: MonitoringConfig) -> tuple[core_kpis.Kpis, Path]:
    """The monitoring KPIs over every model: a row in monitoring_kpis (history of the loop's health),
    the weekly alert volume in alert_volume_weekly (the noise budget), and data/kpis.json."""
    kpis = core_kpis.compute_kpis(
        load_alerts(warehouse), load_items(warehouse), monitoring_coverage(warehouse)
    )
    now = pd.Timestamp.now(tz="UTC")
    kpi_columns = [c for c in TABLES["monitoring_kpis"] if c != "computed_at"]
    kpi_row = pd.DataFrame([{"computed_at": now, **{c: kpis.values.get(c) for c in kpi_columns}}])
    weekly = kpis.weekly.reindex(columns=list(TABLES["alert_volume_weekly"]))
    warehouse.replace_many(
        [
            ("monitoring_kpis", kpi_row, "computed_at = ?", [now]),
            ("alert_volume_weekly", weekly, "TRUE", []),
        ]
    )
    path = _write_atomic(
        Path(config.data_dir) / KPIS_FILE,
        json.dumps(kpis.to_dict(), indent=2, default=str, sort_keys=True) + "\n",
    )
    return kpis, path


# --------------------------------------------------------------------------- reporting helpers


def alerts_markdown(frame: pd.DataFrame, limit: int = 50) -> str:
    """Open alerts as a Markdown table, worst and newest first."""
    rows = [r for r in core_alerts.normalize_alerts(frame) if r["status"] != "resolved"]
    if not rows:
        return "No open alerts."
    rows.sort(
        key=lambda r: (
            -core_alerts.level_of(r["severity"]),
            -(r["partition_date"] or dt.date.min).toordinal(),
        )
    )
    table = markdown_table(
        [
            (
                r["severity"],
                r["status"],
                f"{r['asset']}.{r['check_name']}",
                r["subject"],
                r["metric"],
                fmt(r["value"]),
                fmt(r["threshold"]),
                r["first_seen_date"],
                r["failing_days"],
                r["notified_severity"] or "not yet",
            )
            for r in rows[:limit]
        ],
        [
            "severity",
            "status",
            "check",
            "subject",
            "metric",
            "value",
            "threshold",
            "since",
            "days",
            "notified",
        ],
    )
    if len(rows) > limit:
        table += f"\n\n{len(rows) - limit} more not shown."
    return table


def _owner(config: MonitoringConfig, model_name: str) -> str:
    try:
        return config.model(model_name).owner
    except KeyError:
        return "unassigned"  # a model dropped from the config still resolves with the default routes


def _one(rows: list[dict[str, Any]], what: str, ident: str) -> dict[str, Any]:
    if not rows:
        raise KeyError(f"no {what} with id {ident!r}")
    return rows[0]


def _now(now: pd.Timestamp | None) -> pd.Timestamp:
    return core_alerts.as_timestamp(now) if now is not None else pd.Timestamp.now(tz="UTC")


def _write_atomic(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path
