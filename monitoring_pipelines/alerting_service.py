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
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from monitoring_pipelines.config import MonitoringConfig
from monitoring_pipelines.core import alerts as core_alerts
from monitoring_pipelines.core import backlog as core_backlog
from monitoring_pipelines.core import intraday as core_intraday
from monitoring_pipelines.core import kpis as core_kpis
from monitoring_pipelines.core.alerts import AlertDecision
from monitoring_pipelines.core.backlog import BacklogDecision
from monitoring_pipelines.core.formatting import fmt, markdown_table
from monitoring_pipelines.delivery import enqueue
from monitoring_pipelines.storage.warehouse import FILE_MODE, TABLES, Warehouse, qualified

# GitHubIssuesClient and TrackerClient stay importable from here for defs/alerting.py
# (svc.GitHubIssuesClient, svc.TrackerClient) until it imports monitoring_pipelines.trackers.
from monitoring_pipelines.trackers import GitHubIssuesClient as GitHubIssuesClient
from monitoring_pipelines.trackers import TrackerClient, TrackerError

BACKLOG_FILE = "backlog.md"
KPIS_FILE = "kpis.json"


# --------------------------------------------------------------------------- reads and writes


def load_history(warehouse: Warehouse, model_name: str) -> pd.DataFrame:
    """The model's check results, every day: the only read of `check_results` in alerting. The intraday
    looks (and monitoring-gap looks) of a check the nightly run has not judged for that day stand in for
    it (core.intraday.merge_history), so every evaluation, nightly or intraday, replays the same history
    and the nightly row supersedes the looks without duplicating or flapping their alerts."""
    nightly = warehouse.table("check_results", "model_name = ?", [model_name])
    return core_intraday.merge_history(nightly, load_intraday(warehouse, model_name))


# A day's looks folded into one row per check need only each check's latest look and the failing ones.
_INTRADAY_KEPT = (
    "model_name = ? AND (NOT passed OR look_at = (SELECT max(i.look_at) FROM {table} i WHERE "
    "i.model_name = {table}.model_name AND i.partition_date = {table}.partition_date AND "
    "i.asset = {table}.asset AND i.check_name = {table}.check_name))"
)


def load_intraday(warehouse: Warehouse, model_name: str, failing_only: bool = False) -> pd.DataFrame:
    """The model's `intraday_results` rows that matter to alerting: the latest look of each check and day,
    and every look that failed (`failing_only`: just those, for time to detection)."""
    table = qualified("intraday_results")
    where = "model_name = ? AND NOT passed" if failing_only else _INTRADAY_KEPT.format(table=table)
    return warehouse.table("intraday_results", where, [model_name])


def write_look(warehouse: Warehouse, rows: pd.DataFrame) -> int:
    """Record one look (`intraday_results` rows of one model, day and look time); a re-run replaces it."""
    if rows is None or rows.empty:
        return 0
    first = rows.iloc[0]
    return warehouse.replace_where(
        "intraday_results",
        rows,
        "model_name = ? AND partition_date = ? AND look_at = ? AND list_contains(?, asset)",
        [first["model_name"], first["partition_date"], first["look_at"], sorted(set(rows["asset"]))],
    )


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
    history: pd.DataFrame | None = None,
) -> AlertRefresh:
    """Evaluate the model's alerts as of `as_of`, enqueue what must be said, upsert the alerts. `history`:
    the model's check results when the caller has them (a range run reads them once, not once a day).

    The evaluation runs without the warehouse lock; the write takes it and first checks that the alerts
    are still as read. If a person acknowledged or resolved one meanwhile, the alerts are evaluated again
    from the stored rows, under the lock, so the person's action is kept (issue #17: an `alerts ack` was
    reverted to `open`). Notifications go to the outbox first: if the alert write then fails, the re-run
    enqueues the same ids again (ignored) instead of forgetting that a message was due.
    """
    history = load_history(warehouse, model_name) if history is None else history
    now = _now(now)

    def decide(existing: pd.DataFrame) -> AlertDecision:
        return core_alerts.evaluate(
            history, existing, config.alerting, owner=_owner(config, model_name), as_of=as_of, now=now
        )

    read = load_alerts(warehouse, model_name)
    decision = decide(read)
    with warehouse.session():
        stored = load_alerts(warehouse, model_name)
        if not _unchanged("alerts", read, stored):
            decision = decide(stored)
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
    return _set_alert_status(Warehouse(config.warehouse), config, alert_id, status, by, _now(now))


