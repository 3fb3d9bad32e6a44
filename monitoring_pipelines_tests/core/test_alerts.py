"""Alert decisions from check history: dedup, hysteresis, escalation, resolution, routing, idempotence."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections import Counter
from typing import Any

import pandas as pd
import pytest

from monitoring_pipelines.config import AlertingConfig
from monitoring_pipelines.core import alerts as core

START = dt.date(2026, 6, 1)
MODEL = "credit_default"
ROUTES = {"critical": ["pagerduty", "slack"], "warning": ["slack"], "info": []}


def day(n: int) -> dt.date:
    """Day n of the scenario (1-based)."""
    return START + dt.timedelta(days=n - 1)


def check_row(
    n: int,
    findings: dict[str, str] | None = None,
    asset: str = "drift_scores",
    check: str = "feature_drift",
    value: float = 0.3,
) -> dict[str, Any]:
    """One check_results row: `findings` maps subject -> severity."""
    found = [
        {
            "check_name": check,
            "severity": sev,
            "metric": "psi",
            "subject": subject,
            "value": value + n / 100,
            "threshold": 0.2,
            "message": f"{subject} drifted",
            "evidence": {"bins": [n]},
        }
        for subject, sev in (findings or {}).items()
    ]
    return {
        "model_name": MODEL,
        "partition_date": day(n),
        "asset": asset,
        "check_name": check,
        "passed": not any(f["severity"] in ("warning", "critical") for f in found),
        "severity": max((f["severity"] for f in found), key=core.level_of, default=None),
        "findings": json.dumps(found),
        "run_id": f"run-{n:02d}",
        "evaluated_at": pd.Timestamp("2026-07-01", tz="UTC"),
    }


def scenario(incident: dict[int, dict[str, str]], days: int = 30) -> pd.DataFrame:
    """`days` days of two checks; `incident` maps day -> drift findings that day."""
    rows = []
    for n in range(1, days + 1):
        rows.append(check_row(n, incident.get(n)))
        rows.append(check_row(n, None, asset="serving_metrics", check="latency_within_limits"))
    return pd.DataFrame(rows)


class Store:
    """The alerts table and the outbox as the service keeps them (upsert by id, enqueue if new)."""

    def __init__(self) -> None:
        self.alerts: dict[str, dict[str, Any]] = {}
        self.outbox: dict[str, dict[str, Any]] = {}

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(list(self.alerts.values()), columns=core.ALERT_COLUMNS)

    def run(
        self, history: pd.DataFrame, n: int, config: AlertingConfig, owner: str = "risk-ml"
    ) -> core.AlertDecision:
        decision = core.evaluate(
            history,
            self.frame(),
            config,
            owner,
            day(n),
            now=pd.Timestamp(day(n) + dt.timedelta(days=1), tz="UTC"),
        )
        for rec in core.records(decision.notifications):
            self.outbox.setdefault(rec["notification_id"], rec)
        for rec in core.records(decision.alerts):
            self.alerts[rec["alert_id"]] = rec
        return decision

    def nightly(self, history: pd.DataFrame, config: AlertingConfig, days: range) -> None:
        """Live operation: each night sees only the days up to it."""
        for n in days:
            self.run(history[history["partition_date"] <= day(n)], n, config)

    def sent(self) -> Counter:
        return Counter((r["channel"], r["kind"]) for r in self.outbox.values())


@pytest.fixture
def config() -> AlertingConfig:
    return AlertingConfig(routes=ROUTES, warning_persist_days=2, resolve_after_days=3, escalate_after_days=5)


INCIDENT = {n: {"income": "warning"} for n in range(10, 20)}  # days 10..19, then passing


def test_thirty_days_one_incident_send_one_message_per_route_escalate_and_resolve(config):
    history = scenario(INCIDENT)
    store = Store()
    store.nightly(history, config, range(1, 31))

    assert store.sent() == Counter(
        {
            ("slack", "digest"): 1,  # the warning, once it persisted 2 days
            ("pagerduty", "trigger"): 1,
            ("slack", "trigger"): 1,  # escalated to critical after 5 days
            ("pagerduty", "resolve"): 1,
            ("slack", "resolve"): 1,  # the page closes when the check passes 3 days
        }
    )
    (alert,) = store.alerts.values()
    assert alert["severity"] == "critical" and alert["initial_severity"] == "warning"
    assert alert["status"] == "resolved" and alert["resolved_by"] == "auto"
    assert (alert["first_seen_date"], alert["last_seen_date"]) == (day(10), day(19))
    assert alert["detected_date"] == day(11) and alert["escalated_date"] == day(14)
    assert alert["resolved_date"] == day(22) and alert["failing_days"] == 10
    assert alert["dedup_key"] == "credit_default/drift_scores.feature_drift/income"
    by_kind = {(r["channel"], r["kind"]): json.loads(r["payload"]) for r in store.outbox.values()}
    digest = by_kind[("slack", "digest")]
    assert digest["partition_date"] == day(11).isoformat() and digest["alert_ids"] == [alert["alert_id"]]
    page = by_kind[("pagerduty", "trigger")]
    assert page["severity"] == "critical" and page["dedup_key"] == alert["dedup_key"]
    assert page["links"]["run"] == "http://127.0.0.1:3000/runs/run-14"
    assert page["links"]["asset"] == (
        "http://127.0.0.1:3000/assets/drift_scores?view=partitions&partition=2026-06-14%7Ccredit_default"
    )
    assert by_kind[("pagerduty", "resolve")]["dedup_key"] == alert["dedup_key"]


def test_rerunning_any_day_changes_nothing(config):
    history = scenario(INCIDENT)
    store = Store()
    store.nightly(history, config, range(1, 31))
    before_alerts, before_outbox = dict(store.alerts), dict(store.outbox)
    for n in [*range(1, 31), 14, 22, 11]:
        decision = store.run(history, n, config)
        assert decision.alerts.empty, f"re-running day {n} rewrote alerts"
        assert decision.notifications.empty, f"re-running day {n} produced notifications"
    assert store.alerts == before_alerts and store.outbox == before_outbox


def test_rerunning_the_latest_day_mid_incident_is_a_no_op(config):
    history = scenario(INCIDENT)
    store = Store()
    store.nightly(history, config, range(1, 15))
    again = store.run(history[history["partition_date"] <= day(14)], 14, config)
    assert again.alerts.empty and again.notifications.empty


def test_out_of_order_backfill_gives_the_same_alerts_and_no_stale_pages(config):
    history = scenario(INCIDENT)
    live = Store()
    live.nightly(history, config, range(1, 31))
    backfill = Store()
    order = list(range(1, 31))
    random.Random(3).shuffle(order)
    for n in order:
        backfill.run(history, n, config)
    assert set(backfill.alerts) == set(live.alerts)
    keep = [
        "alert_id",
        "severity",
        "status",
        "first_seen_date",
        "last_seen_date",
        "resolved_date",
        "detected_date",
    ]
    assert [{k: a[k] for k in keep} for a in backfill.alerts.values()] == [
        {k: a[k] for k in keep} for a in live.alerts.values()
    ]
    assert backfill.outbox == {}  # the incident ended long before the newest day: nobody is paged for it


def test_open_incident_found_by_a_backfill_is_sent_once_at_its_latest_severity(config):
    history = scenario({n: {"income": "warning"} for n in range(10, 31)})
    store = Store()
    for n in range(1, 31):  # every day of history is already there: only days 28-30 are fresh
        store.run(history, n, config)
    assert store.sent() == Counter({("pagerduty", "trigger"): 1, ("slack", "trigger"): 1})


def test_one_day_warning_blip_raises_an_alert_but_no_message(config):
    store = Store()
    store.nightly(scenario({12: {"income": "warning"}}), config, range(1, 31))
    (alert,) = store.alerts.values()
    assert alert["status"] == "resolved" and alert["detected_date"] is None and not alert["notified"]
    assert store.outbox == {}


def test_critical_notifies_on_its_first_day(config):
    store = Store()
    history = scenario({5: {"age": "critical"}})
    store.nightly(history, config, range(1, 6))
    assert store.sent() == Counter({("pagerduty", "trigger"): 1, ("slack", "trigger"): 1})
    payload = json.loads(next(iter(store.outbox.values()))["payload"])
    assert payload["kind"] == "trigger" and payload["partition_date"] == day(5).isoformat()


def test_gap_shorter_than_resolve_after_days_keeps_one_alert(config):
    incident = {n: {"income": "warning"} for n in (10, 11, 13, 14)}  # day 12 passes
    store = Store()
    store.nightly(scenario(incident), config, range(1, 31))
    assert len(store.alerts) == 1
    assert store.sent()[("slack", "digest")] == 1


def test_days_without_an_evaluation_neither_pass_nor_break_a_streak(config):
    history = scenario({n: {"income": "warning"} for n in (10, 12)})
    history = history[~((history["asset"] == "drift_scores") & (history["partition_date"] == day(11)))]
    store = Store()
    store.nightly(history, config, range(1, 16))
    (alert,) = store.alerts.values()
    assert alert["detected_date"] == day(12)  # 10 and 12 are consecutive evaluations


def test_warnings_of_one_night_share_one_digest_per_channel(config):
    # age started on day 8 (one passing day, then failing again), income on day 10 and debt_ratio on day
    # 11: two incidents (8; 10-11), both passing noise control on night 11
    incident = {
        8: {"age": "warning"},
        10: {"age": "warning", "income": "warning"},
        11: {"age": "warning", "income": "warning", "debt_ratio": "warning"},
    }
    store = Store()
    store.nightly(scenario(incident), config, range(1, 31))
    digests = [r for r in store.outbox.values() if r["kind"] == "digest"]
    assert len(digests) == 1 and len(digests[0]["alert_ids"]) == 3
    entries = json.loads(digests[0]["payload"])["alerts"]
    assert [len(e["alert_ids"]) for e in entries] == [1, 2]  # one line per incident, naming its alerts


def test_without_digest_each_warning_is_its_own_message():
    config = AlertingConfig(routes=ROUTES, digest_warnings=False)
    store = Store()
    incident = {n: {"income": "warning"} for n in (10, 11)} | {n: {"age": "warning"} for n in (13, 14)}
    store.nightly(scenario(incident), config, range(1, 16))
    assert store.sent() == Counter({("slack", "trigger"): 2})


def test_owner_routes_replace_the_default_route_of_the_severities_they_list():
    config = AlertingConfig(routes=ROUTES, owner_routes={"risk-ml": {"critical": ["email"]}})
    store = Store()
    incident = {3: {"income": "critical"}, 6: {"age": "warning"}, 7: {"age": "warning"}}
    store.nightly(scenario(incident), config, range(1, 8))
    sent = Counter({("email", "trigger"): 1, ("email", "resolve"): 1, ("slack", "digest"): 1})
    assert store.sent() == sent


def test_acknowledged_alert_keeps_its_ack_and_still_resolves(config):
    history = scenario(INCIDENT)
    store = Store()
    store.nightly(history, config, range(1, 13))
    (aid,) = store.alerts
    ack = core.acknowledge(
        core.normalize_alerts(store.frame())[0], pd.Timestamp("2026-06-13 09:00", tz="UTC")
    )
    store.alerts[aid] = ack
    store.nightly(history, config, range(13, 31))
    alert = store.alerts[aid]
    assert alert["acknowledged_at"] == pd.Timestamp("2026-06-13 09:00", tz="UTC")
    assert alert["status"] == "resolved"


def test_human_resolved_alert_that_fails_again_starts_a_new_episode(config):
    history = scenario(INCIDENT)
    store = Store()
    store.nightly(history, config, range(1, 13))
    (aid,) = store.alerts
    row = core.resolve_by_person(
        core.normalize_alerts(store.frame())[0], pd.Timestamp("2026-06-13", tz="UTC")
    )
    assert (
        core.resolve_notifications(row, config, "risk-ml", pd.Timestamp("2026-06-13", tz="UTC")) == []
    )  # warning only
    store.alerts[aid] = row
    store.nightly(history, config, range(13, 31))
    first, second = sorted(store.alerts.values(), key=lambda a: a["first_seen_date"])
    assert first["alert_id"] == aid and first["resolved_by"] == "user" and first["last_seen_date"] == day(12)
    assert second["first_seen_date"] == day(13) and second["alert_id"] != aid
    assert second["status"] == "resolved" and second["resolved_by"] == "auto"


def test_resolving_a_paged_alert_by_hand_closes_the_page(config):
    history = scenario({n: {"income": "critical"} for n in range(5, 9)})
    store = Store()
    store.nightly(history, config, range(1, 7))
    row = core.resolve_by_person(
        core.normalize_alerts(store.frame())[0], pd.Timestamp("2026-06-07", tz="UTC")
    )
    notes = core.resolve_notifications(row, config, "risk-ml", pd.Timestamp("2026-06-07", tz="UTC"))
    assert sorted(n["channel"] for n in notes) == ["pagerduty", "slack"]
    assert {n["kind"] for n in notes} == {"resolve"} and notes[0]["dedup_key"] == row["dedup_key"]


def test_info_findings_become_info_alerts_that_never_escalate(config):
    incident = {n: {"v2": "info"} for n in range(3, 20)}
    history = pd.DataFrame(
        [check_row(n, incident.get(n), asset="shadow_comparisons", check="promotion") for n in range(1, 25)]
    )
    store = Store()
    store.nightly(history, config, range(1, 25))
    (alert,) = store.alerts.values()
    assert alert["severity"] == "info" and alert["escalated_date"] is None and alert["status"] == "resolved"
    assert store.outbox == {}  # info routes are empty


def test_failed_check_without_findings_still_alerts(config):
    row = check_row(4)
    row.update(passed=False, severity="critical", findings="[]")
    decision = core.evaluate(pd.DataFrame([row]), None, config, "risk-ml", day(4))
    (alert,) = core.records(decision.alerts)
    assert alert["subject"] == "model" and alert["severity"] == "critical"


def test_rerun_with_corrected_inputs_withdraws_the_alert(config):
    store = Store()
    history = scenario({5: {"income": "warning"}})
    store.nightly(history, config, range(1, 6))
    corrected = scenario({})
    store.run(corrected, 5, config)
    (alert,) = store.alerts.values()
    assert alert["status"] == "resolved" and alert["resolved_by"] == "superseded"


def test_ids_are_deterministic(config):
    history = scenario(INCIDENT)
    a, b = Store(), Store()
    a.nightly(history, config, range(1, 31))
    b.nightly(history, config, range(1, 31))
    assert set(a.alerts) == set(b.alerts) and set(a.outbox) == set(b.outbox)
    assert next(iter(a.alerts)) == core.alert_id_for(
        "credit_default/drift_scores.feature_drift/income", day(10)
    )


def test_finding_rows_keep_the_worst_finding_per_subject_and_day():
    row = check_row(1, {"income": "warning"})
    found = json.loads(row["findings"])
    found.append({**found[0], "severity": "critical", "metric": "js", "message": "worse"})
    row["findings"] = json.dumps(found)
    (rec,) = core.finding_rows(pd.DataFrame([row])).to_dict("records")
    assert rec["severity"] == "critical" and rec["metric"] == "js" and rec["n_findings"] == 2


def test_ui_urls_follow_the_dagster_ui_shape():
    assert core.run_url("http://ui:3000/", "abc") == "http://ui:3000/runs/abc"
    assert core.asset_url("http://ui:3000", "drift_scores", "m", dt.date(2026, 6, 2)) == (
        "http://ui:3000/assets/drift_scores?view=partitions&partition=2026-06-02%7Cm"
    )
    assert core.check_url("http://ui:3000", "drift_scores", "feature_drift") == (
        "http://ui:3000/assets/drift_scores?view=checks&checkDetail=feature_drift"
    )


def test_withdrawn_alert_that_paged_closes_its_page(config):
    store = Store()
    store.nightly(scenario({5: {"income": "critical"}}), config, range(1, 6))
    store.run(scenario({}), 5, config)
    assert store.sent() == Counter(
        {
            ("pagerduty", "trigger"): 1,
            ("slack", "trigger"): 1,
            ("pagerduty", "resolve"): 1,
            ("slack", "resolve"): 1,
        }
    )


# --------------------------------------------------------------------------- issue #16: alerts on-call can trust


def entry(subject: str, severity: str, value: float | None = None, **extra: Any) -> dict[str, Any]:
    """One entry of a check's findings: a finding (critical/warning/info), an `ok` value or `unknown`."""
    return {
        "check_name": extra.pop("check", "feature_drift"),
        "severity": severity,
        "metric": extra.pop("metric", "psi"),
        "subject": subject,
        "value": value,
        "threshold": extra.pop("threshold", 0.25),
        "message": extra.pop("message", f"{subject}: {severity}"),
        "evidence": extra.pop("evidence", {}),
    }


