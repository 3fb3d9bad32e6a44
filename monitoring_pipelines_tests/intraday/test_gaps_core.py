"""The monitoring-gap checks (core.gaps) against hand-worked clocks."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from monitoring_pipelines.core import gaps
from monitoring_pipelines.core.intraday import HourlyTraffic
from monitoring_pipelines.intraday_config import GapsConfig

D = dt.date(2026, 6, 10)  # a Wednesday


def clock(hour: float, day: dt.date = D) -> pd.Timestamp:
    return pd.Timestamp(day, tz="UTC") + pd.Timedelta(hours=hour)


def busy_by_day(night_rows: float = 0.0) -> HourlyTraffic:
    """Seven reference days: 100 requests an hour from 06:00 to 22:00, `night_rows` an hour otherwise."""
    per_hour = np.where((np.arange(24) >= 6) & (np.arange(24) < 22), 100.0, night_rows)
    return HourlyTraffic(np.tile(per_hour, (7, 1)), np.zeros(7, dtype=bool))


def test_silence_alerts_after_no_data_hours_of_hours_that_had_traffic():
    cfg = GapsConfig(no_data_hours=2)
    since = clock(-24)
    quiet = gaps.no_predictions(cfg, clock(13 + 55 / 60), clock(11 + 59 / 60), since, busy_by_day())
    assert quiet.status == "passed"
    silent = gaps.no_predictions(cfg, clock(14), clock(11 + 59 / 60), since, busy_by_day())
    (finding,) = silent.findings
    assert finding.severity == "critical" and finding.subject == "model"
    assert finding.evidence["expected_rows"] == 200.0  # two busy hours
    assert finding.evidence["first_bad_ts"] == clock(11 + 59 / 60).isoformat()


def test_silence_in_hours_the_reference_never_served_is_not_a_gap():
    cfg = GapsConfig(no_data_hours=2)
    # last row at 22:00, 03:00 now: five silent hours, all of them hours the reference had no traffic in
    night = gaps.no_predictions(cfg, clock(3), clock(-2), clock(-24), busy_by_day(night_rows=0.0))
    assert night.status == "passed"
    # the same silence for a model that serves around the clock is a gap
    around = gaps.no_predictions(cfg, clock(3), clock(-2), clock(-24), busy_by_day(night_rows=20.0))
    assert around.status == "failed"


def test_no_row_at_all_counts_from_the_start_of_what_was_read():
    cfg = GapsConfig(no_data_hours=2)
    result = gaps.no_predictions(cfg, clock(1), None, clock(-24), None)  # no reference traffic: hours count
    assert result.status == "failed" and result.findings[0].value == 25.0


def test_labels_stopped_k_days_past_the_label_delay():
    cfg = GapsConfig(label_gap_days=2)
    days = [D - dt.timedelta(days=n) for n in range(30)]
    last = D - dt.timedelta(days=10)  # last label arrival: predictions of D-9 on are unlabelled
    # D-9 is due by D-2 (delay 7) and 2 days past that on D: stopped
    stopped = gaps.labels_stopped(cfg, 7, D, last, days)
    (finding,) = stopped.findings
    assert finding.severity == "warning"
    assert finding.evidence["unlabelled_days"] == [(D - dt.timedelta(days=9)).isoformat()]
    assert set(finding.evidence["blind_checks"]) >= {"performance_degradation", "performance_critical_drop"}
    assert "blind" in finding.message
    # a day earlier, D-9 is only one day past its delay: labels may be late, not stopped
    assert gaps.labels_stopped(cfg, 7, D - dt.timedelta(days=1), last, days).status == "passed"
    # labels arriving daily: nothing overdue
    assert gaps.labels_stopped(cfg, 7, D, D - dt.timedelta(days=1), days).status == "passed"
    # no prediction day at all: nothing to expect labels for
    assert gaps.labels_stopped(cfg, 7, D, None, []).status == "unknown"


def test_a_nightly_run_missing_after_its_due_hour_alerts():
    cfg = GapsConfig(nightly_due_hour=6, nightly_lookback_days=3)
    ran = {D - dt.timedelta(days=n) for n in (2, 3)}  # D-1 has not run
    early = gaps.nightly_missing(cfg, clock(5 + 59 / 60), ran, D - dt.timedelta(days=30))
    assert early.status == "passed"  # D-1 is not due before 06:00 on D
    late = gaps.nightly_missing(cfg, clock(6), ran, D - dt.timedelta(days=30))
    (finding,) = late.findings
    assert finding.severity == "critical" and finding.evidence["missing_days"] == [
        (D - dt.timedelta(days=1)).isoformat()
    ]
    # days before the model's first day are not expected
    assert gaps.nightly_missing(cfg, clock(6), set(), D).status == "unknown"


def test_a_nightly_run_that_failed_alerts_even_if_it_wrote_some_checks():
    cfg = GapsConfig(nightly_due_hour=6, nightly_lookback_days=3)
    ran = {D - dt.timedelta(days=n) for n in (1, 2, 3)}
    failed = {D - dt.timedelta(days=1)}  # its serving checks were written, then the run failed
    result = gaps.nightly_missing(cfg, clock(7), ran, D - dt.timedelta(days=30), failed)
    (finding,) = result.findings
    assert finding.severity == "critical"
    assert finding.evidence["failed_days"] == [(D - dt.timedelta(days=1)).isoformat()]
    assert "failed" in finding.message
    assert gaps.nightly_missing(cfg, clock(7), ran, D - dt.timedelta(days=30)).status == "passed"
