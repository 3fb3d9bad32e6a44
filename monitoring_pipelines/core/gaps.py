"""Alerts for monitoring gaps: silence is not health.

Pure. Three checks of asset `monitoring_gaps`, each about subject `model`, judged at a clock `now`:

- `no_predictions` (critical): no prediction row for `no_data_hours`, while the reference had traffic in
  every hour of day of that silence (a model that never serves at night raises nothing at night);
- `labels_stopped` (warning): no label has arrived since day A, and predictions made after A are now
  `label_gap_days` past their `label_delay_days`; the label-based checks are blind, and it says which;
- `nightly_run_missing` (critical): the nightly run of a recent model-day left no check results by
  `nightly_due_hour` of the next day (it did not run, or failed before its checks).

Their results go through the same path as every check (`intraday_results` -> alerting), so they are
routed, deduplicated and tracked like any alert (docs/intraday.md).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import numpy as np
import pandas as pd

from monitoring_pipelines.core.fairness import DIFFERENTIAL_DEGRADATION
from monitoring_pipelines.core.findings import CheckResult, Finding, not_enough_data, observed
from monitoring_pipelines.core.intraday import HourlyTraffic, Look, as_utc
from monitoring_pipelines.core.outcomes import BUSINESS_OUTCOME
from monitoring_pipelines.core.performance import (
    PERFORMANCE_CRITICAL_DROP,
    PERFORMANCE_DEGRADATION,
    TARGET_DRIFT,
)
from monitoring_pipelines.intraday_config import GapsConfig

GAPS_ASSET = "monitoring_gaps"
NO_PREDICTIONS, LABELS_STOPPED, NIGHTLY_MISSING = "no_predictions", "labels_stopped", "nightly_run_missing"
# The checks that need labels: blind while no label arrives.
BLIND_CHECKS = (
    PERFORMANCE_DEGRADATION,
    PERFORMANCE_CRITICAL_DROP,
    DIFFERENTIAL_DEGRADATION,
    BUSINESS_OUTCOME,
    TARGET_DRIFT,
)


def silent_hours_had_traffic(
    traffic: HourlyTraffic | None, start: pd.Timestamp, end: pd.Timestamp, min_rows: float
) -> tuple[bool, float]:
    """Whether every UTC hour of day overlapping [start, end) had at least `min_rows` requests on average
    in the reference, and how many requests the reference expects in that span. Without a reference
    traffic profile every hour counts as busy (silence is then judged by its length alone)."""
    if traffic is None or traffic.days == 0:
        return True, float("nan")
    mean = traffic.hourly_mean()
    hours = pd.date_range(start.floor("h"), end - pd.Timedelta(microseconds=1), freq="h")
    busy = bool(len(hours)) and bool(np.all(mean[hours.hour.to_numpy()] >= min_rows))
    expected = 0.0
    cursor = start
    while cursor < end:  # at most a few segments: the span cut at midnight
        day_end = cursor.normalize() + pd.Timedelta(days=1)
        stop = min(end, day_end)
        lo = (cursor - cursor.normalize()).total_seconds()
        hi = (stop - cursor.normalize()).total_seconds()
        expected += traffic.expected(lo, hi, cursor.date())[0]
        cursor = stop
    return busy, expected


def no_predictions(
    cfg: GapsConfig,
    now: pd.Timestamp,
    last_ts: pd.Timestamp | None,
    since: pd.Timestamp,
    traffic: HourlyTraffic | None,
) -> CheckResult:
    """Critical when the newest row is `no_data_hours` old or older (or there is none since `since`, the
    start of what was read) and the reference had traffic in each of those hours."""
    now = as_utc(now)
    last = as_utc(last_ts) if last_ts is not None else None
    silent_from = last if last is not None else as_utc(since)
    hours = (now - silent_from).total_seconds() / 3600
    window_start = now - pd.Timedelta(hours=cfg.no_data_hours)
    busy, expected = silent_hours_had_traffic(traffic, window_start, now, cfg.min_reference_rows_per_hour)
    evidence = {
        "last_row_ts": last.isoformat() if last is not None else None,
        "silent_hours": round(hours, 2),
        "expected_rows": None if np.isnan(expected) else round(expected, 1),
        "first_bad_ts": silent_from.isoformat(),
        "direction": "higher_is_worse",
    }
    if hours >= cfg.no_data_hours and busy:
        seen = (
            f"the last at {last:%Y-%m-%d %H:%M} UTC"
            if last is not None
            else f"none since {silent_from:%Y-%m-%d %H:%M} UTC"
        )
        message = (
            f"no prediction rows for {hours:.1f} h ({seen}); the reference had traffic in each of the last "
            f"{cfg.no_data_hours:g} hours"
            + (f" (~{expected:.0f} rows expected)" if not np.isnan(expected) else "")
        )
        finding = Finding(
            NO_PREDICTIONS,
            "critical",
            "silent_hours",
            "model",
            round(hours, 2),
            cfg.no_data_hours,
            message,
            evidence,
        )
        return CheckResult(NO_PREDICTIONS, [finding])
    return CheckResult(
        NO_PREDICTIONS,
        [observed(NO_PREDICTIONS, "model", "silent_hours", round(hours, 2), cfg.no_data_hours, **evidence)],
    )


def labels_stopped(
    cfg: GapsConfig,
    label_delay_days: int,
    today: dt.date,
    last_arrival: dt.date | None,
    prediction_days: Iterable[dt.date],
) -> CheckResult:
    """Warning when predictions made after the last label arrival (day A) are `label_gap_days` past their
    `label_delay_days`: the first unlabelled day A + 1 was due by A + 1 + delay; K days later the labels
    have stopped, not lagged. Unknown without any prediction day old enough to have been labelled."""
    days = sorted(d for d in prediction_days if last_arrival is None or d > last_arrival)
    overdue = [d for d in days if (today - d).days >= label_delay_days + cfg.label_gap_days]
    since = last_arrival.isoformat() if last_arrival else "ever"
    if not overdue:
        if not days and last_arrival is None:
            return CheckResult(
                LABELS_STOPPED,
                [not_enough_data(LABELS_STOPPED, "model", "days_without_labels", 0, 1, "prediction days")],
                unknown="not enough data: no prediction day to expect labels for",
            )
        value = float((today - last_arrival).days) if last_arrival else 0.0
        return CheckResult(
            LABELS_STOPPED,
            [
                observed(
                    LABELS_STOPPED,
                    "model",
                    "days_without_labels",
                    value,
                    float(label_delay_days + cfg.label_gap_days),
                )
            ],
        )
    first = overdue[0]
    silent = (today - last_arrival).days if last_arrival else (today - first).days
    message = (
        f"no label has arrived since {since} ({silent} days); predictions of {first} … {overdue[-1]} are "
        f"{cfg.label_gap_days}+ days past label_delay_days = {label_delay_days}: "
        f"{', '.join(BLIND_CHECKS)} are blind until labels arrive"
    )
    evidence = {
        "last_label_arrival": last_arrival.isoformat() if last_arrival else None,
        "unlabelled_days": [d.isoformat() for d in overdue],
        "blind_checks": list(BLIND_CHECKS),
        "first_bad_ts": pd.Timestamp(first + dt.timedelta(days=label_delay_days), tz="UTC").isoformat(),
        "direction": "higher_is_worse",
    }
    finding = Finding(
        LABELS_STOPPED,
        "warning",
        "days_without_labels",
        "model",
        float(silent),
        float(label_delay_days + cfg.label_gap_days),
        message,
        evidence,
    )
    return CheckResult(LABELS_STOPPED, [finding])


def nightly_missing(
    cfg: GapsConfig,
    now: pd.Timestamp,
    ran_days: Iterable[dt.date],
    first_day: dt.date,
    failed_days: Iterable[dt.date] = (),
) -> CheckResult:
    """Critical when a model-day of the last `nightly_lookback_days` (not before `first_day`) whose nightly
    run was due (`nightly_due_hour` of the next day) left no check results, or its latest run failed
    (`failed_days`: a run can fail after some checks were written)."""
    now = as_utc(now)
    today = now.date()
    failed = set(failed_days)
    ran = set(ran_days) - failed
    due = []
    for back in range(1, cfg.nightly_lookback_days + 1):
        day = today - dt.timedelta(days=back)
        deadline = pd.Timestamp(day + dt.timedelta(days=1), tz="UTC") + pd.Timedelta(
            hours=cfg.nightly_due_hour
        )
        if day >= first_day and now >= deadline:
            due.append(day)
    missing = sorted(d for d in due if d not in ran)
    if not due:
        return CheckResult(NIGHTLY_MISSING, [], unknown="not enough data: no nightly run due yet")
    if not missing:
        return CheckResult(NIGHTLY_MISSING, [observed(NIGHTLY_MISSING, "model", "days_missing", 0.0, 1.0)])
    failed_missing = [d for d in missing if d in failed]
    absent = [d for d in missing if d not in failed]
    parts = []
    if absent:
        parts.append(
            f"the nightly run of {', '.join(d.isoformat() for d in absent)} left no check results by "
            f"{cfg.nightly_due_hour:g}:00 UTC of the next day (it did not run, or failed before its checks)"
        )
    if failed_missing:
        parts.append(f"the latest nightly run of {', '.join(d.isoformat() for d in failed_missing)} failed")
    message = (
        "; ".join(parts) + ": those days are not fully judged; run them (`monitoring-pipelines run --start D "
        "--end D`)"
    )
    evidence = {
        "missing_days": [d.isoformat() for d in missing],
        "failed_days": [d.isoformat() for d in failed_missing],
        "first_bad_ts": (
            pd.Timestamp(missing[0] + dt.timedelta(days=1), tz="UTC")
            + pd.Timedelta(hours=cfg.nightly_due_hour)
        ).isoformat(),
        "direction": "higher_is_worse",
    }
    finding = Finding(
        NIGHTLY_MISSING, "critical", "days_missing", "model", float(len(missing)), 1.0, message, evidence
    )
    return CheckResult(NIGHTLY_MISSING, [finding])


def gap_look(
    model_name: str, now: pd.Timestamp, results: list[CheckResult], last_ts: pd.Timestamp | None = None
) -> Look:
    """The gap checks of one model at `now`, in the shape `intraday_results` stores."""
    now = as_utc(now)
    return Look(model_name, now.date(), now, 0, last_ts, float("nan"), [(GAPS_ASSET, r) for r in results])