def result_row(
    n: int,
    entries: list[dict[str, Any]],
    asset: str = "drift_scores",
    check: str = "feature_drift",
    unknown: bool = False,
) -> dict[str, Any]:
    """A check_results row as defs/checks.check_rows writes it (passed is False for an unknown day)."""
    failing = [e for e in entries if e["severity"] in ("warning", "critical")]
    ranked = [e["severity"] for e in entries if e["severity"] in ("info", "warning", "critical")]
    return {
        "model_name": MODEL,
        "partition_date": day(n),
        "asset": asset,
        "check_name": check,
        "passed": not failing and not unknown,
        "severity": "unknown" if unknown and not failing else max(ranked, key=core.level_of, default=None),
        "findings": json.dumps([{**e, "check_name": check} for e in entries]),
        "run_id": f"run-{n:02d}",
        "evaluated_at": pd.Timestamp("2026-07-01", tz="UTC"),
    }


def days_of(rows: dict[int, list[dict[str, Any]]], last: int, **kwargs: Any) -> list[dict[str, Any]]:
    """One row per day 1..last; days not in `rows` pass with nothing to say."""
    return [result_row(n, rows.get(n, []), **kwargs) for n in range(1, last + 1)]


def test_failure_within_the_reopen_window_reopens_the_same_alert_without_a_new_message(config):
    # warning on days 10-11 (announced in the digest of night 11), clear 12-14 (resolved on 14),
    # failing again on days 17-18: the same incident, not a second notification
    incident = {n: {"income": "warning"} for n in (10, 11, 17, 18)}
    store = Store()
    store.nightly(scenario(incident), config, range(1, 20))
    (alert,) = store.alerts.values()
    assert alert["alert_id"] == core.alert_id_for("credit_default/drift_scores.feature_drift/income", day(10))
    assert alert["status"] == "open" and alert["reopened"] == 1 and alert["resolved_date"] is None
    assert alert["failing_days"] == 4 and alert["last_seen_date"] == day(18)
    assert store.sent() == Counter({("slack", "digest"): 1})


