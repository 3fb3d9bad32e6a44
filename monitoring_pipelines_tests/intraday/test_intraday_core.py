"""The intraday look (core.intraday) on simulated traffic, and its alerts through core.alerts.

Looks are driven by an explicit clock: the day's whole log is given and a look at 10:15 sees the rows
logged up to 10:15 only, so nothing sleeps.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from monitoring_pipelines.core import intraday as core
from monitoring_pipelines.core.alerts import evaluate
from monitoring_pipelines.core.stats import wilson_interval
from monitoring_pipelines.intraday_config import IntradayConfig
from monitoring_pipelines_tests.intraday.helpers import (
    ALERTING,
    at,
    between,
    day_of,
    look_rows,
    looks,
    model_config,
    sim_day,
    with_errors,
    with_nulls,
)

SERVING_KEY = "credit_default/serving_metrics.serving_slo/champion:v3"
INCOME_KEY = "credit_default/drift_scores.data_quality/income"


def _failing(lk: core.Look, check: str, subject: str) -> list:
    return [
        f
        for _, r in lk.results
        for f in r.findings
        if f.check_name == check and f.subject == subject and f.severity in ("warning", "critical")
    ]


def _alerts(rows: pd.DataFrame, k: int, now: pd.Timestamp, existing: pd.DataFrame | None = None):
    history = core.merge_history(pd.DataFrame(), rows)
    return evaluate(history, existing, ALERTING, owner="risk-ml", as_of=day_of(k), now=now)


def test_the_looks_test_at_the_days_budget_split_over_its_looks_and_windows():
    cfg = IntradayConfig(every_minutes=15, alpha=0.01)
    assert cfg.looks_per_day == 96
    assert core.look_alpha(cfg) == pytest.approx(0.01 / 192)
    # a one-sided bound at alpha is the lower end of the two-sided (1 - 2 alpha) Wilson interval
    low = core.rate_lower_bound(30, 100, 0.025)
    assert low == pytest.approx(wilson_interval(30, 100, confidence=0.95)[0])


def test_an_error_spike_at_10_is_alerted_by_the_first_look_after_10():
    k = 20
    model = model_config(every_minutes=15)
    frame = with_errors(sim_day(k), at(k, 10), at(k, 10, 30))
    before, after = looks(frame, model, k, [at(k, 9, 45), at(k, 10, 0), at(k, 10, 15)])[1:]
    assert not _failing(before, "serving_slo", "champion:v3")
    found = _failing(after, "serving_slo", "champion:v3")
    assert found and found[0].severity == "critical"
    spike = frame[between(frame, at(k, 10), at(k, 10, 30)) & (frame["role"] == "champion").to_numpy()]
    assert (
        pd.Timestamp(found[0].evidence["first_bad_ts"]) == spike["ts"].min()
    )  # the incident's first bad row

    decision = _alerts(look_rows([before, after]), k, after.look_at)
    alert = decision.alerts.set_index("dedup_key").loc[SERVING_KEY]
    assert alert["severity"] == "critical" and alert["status"] == "open"
    assert pd.Timestamp(alert["created_at"]) == at(k, 10, 15)
    triggers = decision.notifications[decision.notifications["kind"] == "trigger"]
    assert triggers["dedup_key"].tolist() == [SERVING_KEY]  # paged at once, once


def test_the_onset_is_the_spike_not_the_mornings_ordinary_errors():
    """A look with no look before it (the first of the day, at 10:15): the incident starts with the
    spike's first failed request, not with the day's first error (errors happen at ~0.5 % all day)."""
    k = 10  # a day with an ordinary error at 08:48
    frame = with_errors(sim_day(k), at(k, 10), at(k, 10, 30))
    champion = (frame["role"] == "champion").to_numpy()
    morning = frame[champion & between(frame, at(k, 0), at(k, 10)) & (frame["status"] == "error").to_numpy()]
    assert len(morning) >= 1  # ordinary errors before the spike
    (only,) = looks(frame, model_config(), k, [at(k, 10, 15)])
    (found,) = [f for f in _failing(only, "serving_slo", "champion:v3") if f.evidence["window"] == "recent"]
    spike = frame[champion & between(frame, at(k, 10), at(k, 10, 30))]
    assert pd.Timestamp(found.evidence["first_bad_ts"]) == spike["ts"].min()


def test_a_feature_null_spike_at_14_is_alerted_by_the_first_look_after_14():
    k = 22
    model = model_config(every_minutes=15)
    frame = with_nulls(sim_day(k), "income", at(k, 14), at(k, 14, 15))
    before, after = looks(frame, model, k, [at(k, 13, 45), at(k, 14, 0), at(k, 14, 15)])[1:]
    assert not _failing(before, "data_quality", "income")
    found = _failing(after, "data_quality", "income")
    assert found and found[0].metric == "null_rate_change"
    broken = frame[between(frame, at(k, 14), at(k, 14, 15)) & (frame["role"] == "champion").to_numpy()]
    assert pd.Timestamp(found[0].evidence["first_bad_ts"]) == broken["ts"].min()
    decision = _alerts(look_rows([before, after]), k, after.look_at)
    assert INCOME_KEY in set(decision.alerts["dedup_key"])
    # no other input is blamed for it
    assert not any(f.subject != "income" for f in after.failing)


def test_ten_quiet_days_of_96_looks_raise_no_notification():
    model = model_config(every_minutes=15)
    existing, notifications, failing = None, 0, []
    for k in range(30, 40):  # after the reference window; weekdays and a weekend
        frame = sim_day(k)
        found = looks(frame, model, k, [at(k, 0) + pd.Timedelta(minutes=15 * j) for j in range(1, 97)])
        failing += [(k, lk.look_at, f.check_name, f.subject, f.message) for lk in found for f in lk.failing]
        decision = _alerts(look_rows(found), k, found[-1].look_at, existing)
        notifications += len(decision.notifications)
        existing = decision.current
    assert failing == []
    assert notifications == 0


def test_a_day_keeps_what_any_look_found_until_the_nightly_run_judges_it():
    """Folding the looks: a subject that failed at 10:15 stays failed at 23:45 (the nightly run decides),
    and a nightly row of the same check supersedes the looks; other checks keep theirs."""
    k = 24
    model = model_config(every_minutes=15)
    frame = with_errors(sim_day(k), at(k, 10), at(k, 10, 30))
    found = looks(frame, model, k, [at(k, 10, 0), at(k, 10, 15), at(k, 23, 45)])
    # by 23:45 the spike is diluted in the day so far and gone from the recent window: not critical any more
    assert all(f.severity != "critical" for f in _failing(found[-1], "serving_slo", "champion:v3"))
    history = core.intraday_history(look_rows(found))
    serving = history[history["check_name"] == "serving_slo"].iloc[0]
    assert not serving["passed"] and serving["severity"] == "critical"
    assert serving["run_id"] == "run-2"  # the day's latest look
    nightly = pd.DataFrame(
        [
            {
                "model_name": "credit_default",
                "partition_date": day_of(k),
                "asset": "serving_metrics",
                "check_name": "serving_slo",
                "passed": True,
                "severity": None,
                "findings": "[]",
                "run_id": "nightly",
            }
        ]
    )
    merged = core.merge_history(nightly, look_rows(found))
    assert merged[merged["check_name"] == "serving_slo"]["run_id"].tolist() == ["nightly"]
    assert {"data_quality", "feature_drift", "critical_drift", "volume"} <= set(merged["check_name"])


def _nightly_serving(k: int, severity: str | None) -> pd.DataFrame:
    """The nightly serving_slo row of day k: champion:v3 failing at `severity`, or passing (None)."""
    passed = severity is None
    findings = (
        []
        if passed
        else [
            {
                "check_name": "serving_slo",
                "severity": severity,
                "metric": "error_rate",
                "subject": "champion:v3",
                "value": 0.07 if severity == "critical" else 0.02,
                "threshold": 0.05 if severity == "critical" else 0.01,
                "message": f"nightly: error rate above the {severity} SLO",
                "evidence": {},
            }
        ]
    )
    return pd.DataFrame(
        [
            {
                "model_name": "credit_default",
                "partition_date": day_of(k),
                "asset": "serving_metrics",
                "check_name": "serving_slo",
                "passed": passed,
                "severity": severity,
                "findings": json.dumps(findings),
                "run_id": "nightly",
            }
        ]
    )


@pytest.mark.parametrize("nightly", ["critical", "warning", None])
def test_the_nightly_run_supersedes_intraday_alerts_without_duplicates(nightly):
    """The nightly verdict on the intraday alert: confirmed (critical), confirmed diluted (a 30-minute
    outage is a warning over a whole day: the looks' critical stands), not confirmed (passing)."""
    k = 26
    model = model_config(every_minutes=15)
    frame = with_errors(sim_day(k), at(k, 10), at(k, 10, 30))
    rows = look_rows(looks(frame, model, k, [at(k, 10, 0), at(k, 10, 15)]))
    first = _alerts(rows, k, at(k, 10, 15))
    intraday_alert = first.current.set_index("dedup_key").loc[SERVING_KEY]
    assert len(first.notifications) == 1

    night = at(k + 1, 2, 15)
    history = core.merge_history(_nightly_serving(k, nightly), rows)
    second = evaluate(history, first.current, ALERTING, owner="risk-ml", as_of=day_of(k), now=night)
    serving = second.current[second.current["dedup_key"] == SERVING_KEY]
    assert len(serving) == 1  # one alert either way: same id, never a second one
    row = serving.iloc[0]
    assert row["alert_id"] == intraday_alert["alert_id"]
    assert pd.Timestamp(row["created_at"]) == at(k, 10, 15)  # detection time kept
    kinds = second.notifications["kind"].tolist()
    if nightly is not None:
        assert row["status"] == "open" and row["run_id"] == "nightly"
        assert row["severity"] == "critical" and row["detected_date"] == day_of(k)
        assert kinds == []  # already paged: nothing sent again
        if nightly == "warning":
            assert json.loads(row["evidence"])["nightly"]["severity"] == "warning"
    else:
        assert row["status"] == "resolved" and row["resolved_by"] == "superseded"
        assert kinds == ["resolve"]  # the page it raised is closed, once
        third = evaluate(history, second.current, ALERTING, owner="risk-ml", as_of=day_of(k), now=night)
        assert third.notifications.empty and third.alerts.empty  # re-running the night changes nothing


def test_volume_is_judged_against_the_reference_by_time_of_day():
    k = 21
    model = model_config(every_minutes=15)
    frame = sim_day(k)
    quiet = looks(frame, model, k, [at(k, 11)])[0]
    vol = next(r for a, r in quiet.results if r.check_name == "volume")
    assert vol.status == "passed"
    assert 0.8 < vol.findings[0].value < 1.25
    # most of the traffic is lost from 00:00 on (a load balancer lost zones): low volume by 11:00
    rng = np.random.default_rng(0)
    u = rng.random(len(frame))
    low = looks(frame[u < 0.3], model, k, [at(k, 11)])[0]
    vol = next(r for a, r in low.results if r.check_name == "volume")
    assert vol.status == "failed" and vol.findings[0].severity == "warning"
    assert vol.findings[0].evidence["direction"] == "lower_is_worse"
    nearly_none = looks(frame[u < 0.05], model, k, [at(k, 11)])[0]
    vol = next(r for a, r in nearly_none.results if r.check_name == "volume")
    assert vol.findings[0].severity == "critical"