def _set_alert_status(
    warehouse: Warehouse, config: MonitoringConfig, alert_id: str, status: str, by: str, now: pd.Timestamp
) -> dict[str, Any]:
    """Read, change and write the alert and its item in one session: an evaluation writing meanwhile
    waits for the lock, so neither undoes the other (no network I/O here, so the hold is short)."""
    with warehouse.session():
        row = _one(
            core_alerts.normalize_alerts(warehouse.table("alerts", "alert_id = ?", [alert_id])),
            "alert",
            alert_id,
        )
        if status == "acknowledged":
            row = core_alerts.acknowledge(row, now)
            changed = [row]
        else:
            row = core_alerts.resolve_by_person(row, now, by=by)
            changed = [row]
            notes = _resolve_notes(warehouse, config, row, changed, now)
            if notes:
                enqueue(warehouse, pd.DataFrame(notes, columns=core_alerts.NOTIFICATION_COLUMNS))
        upsert(warehouse, "alerts", core_alerts.alerts_frame(changed), "alert_id")
        _follow_alert(warehouse, row, now)
    return row


def _resolve_notes(
    warehouse: Warehouse,
    config: MonitoringConfig,
    row: dict[str, Any],
    changed: list[dict[str, Any]],
    now: pd.Timestamp,
) -> list[dict[str, Any]]:
    """What a person's resolution says: once the last open alert of its incident is resolved, and if the
    incident paged, one resolve per critical channel (the page closes now, not after the next nightly
    run); its alerts then forget the page (`changed` gets them), so a re-opened incident pages again."""
    owner = _owner(config, row["model_name"])
    if not row.get("incident_id"):  # stored before incidents: the alert stands alone
        return core_alerts.resolve_notifications(row, config.alerting, owner, now)
    others = [
        r
        for r in core_alerts.normalize_alerts(
            warehouse.table(
                "alerts", "model_name = ? AND incident_id = ?", [row["model_name"], row["incident_id"]]
            )
        )
        if r["alert_id"] != row["alert_id"]
    ]
    notes = core_alerts.incident_resolve_notifications([row, *others], config.alerting, owner, now)
    if notes:
        changed[:] = [
            {**r, "notified_severity": None, "updated_at": now if r is not row else r["updated_at"]}
            for r in (row, *others)
        ]
    return notes


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
    """Open or update the model's backlog items from its alerts; lineage from its check history.

    Built without the lock and written under it, like `refresh_alerts`: if a person changed an alert or
    an item meanwhile, the items are built again from the stored rows, so the change sticks.
    """
    # lineage is made of findings at info or above: the `ok` values and unknown days are left out
    findings = core_alerts.finding_rows(load_history(warehouse, model_name), min_level=0)
    now = _now(now)

    def read() -> tuple[pd.DataFrame, pd.DataFrame]:
        return load_alerts(warehouse, model_name), load_items(warehouse, model_name)

    def decide(alerts: pd.DataFrame, items: pd.DataFrame) -> BacklogDecision:
        return core_backlog.build_items(alerts, findings, items, config.alerting.ui_base_url, now=now)

    alerts, items = read()
    decision = decide(alerts, items)
    with warehouse.session():
        stored_alerts, stored_items = read()
        if not (
            _unchanged("alerts", alerts, stored_alerts) and _unchanged("backlog_items", items, stored_items)
        ):
            decision = decide(stored_alerts, stored_items)
        upsert(warehouse, "backlog_items", decision.items, "item_id")
    return decision