def test_failure_after_the_reopen_window_is_a_new_alert(config):
    incident = {n: {"income": "warning"} for n in (10, 11, 25, 26)}  # resolved on 14; back 11 days later
    store = Store()
    store.nightly(scenario(incident), config, range(1, 28))
    first, second = sorted(store.alerts.values(), key=lambda a: a["first_seen_date"])
    assert first["status"] == "resolved" and first["reopened"] == 0
    assert second["first_seen_date"] == day(25) and second["incident_id"] != first["incident_id"]
    assert store.sent() == Counter({("slack", "digest"): 2})


def test_reopen_window_is_configurable():
    config = AlertingConfig(routes=ROUTES, reopen_within_days=0)
    store = Store()
    store.nightly(scenario({n: {"income": "warning"} for n in (10, 11, 17, 18)}), config, range(1, 20))
    assert len(store.alerts) == 2


def test_a_paged_incident_that_reopens_after_its_page_closed_pages_again(config):
    # people were told it resolved (PagerDuty closed the incident): coming back must page once more
    store = Store()
    store.nightly(scenario({5: {"age": "critical"}, 10: {"age": "critical"}}), config, range(1, 14))
    (alert,) = store.alerts.values()
    assert alert["reopened"] == 1 and alert["status"] == "resolved"
    assert store.sent() == Counter(
        {
            ("pagerduty", "trigger"): 2,
            ("slack", "trigger"): 2,
            ("pagerduty", "resolve"): 2,
            ("slack", "resolve"): 2,
        }
    )


