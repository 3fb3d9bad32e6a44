"""Monitoring KPIs against hand-computed values."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from monitoring_pipelines.core import kpis as core
from monitoring_pipelines.core.alerts import ALERT_COLUMNS
from monitoring_pipelines.core.backlog import ITEM_COLUMNS

D = dt.date(2026, 6, 1)  # a Monday


def ts(day: int, hour: float = 0.0) -> pd.Timestamp:
    return pd.Timestamp(D + dt.timedelta(days=day), tz="UTC") + pd.Timedelta(hours=hour)


def alert(aid: str, first: int, severity: str = "warning", detected: int | None = None, **extra: Any) -> dict:
    row = {c: None for c in ALERT_COLUMNS}
    row.update(
        alert_id=aid,
        model_name="m",
        first_seen_date=D + dt.timedelta(days=first),
        severity=severity,
        status="open",
        notified=detected is not None,
        created_at=ts(first + 1),
        detected_date=D + dt.timedelta(days=detected) if detected is not None else None,
        evidence="{}",
    )
    row.update(extra)
    return row


def item(
    iid: str,
    alert_ids: list[str],
    partitions: list[int],
    reported_by: str = "monitoring",
    created: pd.Timestamp | None = None,
) -> dict:
    row = {c: None for c in ITEM_COLUMNS}
    row.update(
        item_id=iid,
        model_name="m",
        status="open",
        severity="warning",
        title=iid,
        alert_ids=alert_ids,
        partitions=[f"{(D + dt.timedelta(days=p)).isoformat()}|m" for p in partitions],
        reported_by=reported_by,
        created_at=created or ts(30),
        evidence="{}",
        links="{}",
    )
    return row


def test_kpis_match_hand_computed_values():
    alerts = pd.DataFrame(
        [
            # detected 1 day after onset, acknowledged 2 h after the message, resolved 3 days after detection
            alert(
                "a",
                2,
                detected=3,
                notified_at=ts(4, 3),
                acknowledged_at=ts(4, 5),
                status="resolved",
                resolved_date=D + dt.timedelta(days=6),
                resolved_by="auto",
            ),
            # a critical detected on its first day, nobody acknowledged it yet
            alert("b", 9, severity="critical", detected=9, notified_at=ts(10, 3)),
            # a one-day warning that never passed noise control
            alert("c", 10, status="resolved", resolved_by="auto", resolved_date=D + dt.timedelta(days=13)),
            # withdrawn by a re-run with corrected inputs: does not count
            alert("d", 11, detected=12, status="resolved", resolved_by="superseded"),
        ]
    )
    items = pd.DataFrame(
        [
            item("i-a", ["a"], [2, 3, 4]),
            item("i-b", ["b"], [9]),
            item("i-user", [], [], reported_by="user"),  # a person noticed something monitoring did not
        ]
    )
    coverage = pd.DataFrame([{"model_name": "m", "first_date": D, "last_date": D + dt.timedelta(days=20)}])
    k = core.compute_kpis(alerts, items, coverage).values
    assert k["mean_time_to_detect_days"] == 0.5  # (1 + 0) / 2
    assert k["mean_time_to_acknowledge_hours"] == 2.0
    assert k["mean_time_to_resolve_days"] == 3.0
    assert k["model_weeks"] == 3 and k["alerts_per_model_week"] == 1.0  # 3 alerts over 3 weeks
    assert k["detected_alerts_per_model_week"] == round(2 / 3, 4)
    assert k["share_alerts_acknowledged"] == 0.5
    assert k["share_findings_with_backlog_item"] == round(2 / 3, 4)
    assert k["share_incidents_detected_by_monitoring_first"] == round(2 / 3, 4)
    assert (k["alerts"], k["open_alerts"], k["incidents"], k["open_incidents"]) == (3, 1, 3, 3)


def test_user_report_after_an_alert_counts_as_detected_by_monitoring_first():
    alerts = pd.DataFrame([alert("a", 2, detected=3)])
    items = pd.DataFrame([item("i", ["a"], [2, 3], reported_by="user", created=ts(10))])
    assert core.compute_kpis(alerts, items).values["share_incidents_detected_by_monitoring_first"] == 1.0


def test_weekly_volume_counts_quiet_weeks_from_coverage():
    alerts = pd.DataFrame(
        [alert("a", 2, detected=3), alert("b", 3, severity="critical", detected=3), alert("c", 15)]
    )
    coverage = pd.DataFrame([{"model_name": "m", "first_date": D, "last_date": D + dt.timedelta(days=20)}])
    weekly = core.weekly_volume(alerts, coverage)
    assert weekly["week"].tolist() == [D, D + dt.timedelta(days=7), D + dt.timedelta(days=14)]
    assert weekly["alerts"].tolist() == [2, 0, 1]
    assert weekly["detected"].tolist() == [2, 0, 0] and weekly["critical"].tolist() == [1, 0, 0]


def test_kpis_without_data_are_none_not_zero():
    empty = core.compute_kpis(pd.DataFrame(columns=ALERT_COLUMNS), pd.DataFrame(columns=ITEM_COLUMNS))
    assert empty.values["mean_time_to_detect_days"] is None
    assert empty.values["share_alerts_acknowledged"] is None and empty.values["alerts"] == 0
    assert "| KPI | value |" in core.kpi_markdown(empty)


def test_week_start_is_monday():
    assert core.week_start(dt.date(2026, 6, 7)) == dt.date(2026, 6, 1)


def test_time_to_detect_in_minutes_runs_from_the_first_bad_row_the_intraday_watch_saw():
    alerts = pd.DataFrame(
        [
            # an error spike whose first bad row was logged at 10:01:30, alerted by the 10:15 look
            alert(
                "a",
                2,
                severity="critical",
                detected=2,
                dedup_key="m/serving_metrics.serving_slo/champion:v3",
                created_at=ts(2, 10.25),
            ),
            # the same incident's second alert, created later: the incident counts from its first alert
            alert(
                "a2",
                2,
                severity="critical",
                detected=2,
                dedup_key="m/drift_scores.data_quality/income",
                created_at=ts(2, 11),
            ),
            # found by the nightly run only: no first bad row known, left out
            alert("b", 5, severity="critical", detected=5, dedup_key="m/drift_scores.feature_drift/age"),
        ]
    )
    items = pd.DataFrame([item("i-a", ["a", "a2"], [2]), item("i-b", ["b"], [5])])
    onsets = pd.DataFrame(
        [
            {
                "dedup_key": "m/serving_metrics.serving_slo/champion:v3",
                "partition_date": D + dt.timedelta(days=2),
                "first_bad_ts": ts(2, 10) + pd.Timedelta(seconds=90),
            },
            {
                "dedup_key": "m/drift_scores.data_quality/income",
                "partition_date": D + dt.timedelta(days=2),
                "first_bad_ts": ts(2, 10.5),
            },
        ]
    )
    k = core.compute_kpis(alerts, items, first_bad_rows=onsets).values
    assert k["mean_time_to_detect_minutes"] == 13.5  # 10:01:30 -> 10:15
    assert core.compute_kpis(alerts, items).values["mean_time_to_detect_minutes"] is None