def list_items(config: MonitoringConfig, status: str | None = None, model: str | None = None) -> pd.DataFrame:
    """Backlog items newest first, every column; `status` and `model` filter (views pick their columns)."""
    frame = load_items(Warehouse(config.warehouse), model)
    if status:
        frame = frame[frame["status"] == status]
    return frame.sort_values("created_at", ascending=False).reset_index(drop=True) if len(frame) else frame


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
    with warehouse.session():  # read, change, write at once (see _set_alert_status)
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
                _set_alert_status(warehouse, config, alert["alert_id"], "resolved", by, now)
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
    changed: list[tuple[str, dict[str, Any], str | None]] = []
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
        changed.append((item["item_id"], external, item["external_ref"]))
    _record_issues(warehouse, changed)
    return TrackerExport(created=created, closed=closed, reopened=reopened, errors=tuple(errors))


def _record_issues(warehouse: Warehouse, issues: list[tuple[str, dict[str, Any], str | None]]) -> None:
    """Write (item_id, issue, external_ref) onto the items as stored now, changing nothing else: the
    tracker calls ran without the lock, and a person's change to an item meanwhile must stick (the next
    export mirrors it to the issue)."""
    if not issues:
        return
    with warehouse.session():
        ids = [item_id for item_id, _, _ in issues]
        stored = {
            i["item_id"]: i
            for i in core_backlog.normalize_items(
                warehouse.table("backlog_items", "list_contains(?, item_id)", [ids])
            )
        }
        rows = [
            {**item, "links": {**(item["links"] or {}), "external": issue}, "external_ref": ref}
            for item_id, issue, ref in issues
            if (item := stored.get(item_id)) is not None
        ]
        upsert(warehouse, "backlog_items", core_backlog.items_frame(rows), "item_id")


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
        load_alerts(warehouse),
        load_items(warehouse),
        monitoring_coverage(warehouse),
        first_bad_rows=core_intraday.onsets(warehouse.table("intraday_results", "NOT passed")),
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
    """Open alerts as a Markdown table, worst and newest first, the alerts of one incident together
    (its root cause in the `incident` column when it has more than one open alert)."""
    rows = [r for r in core_alerts.normalize_alerts(frame) if r["status"] != "resolved"]
    if not rows:
        return "No open alerts."
    incident = {r["alert_id"]: r["incident_id"] or r["alert_id"] for r in rows}
    size = Counter(incident.values())
    worst: dict[str, tuple[int, int]] = {}
    for r in rows:
        rank = (core_alerts.level_of(r["severity"]), (r["partition_date"] or dt.date.min).toordinal())
        worst[incident[r["alert_id"]]] = max(worst.get(incident[r["alert_id"]], rank), rank)
    rows.sort(
        key=lambda r: (
            tuple(-x for x in worst[incident[r["alert_id"]]]),
            incident[r["alert_id"]],
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
                (r["root_cause"] or "") if size[incident[r["alert_id"]]] > 1 else "",
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
            "incident",
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


_KEYED = {
    "alerts": (core_alerts.normalize_alerts, "alert_id"),
    "backlog_items": (core_backlog.normalize_items, "item_id"),
}


def _unchanged(table: str, before: pd.DataFrame, after: pd.DataFrame) -> bool:
    """Two reads of `table` hold the same rows (as Python values, in any order)."""
    normalize, key = _KEYED[table]
    return {r[key]: r for r in normalize(before)} == {r[key]: r for r in normalize(after)}


def _one(rows: list[dict[str, Any]], what: str, ident: str) -> dict[str, Any]:
    if not rows:
        raise KeyError(f"no {what} with id {ident!r}")
    return rows[0]


def _now(now: pd.Timestamp | None) -> pd.Timestamp:
    return core_alerts.as_timestamp(now) if now is not None else pd.Timestamp.now(tz="UTC")


def _write_atomic(path: Path, text: str) -> Path:
    """Replace `path` at once, as a file of the warehouse's mode (FILE_MODE at most): it holds results."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)  # a crashed write's file keeps its mode: start afresh
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE), "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(tmp, path)
    return path