def test_resolving_needs_the_value_back_inside_the_threshold_by_the_margin(config):
    # PSI 0.3 > 0.25 on days 10-11; then the check passes: 0.24 (inside, but not by the 10 % margin, which
    # needs <= 0.225) on days 12-16, then 0.2 from day 17: three clear days resolve it on day 19
    rows = {n: [entry("income", "warning", 0.3)] for n in (10, 11)}
    rows |= {n: [entry("income", "ok", 0.24)] for n in range(12, 17)}
    rows |= {n: [entry("income", "ok", 0.2)] for n in range(17, 25)}
    store = Store()
    store.nightly(pd.DataFrame(days_of(rows, 24)), config, range(1, 25))
    (alert,) = store.alerts.values()
    assert alert["status"] == "resolved" and alert["resolved_date"] == day(19)


def test_hysteresis_follows_the_metric_direction(config):
    # AUC below its band (0.78, band mean 0.80): lower is worse, so the margin is above the threshold:
    # clear from 0.78 + 10 % of (0.80 - 0.78) = 0.782
    auc = {"check": "performance_degradation", "metric": "auc", "threshold": 0.78}
    rows = {n: [entry("model", "warning", 0.74, evidence={"band_mean": 0.80}, **auc)] for n in (10, 11)}
    rows |= {n: [entry("model", "ok", 0.781, **auc)] for n in range(12, 16)}
    rows |= {n: [entry("model", "ok", 0.79, **auc)] for n in range(16, 22)}
    history = pd.DataFrame(days_of(rows, 21, asset="performance_metrics", check="performance_degradation"))
    store = Store()
    store.nightly(history, config, range(1, 22))
    (alert,) = store.alerts.values()
    assert alert["resolved_date"] == day(18)


