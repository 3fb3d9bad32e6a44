"""How well monitoring works: detection, response and noise, from the alerts and backlog tables.

Pure. Times that describe data (detection, resolution) are counted in partition days, so a backfill
gives the same numbers as live operation; acknowledgement is a human act and is counted in wall-clock
hours. A KPI with nothing to average over is None, not 0.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pandas as pd

from monitoring_pipelines.core.alerts import as_date, is_human_resolved, level_of, normalize_alerts, records
from monitoring_pipelines.core.backlog import normalize_items
from monitoring_pipelines.core.formatting import fmt, markdown_table
from monitoring_pipelines.schema import columns_of

WEEKLY_COLUMNS = columns_of("alert_volume_weekly")


@dataclass(frozen=True)
class Kpis:
    values: dict[str, float | int | None]
    weekly: pd.DataFrame  # WEEKLY_COLUMNS: the noise budget per model-week

    def to_dict(self) -> dict[str, Any]:
        weekly = self.weekly.assign(week=self.weekly["week"].map(lambda d: d.isoformat()))
        return {**self.values, "weekly": records(weekly)}


def week_start(day: dt.date) -> dt.date:
    """Monday of the ISO week of `day`."""
    return day - dt.timedelta(days=day.weekday())


def weekly_volume(alerts: pd.DataFrame, coverage: pd.DataFrame | None = None) -> pd.DataFrame:
    """Alerts per model and ISO week of their first failing day: all, detected (passed noise control),
    notified (a message went out) and by severity. Weeks inside `coverage` (model_name, first_date,
    last_date: the days monitored) with no alert appear with zeros, so quiet weeks count."""
    counts: dict[tuple[str, dt.date], dict[str, int]] = {}

    def slot(model: str, week: dt.date) -> dict[str, int]:
        return counts.setdefault((model, week), {c: 0 for c in WEEKLY_COLUMNS[2:]})

    if coverage is not None:
        for rec in records(coverage):
            first, last = as_date(rec["first_date"]), as_date(rec["last_date"])
            if first is None or last is None:
                continue
            week = week_start(first)
            while week <= last:
                slot(rec["model_name"], week)
                week += dt.timedelta(days=7)
    for alert in _counted(normalize_alerts(alerts)):
        s = slot(alert["model_name"], week_start(alert["first_seen_date"]))
        s["alerts"] += 1
        s["detected"] += int(alert["detected_date"] is not None)
        s["notified"] += int(bool(alert["notified"]))
        s[alert["severity"]] += 1
    rows = [{"model_name": m, "week": w, **c} for (m, w), c in sorted(counts.items())]
    return pd.DataFrame(rows, columns=WEEKLY_COLUMNS)


def compute_kpis(
    alerts: pd.DataFrame,
    items: pd.DataFrame,
    coverage: pd.DataFrame | None = None,
    first_bad_rows: pd.DataFrame | None = None,
) -> Kpis:
    """The monitoring KPIs (definitions in docs/alerting.md, "Monitoring KPIs"). `first_bad_rows` (dedup_key,
    partition_date, first_bad_ts; core.intraday.onsets) are the first bad rows the intraday watch saw:
    they give the time to detection in minutes."""
    alert_rows = _counted(normalize_alerts(alerts))
    by_id = {a["alert_id"]: a for a in alert_rows}
    failing = [a for a in alert_rows if level_of(a["severity"]) >= 1]
    detected = [a for a in failing if a["detected_date"] is not None]
    item_rows = normalize_items(items)

    detect_days = []
    first_by_monitoring = []
    for item in item_rows:
        linked = [by_id[a] for a in item["alert_ids"] if a in by_id]
        onsets = [as_date(p.split("|")[0]) for p in item["partitions"]] or [
            a["first_seen_date"] for a in linked
        ]
        detections = [a["detected_date"] for a in linked if a["detected_date"] is not None]
        if onsets and detections:
            detect_days.append(max(0, (min(detections) - min(onsets)).days))
        if item.get("reported_by") != "user":
            first_by_monitoring.append(True)
        else:
            raised = [a["created_at"] for a in linked if a["created_at"] is not None]
            first_by_monitoring.append(
                bool(raised) and item["created_at"] is not None and min(raised) < item["created_at"]
            )

    detect_minutes = _detect_minutes(item_rows, by_id, first_bad_rows)
    ack_hours = [
        max(0.0, (a["acknowledged_at"] - (a["notified_at"] or a["created_at"])).total_seconds() / 3600)
        for a in detected
        if a["acknowledged_at"] is not None and (a["notified_at"] or a["created_at"]) is not None
    ]
    resolve_days = [
        max(0, (a["resolved_date"] - a["detected_date"]).days)
        for a in detected
        if a["status"] == "resolved" and a["resolved_date"] is not None
    ]
    tracked = {aid for item in item_rows for aid in item["alert_ids"]}
    weekly = weekly_volume(pd.DataFrame(alert_rows), coverage)
    model_weeks = len(weekly)
    values: dict[str, float | int | None] = {
        "mean_time_to_detect_days": _mean(detect_days),
        "mean_time_to_detect_minutes": _mean(detect_minutes),
        "mean_time_to_acknowledge_hours": _mean(ack_hours),
        "mean_time_to_resolve_days": _mean(resolve_days),
        "alerts_per_model_week": _ratio(int(weekly["alerts"].sum()), model_weeks),
        "detected_alerts_per_model_week": _ratio(int(weekly["detected"].sum()), model_weeks),
        "share_alerts_acknowledged": _ratio(
            sum(1 for a in detected if a["acknowledged_at"] is not None or is_human_resolved(a)),
            len(detected),
        ),
        "share_findings_with_backlog_item": _ratio(
            sum(1 for a in failing if a["alert_id"] in tracked), len(failing)
        ),
        "share_incidents_detected_by_monitoring_first": _ratio(
            sum(first_by_monitoring), len(first_by_monitoring)
        ),
        "alerts": len(alert_rows),
        "open_alerts": sum(1 for a in alert_rows if a["status"] != "resolved"),
        "incidents": len(item_rows),
        "open_incidents": sum(1 for i in item_rows if i["status"] != "resolved"),
        "model_weeks": model_weeks,
    }
    return Kpis(values=values, weekly=weekly)


def _detect_minutes(
    items: list[dict[str, Any]], by_id: dict[str, dict[str, Any]], onsets: pd.DataFrame | None
) -> list[float]:
    """Per incident (backlog item) whose first bad row the intraday watch saw: minutes from that row to
    the creation of its first alert. Incidents only the nightly run saw have no first bad row: left out."""
    if onsets is None or onsets.empty:
        return []
    first_bad: dict[tuple[str, dt.date], pd.Timestamp] = {}
    for key, day, ts in zip(
        onsets["dedup_key"], onsets["partition_date"], onsets["first_bad_ts"], strict=True
    ):
        when, slot = pd.Timestamp(ts), (str(key), as_date(day))
        when = when.tz_localize("UTC") if when.tzinfo is None else when
        if slot[1] is not None and (slot not in first_bad or when < first_bad[slot]):
            first_bad[slot] = when  # type: ignore[index]
    out = []
    for item in items:
        linked = [by_id[a] for a in item["alert_ids"] if a in by_id]
        seen = [
            first_bad[(a["dedup_key"], a["first_seen_date"])]
            for a in linked
            if (a["dedup_key"], a["first_seen_date"]) in first_bad
        ]
        created = [a["created_at"] for a in linked if a["created_at"] is not None]
        if seen and created:
            out.append(max(0.0, (min(created) - min(seen)).total_seconds() / 60))
    return out


def _counted(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Alerts that count: not withdrawn by a re-run with corrected inputs."""
    return [a for a in rows if a["resolved_by"] != "superseded" and a["first_seen_date"] is not None]


def _mean(values: list[float] | list[int]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def kpi_markdown(kpis: Kpis, weeks: int = 8) -> str:
    """The KPIs and the last `weeks` weeks of alert volume as Markdown for the Dagster UI."""
    text = markdown_table(
        list(kpis.values.items()), ["KPI", "value"], formatters={"value": lambda v: fmt(v, 3, ints=True)}
    )
    if len(kpis.weekly):
        recent = sorted(kpis.weekly["week"].unique())[-weeks:]
        weekly = markdown_table(
            records(kpis.weekly[kpis.weekly["week"].isin(recent)]),
            WEEKLY_COLUMNS,
            headers={"model_name": "model"},
            formatters=str,
        )
        text += "\n\n" + weekly
    return text