def test_value_clear_uses_threshold_and_margin():
    assert core.value_clear(0.225, 0.25, +1, 0.1) and not core.value_clear(0.23, 0.25, +1, 0.1)
    assert core.value_clear(0.782, 0.78, -1, 0.1, reference=0.80)
    assert not core.value_clear(0.781, 0.78, -1, 0.1, reference=0.80)
    assert core.finding_direction({"value": 0.3, "threshold": 0.25}) == 1
    assert core.finding_direction({"value": 0.7, "threshold": 0.78}) == -1
    assert core.finding_direction({"value": 1, "threshold": 2, "evidence": {"higher_is_better": False}}) == 1


DEGRADATION = {"asset": "subgroup_metrics", "check": "differential_degradation"}


def test_a_check_that_judged_nothing_keeps_its_open_alert_open(config):
    # age 65+ degraded on days 10-12; days 13-20 had too few labels: the check judged no group
    # (severity unknown); the degradation was still there on day 21
    rows = {n: [entry("age_band=65+", "critical", 0.61, metric="auc")] for n in (10, 11, 12, 21)}
    history = [result_row(n, rows.get(n, []), unknown=13 <= n <= 20, **DEGRADATION) for n in range(1, 22)]
    store = Store()
    store.nightly(pd.DataFrame(history), config, range(1, 22))
    (alert,) = store.alerts.values()  # one alert: an unknown day is no failure either
    assert alert["subject"] == "age_band=65+" and alert["status"] == "open"
    assert alert["first_seen_date"] == day(10) and alert["failing_days"] == 4
    assert alert["consecutive_days"] == 4 and alert["passing_days"] == 0
    assert store.sent() == Counter({("pagerduty", "trigger"): 1, ("slack", "trigger"): 1})


def test_a_subject_with_too_little_data_keeps_its_alert_open_while_others_are_judged(config):
    unknown = entry(
        "age_band=65+", "unknown", 40.0, threshold=200, message="not enough data: n=40, needs 200"
    )
    rows = {n: [entry("age_band=65+", "critical", 0.61, metric="auc")] for n in (10, 11)}
    rows |= {n: [unknown, entry("age_band=18-25", "ok", 0.8, metric="auc")] for n in range(12, 20)}
    store = Store()
    store.nightly(pd.DataFrame(days_of(rows, 19, **DEGRADATION)), config, range(1, 20))
    (alert,) = store.alerts.values()
    assert alert["status"] == "open" and alert["passing_days"] == 0
    assert "pagerduty" not in {c for c, k in store.sent() if k == "resolve"}


def test_a_blocked_day_raises_only_its_root_alert(config):
    # day 5: 60 % of the rows were quarantined (validation critical), so serving saw only errors
    # (error rate 1) and drift saw a sliver: only the validation alert is raised, listing the others
    quarantined = entry("score in [0, 1]", "critical", 600.0, metric="unexpected_count", threshold=0.0)
    history = pd.DataFrame(
        [
            *days_of({5: [quarantined]}, 8, asset="prediction_snapshots", check="validation"),
            *days_of(
                {5: [entry("champion:v3", "critical", 1.0, metric="error_rate", threshold=0.05)]},
                8,
                asset="serving_metrics",
                check="serving_slo",
            ),
            *days_of({5: [entry("income", "warning", 0.4)]}, 8),
        ]
    )
    store = Store()
    store.nightly(history, config, range(1, 9))
    (alert,) = store.alerts.values()
    assert alert["check_name"] == "validation" and alert["severity"] == "critical"
    suppressed = json.loads(alert["evidence"])["suppressed"]
    assert {(s["check"], s["subject"]) for s in suppressed} == {
        ("serving_metrics.serving_slo", "champion:v3"),
        ("drift_scores.feature_drift", "income"),
    }
    assert store.sent()[("pagerduty", "trigger")] == 1


def test_a_blocked_day_neither_fails_nor_clears_an_open_alert(config):
    # income drifts on days 3-6; day 5's log was unusable (snapshot_usable failed): for the drift alert it
    # is a day not judged, so its streak goes on (escalation counts 4 failing days, not a reset)
    unusable = entry("model", "critical", None, metric="day_usable", threshold=None, message="no rows")
    history = pd.DataFrame(
        [
            *days_of({5: [unusable]}, 8, asset="prediction_snapshots", check="snapshot_usable"),
            *days_of({n: [entry("income", "warning", 0.4)] for n in (3, 4, 5, 6)}, 8),
        ]
    )
    store = Store()
    store.nightly(history, config, range(1, 7))
    drift = next(a for a in store.alerts.values() if a["check_name"] == "feature_drift")
    assert drift["consecutive_days"] == 3 and drift["failing_days"] == 3
    usable = next(a for a in store.alerts.values() if a["check_name"] == "snapshot_usable")
    assert usable["incident_id"] != drift["incident_id"]  # day 5 vs day 3: two days apart


UNIT_BUG = 35
DRIFT_EVIDENCE = {"current": {"mean": 4415944.0}, "reference": {"mean": 44384.0}, "n_current": 700}


def unit_bug_history() -> pd.DataFrame:
    """The income ×100 bug as the checks report it on its first day: 7 findings in 4 checks."""
    drift = {UNIT_BUG: [entry("income", "critical", 9.1, evidence=DRIFT_EVIDENCE)]}
    quality = {
        UNIT_BUG: [
            entry("income", "critical", 0.98, metric="out_of_range", threshold=0.05, evidence=DRIFT_EVIDENCE),
            entry("__score__", "critical", 0.6, metric="out_of_range", threshold=0.05),
        ]
    }
    fairness = {
        UNIT_BUG: [
            entry(f"age_band={b}", "warning", 0.7, metric="positive_rate_ratio", threshold=0.8)
            for b in ("18-25", "26-40", "41-64", "65+")
        ]
    }
    return pd.DataFrame(
        [
            *days_of(drift, UNIT_BUG, check="critical_drift"),
            *days_of(quality, UNIT_BUG, check="data_quality"),
            *days_of(fairness, UNIT_BUG, asset="subgroup_metrics", check="fairness_gap"),
        ]
    )


def test_alerts_that_start_together_are_one_incident_named_after_its_root_cause(config):
    store = Store()
    store.nightly(unit_bug_history(), config, range(30, UNIT_BUG + 1))
    alerts = list(store.alerts.values())
    assert len(alerts) == 7 and len({a["incident_id"] for a in alerts}) == 1
    assert {a["root_cause"] for a in alerts} == {"income mean 4,415,944 vs reference 44,384, ×100"}
    # one message per channel for the incident, named after its lead (the input that moved), listing all 7
    assert store.sent() == Counter({("pagerduty", "trigger"): 1, ("slack", "trigger"): 1})
    page = json.loads(next(r for r in store.outbox.values() if r["channel"] == "pagerduty")["payload"])
    assert page["dedup_key"] == "credit_default/drift_scores.critical_drift/income"
    assert len(page["alert_ids"]) == 7 and len(page["alerts"]) == 7
    assert page["title"].startswith("credit_default: 7 alerts since 2026-07-05: income mean 4,415,944")
    assert page["incident"]["root_cause"] == "income mean 4,415,944 vs reference 44,384, ×100"
    assert "fairness_gap on age_band=65+" in page["message"]


def test_an_alert_starting_a_day_later_joins_the_incident_without_a_new_message(config):
    history = pd.concat(
        [
            unit_bug_history(),
            pd.DataFrame(days_of({UNIT_BUG + 1: [entry("age", "warning", 0.3)]}, UNIT_BUG + 1)),
        ]
    )
    history = history[
        ~((history["partition_date"] == day(UNIT_BUG + 1)) & (history["check_name"] != "feature_drift"))
    ]
    store = Store()
    store.nightly(history, config, range(30, UNIT_BUG + 2))
    assert len({a["incident_id"] for a in store.alerts.values()}) == 1 and len(store.alerts) == 8
    assert store.sent() == Counter({("pagerduty", "trigger"): 1, ("slack", "trigger"): 1})


def test_an_incident_member_escalating_above_what_was_announced_notifies_again(config):
    # income and age drift as warnings from day 10 (one digest on night 11); income keeps failing and
    # escalates to critical on day 14: the incident is announced again, at critical
    incident = {n: {"income": "warning", "age": "warning"} for n in (10, 11)}
    incident |= {n: {"income": "warning"} for n in range(12, 16)}
    store = Store()
    store.nightly(scenario(incident), config, range(1, 16))
    assert len({a["incident_id"] for a in store.alerts.values()}) == 1
    assert store.sent() == Counter(
        {("slack", "digest"): 1, ("pagerduty", "trigger"): 1, ("slack", "trigger"): 1}
    )


def test_an_incident_closes_its_page_once_when_its_last_alert_resolves(config):
    history = unit_bug_history()
    passing = pd.DataFrame(
        [
            result_row(n, [], asset=a, check=c)
            for n in range(UNIT_BUG + 1, UNIT_BUG + 8)
            for a, c in {(r["asset"], r["check_name"]) for r in core.records(history)}
        ]
    )
    store = Store()
    store.nightly(pd.concat([history, passing]), config, range(30, UNIT_BUG + 8))
    assert {a["status"] for a in store.alerts.values()} == {"resolved"}
    assert store.sent()[("pagerduty", "resolve")] == 1 and store.sent()[("slack", "resolve")] == 1
    resolve = next(r for r in store.outbox.values() if r["kind"] == "resolve")
    assert resolve["dedup_key"] == "credit_default/drift_scores.critical_drift/income"


# What may page (docs/alerting.md, "What severity means"): served decisions wrong, service failing, data
# unusable. Each check that can be critical, and why.
MAY_BE_CRITICAL = {
    "snapshot_usable": "no usable log for the day",
    "validation": "more than 10 % of the day's rows quarantined",
    "data_quality": "an input broken beyond its *_critical size",
    "critical_drift": "the score or decision rate moved, or an input by a feed or unit bug's size",
    "performance_critical_drop": "measured performance beyond its critical drop",
    "differential_degradation": "one group's decisions measurably worse",
    "fairness_gap": "a group beyond the owner's absolute limit",
    "serving_slo": "the champion beyond its critical SLO",
}


def test_declared_severities_follow_the_rule():
    from monitoring_pipelines.core import drift, fairness, outcomes, performance, serving, shadow
    from monitoring_pipelines.validation import suite

    specs = [s for m in (drift, performance, fairness, serving, shadow, outcomes, suite) for s in m.CHECKS]
    critical = {s.name for s in specs if s.severity == "critical"}
    assert critical <= set(MAY_BE_CRITICAL), (
        f"critical without a reason in the rule: {critical - set(MAY_BE_CRITICAL)}"
    )
    # drift and degradation that need a look are warnings; escalation is the only way they page
    assert {"feature_drift", "performance_degradation", "business_outcome"} <= {
        s.name for s in specs if s.severity == "warning"
    }
